"""The service on an autoscaling cluster: its namer deployment at zero replicas scales up for the first
job, which starts a GPU node, and back to zero after it, whose node the autoscaler then removes. Run
by test_autoscaling.py in a process of its own (the test session has a local Ray).

    python -m tests.e2e.faults.autoscaled_service ENDPOINT WORKDIR

The cluster is faults/fake_cluster.py's (the GPU-type workers start at 0, idle for 6 s are removed);
the application is placed as cluster/serve.yaml places it (namer_node_lost.application: ingress and
driver on the head, namer replicas on ``g4dn`` nodes), with the namer's autoscaling from 0 (min and
initial replicas 0) and a down-scale delay of DOWNSCALE_DELAY_S instead of the service's minutes.
Every count polled (Ray's state API: ALIVE GPU-type nodes; Serve's: RUNNING namer replicas) is kept
with its time; prints one JSON line: the job's outcome and that timeline."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

from tests.e2e.faults.autoscaled_run import alive_gpu_nodes
from tests.e2e.faults.fake_cluster import autoscaling_cluster
from tests.e2e.faults.namer_node_lost import application, outcome_of, send
from tests.support.eventually import eventually

JOB_IMAGES = 4
JOB_DEADLINE_S = 240              # the job, the GPU node's and the replica's starts included
SCALE_DOWN_S = 180                # the down-scale delay, the idle timeout and the node's removal
DOWNSCALE_DELAY_S = 5


def namers_running() -> int:
    from ray import serve

    application_status = serve.status().applications.get("renamer")
    namer = application_status.deployments.get("namer") if application_status else None
    return namer.replica_states.get("RUNNING", 0) if namer else 0


def counts(timeline: list[dict], phase: str) -> dict:
    """GPU-type nodes and running namer replicas now (returned), added to ``timeline`` with the time."""
    now = {"gpu_nodes": len(alive_gpu_nodes()), "namers": namers_running()}
    timeline.append({"at": time.time(), "phase": phase, **now})
    return now


def with_short_downscale_delay(namer_options):
    """``namer_options`` with the test's down-scale delay (cluster/serve.yaml's is 600 s)."""
    def options(settings) -> dict:
        chosen = namer_options(settings)
        chosen["autoscaling_config"]["downscale_delay_s"] = DOWNSCALE_DELAY_S
        return chosen
    return options


def main(endpoint: str, workdir: str) -> dict:
    import ray
    from ray import serve

    from renamer_ray.config import load_settings
    from renamer_ray.service import namer
    from renamer_ray.service.local.aws import provision
    from renamer_ray.service.local.demo import wait
    from renamer_ray.service.local.ports import free_ports
    from renamer_ray.service.local.ray_access import settings_env

    (api_port,) = free_ports(1)
    tag = uuid.uuid4().hex[:6]
    settings = provision(load_settings(
        model_id="toy-shapes", batch_size=2, model_device="cpu", aws_endpoint_url=endpoint, api_host="127.0.0.1",
        api_port=api_port, s3_in_bucket=f"scale-in-{tag}", s3_out_bucket=f"scale-out-{tag}", sqs_wait_seconds=1,
        namer_min_replicas=0, namer_max_replicas=1, namer_num_cpus=1), queue_name=f"scale-jobs-{tag}")
    os.environ.update(settings_env(settings))  # every node's processes read the service's settings from it
    namer.namer_options = with_short_downscale_delay(namer.namer_options)
    api = f"http://127.0.0.1:{api_port}"
    timeline: list[dict] = []
    result: dict = {"timeline": timeline}
    with autoscaling_cluster(Path(workdir)) as addresses:
        os.environ["RAY_API_SERVER_ADDRESS"] = addresses["dashboard"]  # this cluster's state API, not another's
        ray.init(address=addresses["gcs"], logging_level="ERROR", log_to_driver=False)
        try:
            serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": api_port})
            serve.run(application(settings), name="renamer", route_prefix="/")
            result["before"] = counts(timeline, "before")
            job_id, labels = send(api, seed=2403, count=JOB_IMAGES)
            eventually(lambda: counts(timeline, "job")["namers"], "a namer replica started for the job",
                       timeout=JOB_DEADLINE_S, every=0.5)
            result["job"] = outcome_of(wait(api, job_id, timeout=JOB_DEADLINE_S), labels)
            counts(timeline, "job over")
            eventually(lambda: not any(counts(timeline, "idle").values()),
                       "the namer went to zero replicas and its node was removed", timeout=SCALE_DOWN_S, every=0.5)
        except AssertionError as exc:  # an eventually() that timed out: reported to the test
            result["error"] = str(exc)
        finally:
            serve.shutdown()
            ray.shutdown()
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:3])), flush=True)
    os._exit(0)  # not waiting on a follower thread if it hangs; the cluster is killed above
