"""A worker node removed mid-run, as a spot interruption does: run by test_pipeline_faults.py in a
process of its own (the test session already has a local Ray).

    python tests/faults/node_loss.py ENDPOINT SOURCE TARGET WORKDIR

Builds a two-node cluster with ``ray.cluster_utils.Cluster`` (as Ray's own tests do): a head, and a
worker carrying the custom resource that the model actors require (MODEL_ACTOR_RESOURCES), so the
model runs there. A bulk run starts in a thread. Once the model has named its first batch, the worker
node is killed (no graceful shutdown) while the actor is busy with the next batch; a fresh worker
node with the same resource joins, and the run must finish there. Prints one JSON line.

The model actor of the first node pauses before its second batch until the node is gone (polling a
file), so that the node always dies with the model mid-run; that pause is the only thing the script
changes in the run (through a worker_process_setup_hook)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

RESOURCE = "spot-namer"
DEADLINE_S = 240


def pause_after_the_first_batch() -> None:
    """worker_process_setup_hook: log every batch the model names (pid, node); after the first one,
    a model on the node that is about to be removed names nothing more (it dies with its node)."""
    import json
    import os
    import time
    from pathlib import Path

    import ray
    from renamer_ray.pipeline import infer

    workdir = Path(os.environ["NODE_LOSS_WORKDIR"])
    original = infer.NameImages.__call__

    def doomed() -> bool:
        removed = workdir / "removed"
        here = ray.get_runtime_context().get_node_id()
        return (workdir / "named").exists() and (not removed.exists() or removed.read_text() == here)

    def call(self, batch):
        deadline = time.monotonic() + 120
        while doomed():
            if time.monotonic() > deadline:
                raise RuntimeError("this node was never removed")
            time.sleep(0.05)  # polling for the node's removal, which ends this process
        out = original(self, batch)
        with (workdir / "named").open("a") as log:
            log.write(json.dumps({"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                                  "rows": batch.num_rows}) + "\n")
        return out

    infer.NameImages.__call__ = call


def main(endpoint: str, source: str, target: str, workdir: str) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from renamer_ray.config import load_settings
    from renamer_ray.pipeline.run import RunOptions, run

    work = Path(workdir)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=2, include_dashboard=False))
    first = cluster.add_node(num_cpus=2, resources={RESOURCE: 1})
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False,
             runtime_env={"worker_process_setup_hook": pause_after_the_first_batch,
                          "env_vars": {"NODE_LOSS_WORKDIR": workdir}})
    settings = load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=endpoint,
                             model_actor_resources={RESOURCE: 1})
    outcome: dict = {}

    def go() -> None:
        try:
            summary = run(RunOptions(source=source, target=target), settings)
            outcome.update(ok=summary.ok, failed=summary.failed)
        except Exception as exc:  # reported to the test, which fails on it
            outcome.update(error=f"{type(exc).__name__}: {exc}")
        outcome["finished_at"] = time.time()

    worker = threading.Thread(target=go, daemon=True)
    started = time.monotonic()
    worker.start()
    named = work / "named"
    while not named.exists() and worker.is_alive() and time.monotonic() - started < DEADLINE_S:
        time.sleep(0.05)  # polling for the first named batch
    if not named.exists():
        worker.join(timeout=5)
        return {**outcome, "error": outcome.get("error", "the model never named a batch")}
    host = json.loads(named.read_text().splitlines()[0])["node"]
    outcome["batches_before"] = len(named.read_text().splitlines())
    outcome["model_was_on_the_removed_node"] = host == first.node_id
    outcome["fault_at"] = time.time()
    (work / "removed").write_text(first.node_id)
    cluster.remove_node(first, allow_graceful=False)
    cluster.add_node(num_cpus=2, resources={RESOURCE: 1})
    worker.join(timeout=DEADLINE_S - (time.monotonic() - started))
    if worker.is_alive():
        outcome["error"] = f"the run did not finish within {DEADLINE_S} s"
    outcome["batches"] = [json.loads(line) for line in named.read_text().splitlines()]
    outcome["removed_node"] = first.node_id
    ray.shutdown()
    cluster.shutdown()
    return outcome


if __name__ == "__main__":
    result = main(*sys.argv[1:5])
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)  # not waiting on the run's thread if it hangs; the cluster is shut down above
