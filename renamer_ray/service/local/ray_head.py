"""The local stack's Ray head: `ray start --head --block` in a process group and on loopback ports of its own."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from renamer_ray.service.local.ports import free_ports

log = logging.getLogger("renamer_ray.stack")
BIN = Path(sys.executable).parent


def _default_signals() -> None:
    """In the child before exec: SIGINT back to its default even if `up` was started with it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's group now
        return False


@dataclass
class RayHead:
    """`ray start --head --block` in its own process group, on ports of its own."""

    num_cpus: int
    env: dict[str, str]
    log_path: Path
    dashboard_port: int = 8265
    process: subprocess.Popen | None = None
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['gcs']}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self, timeout: float = 180) -> None:
        names = ("gcs", "client", "agent", "agent_grpc", "metrics", "runtime_env")
        self.ports = dict(zip(names, free_ports(len(names))))
        p = self.ports
        self.process = subprocess.Popen(
            # Node IP 127.0.0.1: Ray's processes talk to each other over loopback; with LOOPBACK_RAY_ENV
            # (in self.env) they also listen there only, and the token keeps other local users out.
            [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
             f"--num-cpus={self.num_cpus}", f"--port={p['gcs']}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}", "--include-dashboard=true",
             f"--ray-client-server-port={p['client']}", "--disable-usage-stats",
             # Agent ports of its own: another Ray on this machine may hold the defaults.
             f"--dashboard-agent-listen-port={p['agent']}", f"--dashboard-agent-grpc-port={p['agent_grpc']}",
             f"--metrics-export-port={p['metrics']}", f"--runtime-env-agent-port={p['runtime_env']}"],
            # No drain on SIGTERM: Ray 2.60 drains a node for up to 30 s first (for rolling upgrades on
            # Kubernetes), which here only kept the head alive past the stop's grace, to be SIGKILLed.
            env={**self.env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}, stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_default_signals)
        self.wait_for_job_api(timeout)

    def wait_for_job_api(self, timeout: float) -> None:
        """The dashboard answers before its job agent does; ready when the job API lists jobs."""
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("ray start --head exited:\n" + self.log_path.read_text()[-3000:])
            try:
                JobSubmissionClient(self.dashboard).list_jobs()  # sends the token of this process's environment
                return
            except Exception:
                time.sleep(0.5)  # polling a server that is starting, not synchronising on time
        raise RuntimeError(f"the Ray dashboard's job API did not answer in {timeout:.0f}s (log: {self.log_path})")

    def stop(self, grace: float = 8) -> None:
        """SIGTERM to the head's whole process group (GCS, raylet, dashboard, workers: SIGTERM is
        never ignored by them, unlike an inherited SIGINT), then SIGKILL for what is left."""
        if not self.process:
            return
        group = self.process.pid
        _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _group_alive(group) and time.monotonic() < deadline:
            self.process.poll()  # reap `ray start` itself
            time.sleep(0.1)  # polling processes that are exiting, not synchronising on time
        if _group_alive(group):
            log.warning("Ray processes still running %.0f s after SIGTERM: killing them", grace)
            _signal_group(group, signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
