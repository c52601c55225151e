"""The one-command local stack: `renamer-ray demo` (the README's main command) and `renamer-ray up`
with its embedded S3/SQS endpoint, stopped with Ctrl-C: nothing it started is left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from renamer_ray.service.stack import free_ports
from tests.support.images import SAMPLES_EXPECTED as EXPECTED
from tests.support.eventually import eventually
from tests.support.stack import start_stack

BIN = Path(sys.executable).parent


def refused(port: int) -> bool:
    """Whether nothing accepts connections on the port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def local_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT", "SQS_", "S3_", "API_"))}
    return {**env, **extra}


def test_demo_renames_the_samples_through_the_api_and_stops(tmp_path):
    api_port, dashboard_port = free_ports(2)
    result = subprocess.run([str(BIN / "renamer-ray"), "demo", "--dashboard-port", str(dashboard_port),
                             "--workdir", str(tmp_path)], env=local_env(API_PORT=str(api_port)),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = {line.split("->")[0].strip(): line.split("->")[1].strip()
             for line in result.stdout.splitlines() if "->" in line}
    for relative, label in EXPECTED.items():
        assert table[Path(relative).name].startswith(label), (relative, table)
    assert "succeeded: 10 renamed, 0 failed" in result.stdout
    for port in (api_port, dashboard_port):
        eventually(lambda: refused(port), f"port {port} closes after the demo", timeout=20, every=0.2)


def test_up_prints_its_urls_and_ctrl_c_stops_everything(tmp_path):
    api_port, dashboard_port = free_ports(2)
    stack = start_stack(local_env(API_PORT=str(api_port)), tmp_path, dashboard_port)
    try:
        endpoint = stack.urls["S3/SQS endpoint"]
        assert endpoint.startswith("http://127.0.0.1:")  # embedded: no AWS needed
        assert httpx.get(stack.urls["page"]).text.startswith("<!doctype html>")
        assert httpx.get(f"{stack.api}/ready").json()["ok"] is True
        assert httpx.get(f"{stack.urls['Ray dashboard']}/api/jobs/").status_code == 200
    finally:
        code = stack.interrupt(timeout=120)  # never leave a stack running for the tests after this one
    assert code == 0
    assert "stopped." in "".join(stack.lines)
    assert "killing them" not in "".join(stack.lines), "Ray's head stops on SIGTERM, within the grace"
    gcs = int(stack.urls["Ray address"].rsplit(":", 1)[1])
    for port in (api_port, dashboard_port, gcs, int(endpoint.rsplit(":", 1)[1])):
        eventually(lambda: refused(port), f"port {port} closes after Ctrl-C", timeout=20, every=0.2)


def test_a_taken_port_is_named_with_the_setting_that_moves_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([str(BIN / "renamer-ray"), "up", "--workdir", str(tmp_path)],
                                env=local_env(API_PORT=str(port)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"port {port} (the HTTP API) is already in use" in result.stderr and "API_PORT" in result.stderr


def listening(pids: set[int]) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def test_sigterm_stops_everything_even_with_sigint_ignored(tmp_path):
    """Started the way a script starts a service in the background (SIGINT ignored, inherited by
    every child), then stopped with SIGTERM as systemd or Docker would: exit 0, every process the
    stack started gone, every port closed, and a second `up` starts on the same ports."""
    api_port, dashboard_port = free_ports(2)
    real_key = "AKIAREALCALLERKEY0001"  # the caller's own AWS credentials, which the embedded stack must not spread
    stack = start_stack(local_env(API_PORT=str(api_port), AWS_ACCESS_KEY_ID=real_key), tmp_path, dashboard_port,
                        ignore_sigint=True)
    try:
        up = psutil.Process(stack.process.pid)
        family = {up.pid} | {p.pid for p in up.children(recursive=True)}
        leaked = [p.cmdline()[:1] for p in up.children(recursive=True) if real_key in str(p.environ())]
        assert not leaked, f"the caller's AWS key reached {leaked}"
        sockets = listening(family)
        # The API and the dashboard listen on loopback only (Ray 2.60's own gRPC servers bind every
        # interface whatever --node-ip-address says: see the README's local stack section).
        assert ("127.0.0.1", api_port) in sockets and ("127.0.0.1", dashboard_port) in sockets, sockets
        assert not {s for s in sockets if s[1] in (api_port, dashboard_port) and s[0] != "127.0.0.1"}
    finally:
        stack.process.send_signal(signal.SIGTERM)
        code = stack.process.wait(timeout=60)
    assert code in (0, 143), f"exit status {code}\n" + "".join(stack.lines[-30:])
    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    eventually(lambda: not [p for p in family if running(p)], "every process of the stack has exited", timeout=30,
               every=0.2)
    for port in {port for _, port in sockets}:
        eventually(lambda: refused(port), f"port {port} closes after SIGTERM", timeout=20, every=0.2)
    # ... and a second `up` starts on the same ports.
    again = start_stack(local_env(API_PORT=str(api_port)), tmp_path / "again", dashboard_port)
    assert again.interrupt(timeout=120) == 0
