"""`renamer-ray up`: the whole service on one machine — an embedded S3/SQS endpoint (moto's server
mode) provisioned as Terraform would, a Ray head with its dashboard, and the Serve application on
API_PORT (HTTP ingress, warm namer, queue driver) — and a clean stop of all of it."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from renamer_ray.config import SECRETS, ConfigError, Settings, is_loopback
from renamer_ray.local_ray import LOOPBACK_RAY_ENV, ray_token_env, write_private

log = logging.getLogger("renamer_ray.stack")
BIN = Path(sys.executable).parent
# The caller's AWS variables, passed to the Ray head's processes when the stack uses their AWS.
PASSED_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")
# Values never put in a runtime_env: Ray's dashboard and state API show every job's and actor's.
SECRET_ENV = {name.upper() for name in SECRETS} | {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


def free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1 (held open together while choosing)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


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


class PortInUse(RuntimeError):
    """A port the stack needs is taken; the message says which setting moves it."""


def require_free(port: int, what: str, how: str) -> None:
    """Refuse a port something listens on. SO_REUSEADDR as the servers themselves bind (asyncio,
    uvicorn): a port whose closed connections linger in TIME_WAIT is free to them, so it is free here."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(f"port {port} ({what}) is already in use: stop what uses it, or {how}") from None


def start_moto():
    """moto's S3/SQS server mode on a free 127.0.0.1 port, quiet; returns (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_ports(1)[0]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables that reproduce them, plus AWS credentials."""
    env = {name.upper(): str(value) for name, value in settings.model_dump().items() if value is not None}
    env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
    return env


