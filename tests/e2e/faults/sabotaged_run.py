"""A bulk run with a fault planted in its Ray workers: run by test_pipeline_faults.py in a process of
its own (the test session already has a local Ray, and a worker_process_setup_hook is set when Ray
starts). Nothing in the product is patched on disk or given a test hook; the hook wraps one function
in each worker process, as a broken library or device would behave.

    python tests/faults/sabotaged_run.py FAULT ENDPOINT SOURCE TARGET WORKDIR

FAULT:
  exit-in-decode  reading a file named ``exit-here.png`` ends the decode task's process with
                  ``sys.exit(0)`` (a worker that exits cleanly mid-task: ray#62746)
  device-lost     every model call fails with a CUDA error: the namer raises DeviceLost and the
                  model's process leaves with ``os._exit(1)`` (infer.name_rows), every time
  storage-down    no fault here (the test points ENDPOINT at a proxy that refuses reads); the
                  workers' storage retry budget (STORAGE_RETRY_SECONDS, 60 s) is cut to
                  SHORT_STORAGE_BUDGET_S and the client's attempts per call (S3_ATTEMPTS, 8) to
                  SHORT_S3_ATTEMPTS, so that the case takes seconds, not minutes

Each planted fault appends a line (pid, time) to WORKDIR/fault.log. Prints one JSON line."""

from __future__ import annotations

import json
import os
import sys
import time

POISON_NAME = "exit-here.png"


def exit_in_decode() -> None:
    """worker_process_setup_hook: the decode stage's read of POISON_NAME calls sys.exit(0)."""
    import os
    import sys
    import time

    from renamer_ray.pipeline import decode

    original = decode.read_object

    def read_object(location):
        if location.path.endswith("/exit-here.png"):
            with open(os.path.join(os.environ["SABOTAGE_WORKDIR"], "fault.log"), "a") as log:
                log.write(f"{os.getpid()} {time.time()}\n")
            sys.exit(0)
        return original(location)

    decode.read_object = read_object


def device_lost() -> None:
    """worker_process_setup_hook: every generation fails as a broken CUDA context does."""
    import os
    import time

    from renamer_ray.model.namer import Qwen2VLNamer

    def generate(self, images, contexts, user_prompt, style=None):
        with open(os.path.join(os.environ["SABOTAGE_WORKDIR"], "fault.log"), "a") as log:
            log.write(f"{os.getpid()} {time.time()}\n")
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    Qwen2VLNamer._generate = generate


SHORT_STORAGE_BUDGET_S = 4.0
SHORT_S3_ATTEMPTS = 2


def short_storage_budget() -> None:
    """worker_process_setup_hook: storage calls give up after SHORT_STORAGE_BUDGET_S (not 60 s),
    and each call is SHORT_S3_ATTEMPTS requests (not 8, ≈ 50 s of the client's backoff on 503s)."""
    import os

    from renamer_ray.io.storage import retry, s3

    retry.STORAGE_RETRY_SECONDS = float(os.environ["SABOTAGE_STORAGE_BUDGET_S"])
    retry.S3_ATTEMPTS = int(os.environ["SABOTAGE_S3_ATTEMPTS"])
    s3._s3_filesystem.cache_clear()
    s3.s3_client.cache_clear()


HOOKS = {"exit-in-decode": exit_in_decode, "device-lost": device_lost, "storage-down": short_storage_budget}


def main(fault: str, endpoint: str, source: str, target: str, workdir: str) -> dict:
    import ray

    from renamer_ray.config import load_settings
    from renamer_ray.pipeline.run import RunOptions, run

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"worker_process_setup_hook": HOOKS[fault], "env_vars": {"SABOTAGE_WORKDIR": workdir,
                                       "SABOTAGE_STORAGE_BUDGET_S": str(SHORT_STORAGE_BUDGET_S),
                                       "SABOTAGE_S3_ATTEMPTS": str(SHORT_S3_ATTEMPTS)}})
    settings = load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=endpoint)
    outcome: dict = {"started_at": time.time()}
    try:
        summary = run(RunOptions(source=source, target=target), settings)
        outcome.update(ok=summary.ok, failed=summary.failed)
    except Exception as exc:  # reported to the test, which judges it
        outcome.update(error_type=type(exc).__name__, error=str(exc))
    outcome["finished_at"] = time.time()
    ray.shutdown()
    return outcome


if __name__ == "__main__":
    result = main(*sys.argv[1:6])
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)
