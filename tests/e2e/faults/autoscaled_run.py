"""A bulk run on an autoscaling cluster whose GPU worker nodes start at 0: run by test_autoscaling.py
in a process of its own (the test session has a local Ray).

    python -m tests.e2e.faults.autoscaled_run ENDPOINT SOURCE TARGET WORKDIR

The cluster (faults/fake_cluster.py: Ray's ``fake_multinode`` provider, cluster/aws.yaml's node types,
a short idle timeout) has only its head at first. The run's model actors ask for the ``g4dn`` resource
only GPU-type nodes offer (MODEL_ACTOR_RESOURCES; the toy model on the CPU, MODEL_DEVICE=cpu), so
their demand makes the autoscaler start such nodes; when the run is over they are idle and removed.
Every node count the script polls (Ray's state API: ALIVE GPU-type nodes) is kept with its time;
prints one JSON line: the run's outcome, the model actors' nodes, and that timeline."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tests.e2e.faults.fake_cluster import GPU_NODE_RESOURCE, autoscaling_cluster
from tests.e2e.faults.three_nodes import in_thread, model_actors
from tests.support.eventually import eventually

RUN_DEADLINE_S = 240              # the run, nodes' starts included
SCALE_DOWN_S = 180                # the idle timeout (6 s) and the autoscaler's removal, on a loaded machine


def alive_gpu_nodes() -> list[str]:
    """The ALIVE GPU-type nodes, by Ray's state API."""
    from ray.util.state import list_nodes

    return [node.node_id for node in list_nodes(limit=1000)  # (a state filter here reads as "data truncation")
            if node.state == "ALIVE" and GPU_NODE_RESOURCE in (node.resources_total or {})]


def gpu_nodes(timeline: list[dict], phase: str) -> list[str]:
    """The ALIVE GPU-type nodes now (returned), added to ``timeline`` with the time."""
    alive = alive_gpu_nodes()
    timeline.append({"at": time.time(), "phase": phase, "nodes": alive})
    return alive


def main(endpoint: str, source: str, target: str, workdir: str) -> dict:
    import ray
    from ray.util.state.exception import RayStateApiException

    from renamer_ray.config import load_settings
    from renamer_ray.pipeline.run import RunOptions, run

    timeline: list[dict] = []
    result: dict = {"timeline": timeline}
    with autoscaling_cluster(Path(workdir)) as addresses:
        # Ray's state API finds "the" cluster on the machine, and there may be others: name this one.
        os.environ["RAY_API_SERVER_ADDRESS"] = addresses["dashboard"]
        ray.init(address=addresses["gcs"], logging_level="ERROR", log_to_driver=False)
        try:
            (result["before"],) = eventually(lambda: (gpu_nodes(timeline, "before"),), "the state API answered",
                                             timeout=60, every=0.5, retry_on=(RayStateApiException,))
            settings = load_settings(model_id="toy-shapes", batch_size=2, model_device="cpu",
                                     aws_endpoint_url=endpoint, model_actor_resources={GPU_NODE_RESOURCE: 1})
            thread, result["run"] = in_thread(lambda: run(RunOptions(source=source, target=target), settings))
            started = time.monotonic()
            eventually(lambda: gpu_nodes(timeline, "run") or not thread.is_alive(),
                       "the autoscaler started a GPU node for the run", timeout=RUN_DEADLINE_S, every=0.5)
            thread.join(max(1.0, RUN_DEADLINE_S - (time.monotonic() - started)))
            if thread.is_alive():
                result["run"]["error"] = f"the run did not finish within {RUN_DEADLINE_S} s"
                return result
            result["actors"] = model_actors()
            result["gpu_nodes_seen"] = sorted({node for entry in timeline for node in entry["nodes"]})
            gpu_nodes(timeline, "run over")
            eventually(lambda: not gpu_nodes(timeline, "idle"), "the idle GPU nodes were removed",
                       timeout=SCALE_DOWN_S, every=0.5)
        except AssertionError as exc:  # an eventually() that timed out: reported to the test
            result["error"] = str(exc)
        finally:
            ray.shutdown()
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:5])), flush=True)
    os._exit(0)  # not waiting on a run's thread if it hangs; the cluster is killed above
