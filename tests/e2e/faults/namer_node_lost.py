"""The service on a simulated cluster losing the node of one namer replica while a job is in flight:
run by test_multinode.py in a process of its own (the test session has a local Ray).

    python -m tests.e2e.faults.namer_node_lost ENDPOINT WORKDIR

Builds a head (one CPU, the dashboard) and three GPU-type workers (``three_nodes.py``'s) with
``ray.cluster_utils.Cluster``, and deploys the Serve application as cluster/serve.yaml places it:
the HTTP ingress and the queue driver on the head, two namer replicas (MODEL_DEVICE=cpu) on the
workers (each asks for half a ``g4dn``). A job of JOB_IMAGES images is sent over HTTP; the
replica that names its first batch holds its next one (a worker_process_setup_hook, polling a file)
and its node is killed (no graceful shutdown) with that batch in flight. The job must end
``succeeded``; then a second job. Prints one JSON line."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.e2e.faults.three_nodes import RESOURCE, three_gpu_nodes

JOB_IMAGES, NEXT_JOB_IMAGES = 16, 4
DEADLINE_S = 240                  # per job
HEAD = {"node:__internal_head__": 0.001}   # what cluster/serve.yaml pins the ingress and the driver with


def hold_the_first_namers_next_batch() -> None:
    """worker_process_setup_hook: the namer replica that named the first batch (WORKDIR/first holds
    its node) writes WORKDIR/holding and holds its next batch until it dies with its node."""
    import os
    import time
    from pathlib import Path

    import ray
    from renamer_ray.pipeline import infer

    workdir = Path(os.environ["MULTINODE_WORKDIR"])
    original = infer.name_rows

    def name_rows(namer, rows, **options):
        here, first = ray.get_runtime_context().get_node_id(), workdir / "first"
        deadline = time.monotonic() + 120
        while first.exists() and first.read_text() == here:
            (workdir / f"holding.{os.getpid()}").write_text(here)
            (workdir / f"holding.{os.getpid()}").replace(workdir / "holding")
            if time.monotonic() > deadline:
                raise RuntimeError("this node was never removed")
            time.sleep(0.05)  # polling for the node's removal, which ends this process
        answers = original(namer, rows, **options)
        if not first.exists():
            (workdir / f"first.{os.getpid()}").write_text(here)
            (workdir / f"first.{os.getpid()}").replace(first)
        return answers

    infer.name_rows = name_rows


def namer_nodes() -> list[str]:
    """The nodes of the running namer replicas, as Ray's state API lists them."""
    from ray.util.state import list_actors

    return sorted(actor.node_id for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
                  if actor.class_name.startswith("ServeReplica:renamer:namer"))


def application(settings):
    """The service's Serve application placed as cluster/serve.yaml places it."""
    from renamer_ray.service.ingress import RenamerApi
    from renamer_ray.service.namer import bind_namer
    from renamer_ray.service.supervisor import JobDriver

    driver = JobDriver.options(ray_actor_options={"num_cpus": 0, "resources": HEAD})
    namer = bind_namer(settings, lambda options: {**options, "resources": {RESOURCE: 0.5}})
    return RenamerApi.options(ray_actor_options={"num_cpus": 0, "resources": HEAD}).bind(driver.bind(), namer)


def send(api: str, seed: int, count: int) -> tuple[str, list[str]]:
    """A job of ``count`` drawn shapes; its id and the shapes' labels."""
    import httpx

    from tests.support.images import drawn_files

    drawn = drawn_files(seed=seed, count=count, max_side=300)
    files = [("files", (f"photo-{i}.{fmt.lower()}", data)) for i, (data, fmt, _) in enumerate(drawn)]
    accepted = httpx.post(f"{api}/v1/jobs/rename", files=files, timeout=120).raise_for_status().json()
    return accepted["job_id"], [label for _, _, label in drawn]


def outcome_of(job: dict, labels: list[str]) -> dict:
    results = sorted(job.get("results") or [], key=lambda r: int(r["original"].split("-")[1].split(".")[0]))
    return dict(status=job["status"], done=job["done"], failed=job["failed"],
                named_as_drawn=[r["status"] == "ok" and r["name"].startswith(label)
                                for r, label in zip(results, labels)])


def main(endpoint: str, workdir: str) -> dict:
    from ray import serve

    from renamer_ray.config import load_settings
    from renamer_ray.service.local.aws import provision
    from renamer_ray.service.local.demo import wait
    from renamer_ray.service.local.ports import free_ports
    from renamer_ray.service.local.ray_access import settings_env

    (api_port,) = free_ports(1)
    tag = uuid.uuid4().hex[:6]
    settings = provision(load_settings(
        model_id="toy-shapes", batch_size=2, model_device="cpu", aws_endpoint_url=endpoint, api_host="127.0.0.1",
        api_port=api_port, s3_in_bucket=f"lost-in-{tag}", s3_out_bucket=f"lost-out-{tag}", sqs_wait_seconds=1,
        namer_min_replicas=2, namer_max_replicas=2, namer_num_cpus=1), queue_name=f"lost-jobs-{tag}")
    os.environ.update(settings_env(settings))  # every node's processes read the service's settings from it
    api = f"http://127.0.0.1:{api_port}"
    result: dict = {}
    hook = {"worker_process_setup_hook": hold_the_first_namers_next_batch,
            "env_vars": {"MULTINODE_WORKDIR": workdir}}
    with three_gpu_nodes(runtime_env=hook) as (cluster, workers):
        result["workers"] = sorted(workers)
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": api_port})
        serve.run(application(settings), name="renamer", route_prefix="/")
        result["namers_before"] = namer_nodes()

        job_id, labels = send(api, seed=2401, count=JOB_IMAGES)
        final: dict = {}

        def follow() -> None:
            try:
                final.update(wait(api, job_id, timeout=DEADLINE_S))
            except Exception as exc:  # reported to the test, which fails on it
                final["error"] = f"{type(exc).__name__}: {exc}"

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        holding, deadline = Path(workdir) / "holding", time.monotonic() + DEADLINE_S
        while not holding.exists() and follower.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the hook's file
        if holding.exists():
            doomed = holding.read_text()
            result.update(removed=doomed, in_flight=follower.is_alive())
            cluster.remove_node(workers[doomed], allow_graceful=False)
        follower.join(DEADLINE_S)
        result["job"] = {"error": final["error"]} if "error" in final else outcome_of(final, labels)

        next_id, next_labels = send(api, seed=2402, count=NEXT_JOB_IMAGES)
        result["next_job"] = outcome_of(wait(api, next_id, timeout=DEADLINE_S), next_labels)
        result["namers_after"] = namer_nodes()
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:3])), flush=True)
    os._exit(0)  # not waiting on a follower thread if it hangs; the cluster is shut down above
