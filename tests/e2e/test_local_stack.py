"""The one-command local stack: `renamer-ray demo` (the README's main command) and `renamer-ray up`
with its embedded S3/SQS endpoint, stopped with Ctrl-C: nothing it started is left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import psutil

from renamer_ray.service.local.ports import free_ports
from tests.support.images import SAMPLES_EXPECTED as EXPECTED
from tests.support.eventually import eventually
from tests.support.stack import own_ray_tmpdir, start_stack

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


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
SECRETS = {"API_KEYS": "key-a-0123456789:team-a", "WEBHOOK_SECRET": "stack-test-webhook-secret-0042",
           "ENGINE_API_KEY": "sk-stack-test-engine-key-0042"}


def ray_driver(stack, **env: str) -> subprocess.CompletedProcess:
    """A Ray driver that tries to join the stack's Ray, over 127.0.0.1, with the environment given."""
    code = f"import ray; ray.init(address={stack.urls['Ray address']!r}); print('JOINED')"
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    return subprocess.run([sys.executable, "-c", code], env={**base, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **env},
                          capture_output=True, text=True, timeout=180)


def test_up_prints_its_urls_and_ctrl_c_stops_everything(tmp_path):
    """...and its Ray requires the stack's own token: the dashboard, the job API and a Ray driver
    without it are refused, one with it is let in; no secret shows in what Ray's dashboard and state
    API tell about jobs, actors and Serve."""
    api_port, dashboard_port = free_ports(2)
    stack = start_stack(local_env(API_PORT=str(api_port), **SECRETS), tmp_path, dashboard_port)
    try:
        endpoint = stack.urls["S3/SQS endpoint"]
        assert endpoint.startswith("http://127.0.0.1:")  # embedded: no AWS needed
        assert httpx.get(stack.urls["page"]).text.startswith("<!doctype html>")
        assert httpx.get(f"{stack.api}/ready").json()["ok"] is True

        token = Path(stack.urls["Ray token"])
        assert token.parent == tmp_path and token.stat().st_mode & 0o777 == 0o600  # the owner's only, not in ~
        dashboard = stack.urls["Ray dashboard"]
        assert httpx.get(f"{dashboard}/api/jobs/").status_code == 401
        assert httpx.get(f"{dashboard}/api/jobs/", headers={"Authorization": "Bearer " + "0" * 64}).status_code == 403
        assert httpx.get(f"{dashboard}/api/jobs/", headers=stack.ray_auth).status_code == 200

        wrong = tmp_path / "wrong-token"
        wrong.write_text("0" * 64)
        for env in ({"RAY_AUTH_MODE": "disabled"}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(wrong)}):
            refused_driver = ray_driver(stack, **env)
            assert refused_driver.returncode != 0 and "JOINED" not in refused_driver.stdout, env
        joined = ray_driver(stack, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
        assert "JOINED" in joined.stdout, joined.stderr[-2000:]
        # A shell that sources the file `up` names reaches the job API as `ray job submit` would.
        jobs = subprocess.run(["bash", "-c", f'source "{stack.urls["Ray env"]}" && "{BIN}/ray" job list'],
                              env={k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")},
                              capture_output=True, text=True, timeout=120)
        assert jobs.returncode == 0, jobs.stderr[-2000:]

        shown = "".join(httpx.get(f"{dashboard}{path}", headers=stack.ray_auth, timeout=60).text for path in (
            "/api/jobs/", "/api/serve/applications/", "/api/v0/actors?detail=true&limit=1000",
            "/api/v0/workers?detail=true&limit=1000", "/api/v0/tasks?detail=true&limit=1000"))
        assert "S3_OUT_BUCKET" in shown  # the replicas' runtime_env is there, without its secrets:
        assert not [name for name, value in SECRETS.items() if value in shown or value.split(":")[0] in shown]
    finally:
        code = stack.interrupt(timeout=120)  # never leave a stack running for the tests after this one
    assert code == 0
    assert "stopped." in "".join(stack.lines)
    assert "killing them" not in "".join(stack.lines), "Ray's head stops on SIGTERM, within the grace"
    gcs = int(stack.urls["Ray address"].rsplit(":", 1)[1])
    for port in (api_port, dashboard_port, gcs, int(endpoint.rsplit(":", 1)[1])):
        eventually(lambda: refused(port), f"port {port} closes after Ctrl-C", timeout=20, every=0.2)


def test_listening_beyond_loopback_without_api_keys_is_refused(tmp_path):
    result = subprocess.run([str(BIN / "renamer-ray"), "up", "--workdir", str(tmp_path)],
                            env=local_env(API_HOST="0.0.0.0", API_KEYS=""), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert "API_HOST=0.0.0.0 would open the API" in result.stderr and "API_KEYS=" in result.stderr
    assert not (tmp_path / "ray-head.log").exists()  # refused before anything started


def test_sigterm_while_up_is_still_starting_stops_everything(tmp_path):
    """A supervisor that stops the service while it is still deploying (its /health answers early):
    exit 0 or 143, never Ray's abort, and nothing left running."""
    api_port, dashboard_port = free_ports(2)
    process = subprocess.Popen(
        [str(BIN / "renamer-ray"), "up", "--dashboard-port", str(dashboard_port), "--workdir", str(tmp_path)],
        env={**local_env(API_PORT=str(api_port), RAY_TMPDIR=own_ray_tmpdir()), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("deploying:"):
            break
    up = psutil.Process(process.pid)
    family = {up.pid} | {p.pid for p in up.children(recursive=True)}
    process.send_signal(signal.SIGTERM)
    lines += process.stdout.readlines()
    code = process.wait(timeout=120)
    output = "".join(lines)
    assert "ready." not in output, "the signal came during the start, as in the case this tests"
    assert code in (0, 143), f"exit status {code}\n{output[-3000:]}"
    assert "stopped." in output

    eventually(lambda: not [p for p in family if running(p)], "every process of the stack has exited", timeout=30,
               every=0.2)
    assert refused(dashboard_port)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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
    return set(listening_with_owner(pids))


def listening_with_owner(pids: set[int]) -> dict[tuple[str, int], str]:
    """(address, port) → the listening process's name, cut at its first colon pair and word."""
    owners = {}
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            try:
                name = psutil.Process(c.pid).name()
            except psutil.NoSuchProcess:
                name = "?"
            owners[(c.laddr.ip, c.laddr.port)] = name[:len("ray::ServeReplica")] if name.startswith(
                "ray::ServeRepli") else name
    return owners


def grpc_call_without_token(port: int) -> grpc.StatusCode:
    """Call a Serve replica's request method over 127.0.0.1 as a stranger would: no token."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            channel.unary_unary("/ray.serve.ASGIService/HandleRequest")(b"", timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


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
        # Every socket of the stack listens on loopback: the API, the dashboard, the S3/SQS server,
        # and Ray's own servers (GCS, raylet, workers, agents, client server)...
        assert ("127.0.0.1", api_port) in sockets and ("127.0.0.1", dashboard_port) in sockets, sockets
        wide = {s: owner for s, owner in listening_with_owner(family).items() if s[0] not in LOOPBACK}
        assert len(sockets) > 5 and set(wide.values()) <= {"ray::ServeReplica"}, wide
        # ... but Serve's inter-deployment gRPC server in each replica, which Ray 2.60 binds to [::]
        # whatever the node's address: it refuses a call without the stack's token.
        assert len(wide) >= 3
        for _, port in wide:
            assert grpc_call_without_token(port) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        stack.process.send_signal(signal.SIGTERM)
        code = stack.process.wait(timeout=60)
    assert code in (0, 143), f"exit status {code}\n" + "".join(stack.lines[-30:])
    eventually(lambda: not [p for p in family if running(p)], "every process of the stack has exited", timeout=30,
               every=0.2)
    for port in {port for _, port in sockets}:
        eventually(lambda: refused(port), f"port {port} closes after SIGTERM", timeout=20, every=0.2)
    # ... and a second `up` starts on the same ports.
    again = start_stack(local_env(API_PORT=str(api_port)), tmp_path / "again", dashboard_port)
    assert again.interrupt(timeout=120) == 0