def public_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` without its secrets: what may go into a runtime_env (shown on Ray's dashboard)."""
    return {name: value for name, value in env.items() if name not in SECRET_ENV}


def provision(settings: Settings, queue_name: str = "renamer-ray-jobs") -> Settings:
    """Create the buckets, the DLQ (``<queue_name>-dlq``) and the job queue (with its redrive policy)
    as terraform/ does; returns the settings with SQS_QUEUE_URL filled in. Idempotent."""
    from renamer_ray.io.queue import create_job_queue
    from renamer_ray.io.storage import S3Storage

    s3 = S3Storage(settings.storage)
    for bucket in (settings.s3_in_bucket, settings.s3_out_bucket):
        s3.create_bucket(bucket)
    return settings.model_copy(update={"sqs_queue_url": create_job_queue(settings, queue_name)})


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


class LocalStack:
    """Everything `renamer-ray up` starts, in order, and stops in reverse: the S3/SQS endpoint, the
    Ray head, and the Serve application (ingress, namer, driver; Serve keeps them alive)."""

    def __init__(self, settings: Settings, *, workdir: Path, num_cpus: int | None = None,
                 dashboard_port: int = 8265, embedded: bool = True, api_host: str = "127.0.0.1"):
        """``embedded``: start moto's S3/SQS server unless AWS_ENDPOINT_URL names an endpoint;
        False: use AWS itself (credentials and region from the usual variables). ``api_host``: where
        the API listens (loopback unless the user asked for more: then API keys are required)."""
        self.settings = settings.model_copy(update={"api_host": api_host})
        self.workdir, self.embedded = workdir, embedded
        self.num_cpus = num_cpus or max(2, os.cpu_count() or 2)
        self.dashboard_port = dashboard_port
        self.moto = None
        self.head: RayHead | None = None
        self.secret_file: Path | None = None
        self.token_file: Path | None = None
        self.ray_env_file: Path | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    def check_exposure(self) -> None:
        """Listening beyond this machine needs API keys: without them anyone who reaches the port
        could send jobs, read every job and make callbacks."""
        host = self.settings.api_host
        if not is_loopback(host) and not self.settings.api_keys:
            raise ConfigError(
                f"API_HOST={host} would open the API to every machine that can reach this one, and API_KEYS "
                "is empty (anyone could use it): set API_KEYS=<key>:<namespace>,… (keys of 16 characters or "
                "more; README, configuration), or unset API_HOST to listen on 127.0.0.1 only")

    def secure_ray(self) -> Path:
        """Ray with its token authentication on, and this stack's own token (new at each start, in the
        work folder, readable by its owner only; never ~/.ray/auth_token), for this process and for
        every process the head starts."""
        if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
            log.warning("RAY_AUTH_MODE=%s is ignored: the local stack's Ray always requires its token",
                        os.environ["RAY_AUTH_MODE"])
        token_file = write_private(self.workdir / "ray-auth-token", secrets.token_hex(32))
        os.environ.pop("RAY_AUTH_TOKEN", None)  # would win over the file
        os.environ.update({**ray_token_env(token_file), **LOOPBACK_RAY_ENV})
        return token_file

    def start(self, after_ray_init=None) -> "LocalStack":
        """``after_ray_init``: called once this process has joined Ray (whose SIGTERM handler it
        replaces, so a stop during start-up is ours)."""
        self.check_exposure()
        require_free(self.settings.api_port, "the HTTP API", "set API_PORT=<another port>")
        require_free(self.dashboard_port, "the Ray dashboard", "pass --dashboard-port <another port>")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file = self.secure_ray()
        if self.embedded and not self.settings.aws_endpoint_url:  # no endpoint given: embed one on 127.0.0.1
            self.moto, endpoint = start_moto()
            # The embedded server needs no real credentials: never copy the caller's into Ray's
            # runtime env (where every replica, and the dashboard, can read them).
            os.environ.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
            os.environ.pop("AWS_SESSION_TOKEN", None)
            self.settings = self.settings.model_copy(update={"aws_endpoint_url": endpoint})
        if self.moto or not self.settings.sqs_queue_url:  # else: Terraform made them (--aws)
            self.settings = provision(self.settings)
        if not self.settings.webhook_secret:  # a secret of this stack's own, readable by its owner only
            self.secret_file = write_private(self.workdir / "webhook-secret", secrets.token_hex(32))
            self.settings = self.settings.model_copy(update={"webhook_secret": self.secret_file.read_text()})
        env = {**os.environ, **settings_env(self.settings), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("RAY_ADDRESS", None)
        self.head = RayHead(self.num_cpus, env, self.workdir / "ray-head.log", self.dashboard_port)
        self.head.start()
        self.write_ray_env()
        self.start_serve(after_ray_init)
        return self

    def write_ray_env(self) -> Path:
        """``<workdir>/ray.env``: what a shell needs to talk to this stack's Ray (``source`` it, then
        `ray job submit`, `ray status`, a Python driver or `renamer-ray rename --namer-service`)."""
        env = {**ray_token_env(self.token_file.resolve()), **LOOPBACK_RAY_ENV, "RAY_ADDRESS": self.head.address,
               "RAY_API_SERVER_ADDRESS": self.head.dashboard}
        self.ray_env_file = write_private(
            self.workdir / "ray.env", "# the local stack's Ray, for this shell: source this file\n"
            + "".join(f"export {name}={shlex.quote(str(value))}\n" for name, value in env.items()))
        return self.ray_env_file

    def start_serve(self, after_ray_init=None) -> None:
        """Deploy the application and wait until every deployment is running (the namer has loaded
        its model: the first job finds it warm). The replicas inherit the settings, secrets included,
        from the head's environment; their runtime_env, which Ray's dashboard and state API show to
        anyone who may look, carries no secret."""
        import ray
        from ray import serve

        from renamer_ray.service.ingress import build_app

        ray.init(address=self.head.address, logging_level=logging.WARNING, log_to_driver=False)
        if after_ray_init:
            after_ray_init()
        serve.start(http_options={"host": self.settings.api_host, "port": self.settings.api_port,
                                  "request_timeout_s": self.settings.request_timeout_seconds})
        serve.run(build_app(self.settings, runtime_env={"env_vars": public_env(settings_env(self.settings))}),
                  name="renamer", route_prefix="/")

    def urls(self) -> dict[str, str]:
        """What `up` prints, one ``name  value`` line each. The dashboard asks for the Ray token once
        (paste the token file's contents); a shell that sources ``Ray env`` talks to this Ray."""
        return {"page": f"{self.api}/", "API docs": f"{self.api}/docs", "Ray dashboard": self.head.dashboard,
                "Ray address": self.head.address, "Ray token": str(self.token_file),
                "Ray env": str(self.ray_env_file),
                "metrics": f"http://127.0.0.1:{self.head.ports['metrics']}/metrics",
                "S3/SQS endpoint": self.settings.aws_endpoint_url or "AWS",
                "job queue": self.settings.sqs_queue_url,
                **({"webhook secret": str(self.secret_file)} if self.secret_file else {})}

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()  # Serve goes with the head below (shutting it down first only adds noise)
        if self.head:
            self.head.stop()
        if self.moto:
            self.moto.stop()


def up(settings: Settings, *, workdir: Path, dashboard_port: int, embedded: bool = True,
       api_host: str = "127.0.0.1") -> int:
    """Start the stack, print its URLs, stop everything on Ctrl-C or SIGTERM, from the first moment
    (Serve keeps the driver alive)."""
    stack = LocalStack(settings, workdir=workdir, dashboard_port=dashboard_port, embedded=embedded,
                       api_host=api_host)
    stopping = False

    def interrupt(signum, frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    def listen() -> None:
        """Our handlers for SIGTERM and SIGINT, whatever `up` inherited (a script's `up &` starts with
        SIGINT ignored) and after ray.init (which installs a SIGTERM handler that aborts)."""
        signal.signal(signal.SIGTERM, interrupt)
        signal.signal(signal.SIGINT, interrupt)

    def joined_ray() -> None:
        listen()  # ray.init has just put its own SIGTERM handler in place of ours
        print("deploying: the API, the namer (loading its model) and the driver …", flush=True)

    listen()
    try:
        print("starting: embedded S3/SQS, Ray head, Serve, driver …", flush=True)
        stack.start(after_ray_init=joined_ray)
        for name, url in stack.urls().items():
            print(f"  {name:<16} {url}", flush=True)
        print("ready. Ctrl-C stops everything.", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        print("stopped.", flush=True)
    return 0
