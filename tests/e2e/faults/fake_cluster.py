"""An autoscaling Ray cluster on one machine: Ray's ``fake_multinode`` provider with the node types of
cluster/aws.yaml scaled down, started and stopped without ``ray stop``.

``ray.cluster_utils.AutoscalingCluster`` is not used: its start and shutdown run ``ray stop --force``,
which ends every Ray on the machine (other tests' clusters), and it reads a config the wheel lacks.
Here the head is ``ray start --head --autoscaling-config`` in a process group of its own, on free
ports and the caller's Ray temp dir; the autoscaler (the head's monitor) starts the worker nodes in
its own process, so they belong to that group too. Stopping kills the group, then any process left
whose command line names the temp dir."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

GPU_NODE_TYPE = "gpu"             # cluster/aws.yaml's GPU worker type
GPU_NODE_RESOURCE = "g4dn"        # a custom resource only the GPU type offers: the model actors ask for it
HEAD_NODE_TYPE = "ray.head.default"   # the name the fake provider gives its head


def cluster_config(*, gcs_address: str, max_gpu_workers: int, idle_timeout_minutes: float) -> dict:
    """cluster/aws.yaml's shape with logical resources: a head (one CPU, for Ray Data's listing and
    decode; the real head has none and its workers decode) and ``gpu`` workers from 0, each one
    ``GPU``, two CPUs and ``g4dn``."""
    return {
        "cluster_name": "fake-autoscaling",
        "max_workers": max_gpu_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "provider": {"type": "fake_multinode", "gcs_address": gcs_address, "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "available_node_types": {
            HEAD_NODE_TYPE: {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            GPU_NODE_TYPE: {"resources": {"CPU": 2, "GPU": 1, GPU_NODE_RESOURCE: 1}, "node_config": {},
                            "min_workers": 0, "max_workers": max_gpu_workers},
        },
        "head_node_type": HEAD_NODE_TYPE,
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


@contextlib.contextmanager
def autoscaling_cluster(workdir: Path, *, max_gpu_workers: int = 2,
                        idle_timeout_minutes: float = 0.1) -> Iterator[dict]:
    """The started cluster's addresses (``gcs``, ``dashboard``); everything it ran is killed after.
    Its Ray temp dir is RAY_TMPDIR (the caller's own, see tests/support/stack.own_ray_tmpdir)."""
    from renamer_ray.service.local.ports import free_ports

    temp_dir = os.environ["RAY_TMPDIR"]
    gcs_port, dashboard_port, client_port, agent_port = free_ports(4)
    gcs = f"127.0.0.1:{gcs_port}"
    config = workdir / "autoscaling.json"
    config.write_text(json.dumps(cluster_config(gcs_address=gcs, max_gpu_workers=max_gpu_workers,
                                                idle_timeout_minutes=idle_timeout_minutes)))
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--node-ip-address=127.0.0.1",
         f"--port={gcs_port}", "--num-cpus=1", f"--autoscaling-config={config}", f"--temp-dir={temp_dir}",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
         f"--ray-client-server-port={client_port}", f"--dashboard-agent-listen-port={agent_port}",
         "--disable-usage-stats"],
        env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = head.communicate(timeout=180)
        if head.returncode != 0:
            raise RuntimeError(f"ray start exited {head.returncode}:\n{out[-3000:]}")
        yield {"gcs": gcs, "dashboard": f"http://127.0.0.1:{dashboard_port}"}
    finally:
        kill_cluster(head.pid, temp_dir)


def kill_cluster(group: int, temp_dir: str) -> None:
    """SIGKILL the head's process group, then every process left that names ``temp_dir``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            arguments = (proc / "cmdline").read_bytes()
            if f"{temp_dir}/".encode() in arguments or f"{temp_dir}\0".encode() in arguments:
                os.kill(int(proc.name), signal.SIGKILL)
