"""`renamer-ray up` as a subprocess, the way a user runs it, for the service tests."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from tests.support.images import drawn_files

BIN = Path(sys.executable).parent
KEY_A, KEY_B = "key-a-0123456789", "key-b-9876543210"
A = {"X-API-Key": KEY_A}
STACK_SECRET = "stack-webhook-secret"
MAX_RECEIVES = 5  # deliveries of a job's message before the DLQ: the fault suite kills the driver 3 times in one job
LIMITS = dict(MAX_FILES_PER_JOB=50, MAX_FILE_BYTES=3 * 1024 * 1024, MAX_JOB_BYTES=20 * 1024 * 1024)


@dataclass
class RunningStack:
    process: subprocess.Popen
    urls: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    _queue: "queue.Queue[str | None]" = field(default_factory=queue.Queue)
    endpoint: object = None           # the CutProxy between the stack and its S3/SQS server, if any

    @property
    def api(self) -> str:
        return self.urls["page"].rstrip("/")

    @property
    def ray_auth(self) -> dict[str, str]:
        """The header Ray's dashboard and job API ask for: the stack's own token, from the file `up` names."""
        return {"Authorization": "Bearer " + Path(self.urls["Ray token"]).read_text().strip()}

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """Read the stack's output until a line matches (it prints its URLs, then "ready.")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + "".join(self.lines[-60:]))

    def interrupt(self, timeout: float = 120) -> int:
        """Ctrl-C, as a user would press it; returns the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)


def own_ray_tmpdir() -> str:
    """A Ray temp dir of its own for each head a test starts. A job's driver finds its cluster through
    ``<ray temp dir>/ray_current_cluster`` (Ray's job supervisor resolves "auto"), which the last
    `ray start` on the machine overwrites: with several heads on one machine, a job submitted to one
    could attach to another. Short, under /tmp: Ray's unix socket paths must stay short."""
    return tempfile.mkdtemp(prefix="ray", dir="/tmp")


def start_stack(env: dict[str, str], workdir: Path, dashboard_port: int, timeout: float = 240, *,
                ignore_sigint: bool = False) -> RunningStack:
    """``ignore_sigint``: start `up` with SIGINT ignored, as `renamer-ray up &` in a script does."""
    env = {"RAY_TMPDIR": own_ray_tmpdir(), **env}
    process = subprocess.Popen(
        [str(BIN / "renamer-ray"), "up", "--dashboard-port", str(dashboard_port), "--workdir", str(workdir)],
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None)
    stack = RunningStack(process, env=env)

    def pump() -> None:
        for line in process.stdout:
            stack.lines.append(line)
            stack._queue.put(line)
        stack._queue.put(None)

    threading.Thread(target=pump, daemon=True).start()
    stack.wait_for(r"^starting", timeout)
    while True:
        line = stack.wait_for(r"^(ready\.|  (\S.*?\S)\s{2,}(\S+)$)", timeout)
        if line.group(0) == "ready.":
            return stack
        stack.urls[line.group(2)] = line.group(3)


# Clients of a running stack, as a user's script would be ---------------------------------------------
def submit(stack, files, data=None, headers=A) -> httpx.Response:
    return httpx.post(f"{stack.api}/v1/jobs/rename", files=files, data=data or {}, headers=headers, timeout=120)


def images(seed: int, count: int):
    """(form files, labels) of freshly drawn shapes in rotating formats."""
    drawn = drawn_files(seed=seed, count=count, max_side=500)
    return [("files", (f"photo-{i}.{fmt.lower()}", data)) for i, (data, fmt, _) in enumerate(drawn)], \
        [label for _, _, label in drawn]


def status_of(stack, job_id: str) -> dict:
    return httpx.get(f"{stack.api}/v1/jobs/{job_id}", headers=A).json()


def replica_processes(stack, deployment: str) -> list[psutil.Process]:
    """The running replicas of one of the stack's Serve deployments, as Serve's REST API (on the Ray
    dashboard) reports them with their process ids."""
    details = httpx.get(f"{stack.urls['Ray dashboard']}/api/serve/applications/", headers=stack.ray_auth,
                        timeout=30).json()
    replicas = details["applications"]["renamer"]["deployments"][deployment]["replicas"]
    processes = []
    for replica in replicas:
        if replica["state"] == "RUNNING" and replica.get("pid"):
            try:
                processes.append(psutil.Process(replica["pid"]))
            except psutil.NoSuchProcess:  # killed a moment ago: Serve has not noticed yet
                pass
    return processes
