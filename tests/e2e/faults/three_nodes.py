"""Bulk runs on a simulated cluster of a head and three GPU-type worker nodes, one of them lost in the
second run: run by test_multinode.py in a process of its own (the test session has a local Ray).

    python -m tests.e2e.faults.three_nodes ENDPOINT SOURCE UNDISTURBED LOSSY WORKDIR

Builds the cluster with ``ray.cluster_utils.Cluster`` on 127.0.0.1: a head (one CPU, the dashboard,
so that Ray's state API answers) and three workers shaped like the cluster's ``gpu`` node type
(cluster/aws.yaml: one ``GPU``) with a custom resource ``g4dn`` of 1 each. The model actors ask for
half of one (MODEL_ACTOR_RESOURCES), on the CPU (MODEL_DEVICE=cpu): the pool is one actor per such
node, and a node has room to restart a lost node's actor. Then, in the same cluster:

1. an undisturbed run SOURCE → UNDISTURBED; Ray's state API says where the model actors ran;
2. a run SOURCE → LOSSY that loses a worker node: the node whose model named the run's first batch
   is killed (no graceful shutdown, no replacement) while its model holds its next batch.

Prints one JSON line. What the script changes in the runs: Ray Data's block size (BLOCK_BYTES, so
that a dozen small shapes make several blocks, as a big run's photos do), and a
worker_process_setup_hook that logs every batch a model names (run, node, rows); in run 1 makes a
model with a batch in hand wait until every node's model has one; in run 2 makes the doomed node's
model hold its next batch until the node is gone (polling files), so that the node always dies with
a batch in flight."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

WORKERS = 3
RESOURCE = "g4dn"                 # the worker nodes' custom resource: 1 each; a model actor asks for half
DEADLINE_S = 240                  # per run
LOSSY = "lossy"                   # the run that loses a node (WORKDIR/run holds the run's name)
BLOCK_BYTES = 32 * 1024           # Ray Data's largest block here: about two decoded toy shapes (≈ 19 KB each)


def log_batches_and_hold_the_doomed_node() -> None:
    """worker_process_setup_hook: log every batch a model names to WORKDIR/named.jsonl. In the
    undisturbed run, a model that has a batch in hand waits until the model of every worker node has
    one (a toy model names a batch faster than Ray Data hands out the next: without the wait, one or
    two models could name everything); in the lossy run, the model of the node that named its first
    batch writes WORKDIR/holding and holds its next batch until it dies with its node."""
    import json
    import os
    import time
    from pathlib import Path

    import ray
    from renamer_ray.pipeline import infer

    workdir = Path(os.environ["MULTINODE_WORKDIR"])
    original = infer.NameImages.__call__

    def first_of(run: str) -> str | None:
        log = workdir / "named.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        return next((entry["node"] for entry in map(json.loads, lines) if entry["run"] == run), None)

    def call(self, batch):
        run, here = (workdir / "run").read_text(), ray.get_runtime_context().get_node_id()
        deadline = time.monotonic() + 120
        (workdir / f"started-{run}-{here}").touch()
        while run == "undisturbed" and len(list(workdir.glob(f"started-{run}-*"))) < WORKERS:
            if time.monotonic() > deadline:
                raise RuntimeError("the pool's work never reached a model on every node")
            time.sleep(0.05)  # polling for the other nodes' models to have a batch in hand
        while run == "lossy" and first_of(run) == here:
            if not (workdir / "holding").exists():  # written whole, then renamed: never read half-written
                (workdir / f"holding.{os.getpid()}").write_text(here)
                (workdir / f"holding.{os.getpid()}").replace(workdir / "holding")
            if time.monotonic() > deadline:
                raise RuntimeError("this node was never removed")
            time.sleep(0.05)  # polling for the node's removal, which ends this process
        out = original(self, batch)
        with (workdir / "named.jsonl").open("a") as log:
            log.write(json.dumps({"run": run, "pid": os.getpid(), "node": here, "rows": batch.num_rows,
                                  "at": time.time()}) + "\n")
        return out

    infer.NameImages.__call__ = call


@contextlib.contextmanager
def three_gpu_nodes(**init_args) -> Iterator[tuple[object, dict]]:
    """A head (one CPU; the dashboard, for Ray's state API) and WORKERS workers shaped like
    cluster/aws.yaml's ``gpu`` node type, joined by this process (``ray.init(**init_args)``): the
    cluster and its workers by node id; all shut down after."""
    import ray
    from ray.cluster_utils import Cluster

    from renamer_ray.service.local.ports import free_ports

    (dashboard_port,) = free_ports(1)
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=dashboard_port))
    try:
        workers = {node.node_id: node for node in
                   (cluster.add_node(num_cpus=2, num_gpus=1, resources={RESOURCE: 1}) for _ in range(WORKERS))}
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False, **init_args)
        # The state API asks this cluster's dashboard, not whichever Ray it finds first on the
        # machine (another test's stack may be running: "Found multiple active Ray instances").
        os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{dashboard_port}"
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()


def model_actors(*, besides: list[dict] = ()) -> list[dict]:
    """The model actors Ray's state API lists (id, node, state), but those ``besides`` (an earlier run's)."""
    from ray.util.state import list_actors

    earlier = {actor["id"] for actor in besides}
    return [dict(id=actor.actor_id, node=actor.node_id, state=actor.state) for actor in list_actors(limit=1000)
            if "NameImages" in actor.class_name and actor.actor_id not in earlier]


def in_thread(job) -> tuple[threading.Thread, dict]:
    """``job()`` (a run) in a thread; its outcome: ok, failed, named_by_node, or error; finished_at."""
    outcome: dict = {}

    def go() -> None:
        try:
            summary = job()
            outcome.update(ok=summary.ok, failed=summary.failed, named_by_node=summary.named_by_node)
        except Exception as exc:  # reported to the test, which fails on it
            outcome.update(error=f"{type(exc).__name__}: {exc}")
        outcome["finished_at"] = time.time()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, outcome


def wait_for(path: Path, thread: threading.Thread, deadline: float) -> bool:
    """Whether ``path`` appeared before the run ended or the deadline passed."""
    while not path.exists() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the hook's file
    return path.exists()


def main(endpoint: str, source: str, undisturbed: str, lossy: str, workdir: str) -> dict:
    import ray

    from renamer_ray.config import load_settings
    from renamer_ray.pipeline.run import RunOptions, run

    work = Path(workdir)
    result: dict = {}
    hook = {"worker_process_setup_hook": log_batches_and_hold_the_doomed_node,
            "env_vars": {"MULTINODE_WORKDIR": workdir}}
    with three_gpu_nodes(runtime_env=hook) as (cluster, workers):
        result["workers"] = sorted(workers)
        # Ray Data cuts decoded pixels into blocks of at most 128 MiB (≈ 55 photos of 786k px), and a big
        # run's many decode tasks leave them on every node, beside every model actor. Here a dozen small
        # shapes are decoded by one task: cut them as finely, and hand each block to the least busy actor
        # rather than to the one beside it.
        context = ray.data.DataContext.get_current()
        context.target_max_block_size = BLOCK_BYTES
        context.execution_options.actor_locality_enabled = False
        settings = load_settings(model_id="toy-shapes", batch_size=2, model_device="cpu",
                                 aws_endpoint_url=endpoint, model_actor_resources={RESOURCE: 0.5})

        (work / "run").write_text("undisturbed")
        thread, result["undisturbed"] = in_thread(lambda: run(RunOptions(source=source, target=undisturbed), settings))
        thread.join(DEADLINE_S)
        result["undisturbed"]["actors"] = model_actors()
        if thread.is_alive():
            result["undisturbed"]["error"] = f"the run did not finish within {DEADLINE_S} s"
            return result

        (work / "run").write_text(LOSSY)
        started = time.monotonic()
        thread, outcome = in_thread(lambda: run(RunOptions(source=source, target=lossy), settings))
        result[LOSSY] = outcome
        if wait_for(work / "holding", thread, started + DEADLINE_S):
            doomed = (work / "holding").read_text()
            outcome.update(removed=doomed, fault_at=time.time())
            cluster.remove_node(workers[doomed], allow_graceful=False)
        thread.join(max(1.0, DEADLINE_S - (time.monotonic() - started)))
        if thread.is_alive():
            outcome["error"] = f"the run did not finish within {DEADLINE_S} s"
        outcome["actors"] = model_actors(besides=result["undisturbed"]["actors"])
        log = work / "named.jsonl"
        result["batches"] = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:6])), flush=True)
    os._exit(0)  # not waiting on a run's thread if it hangs; the cluster is shut down above
