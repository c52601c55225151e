"""The whole service on one machine, started in order and stopped in reverse: S3/SQS, a Ray head, the Serve application.

The embedded S3/SQS endpoint (moto's server mode) is provisioned as Terraform would; the Ray head
has its dashboard; the Serve application on API_PORT is the HTTP ingress, the warm namer and the
queue driver. `renamer-ray up` (``up.py``) runs it until Ctrl-C."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from renamer_ray.config import ConfigError, Settings, is_loopback
from renamer_ray.local_ray import write_private
from renamer_ray.service.local.aws import provision, start_moto
from renamer_ray.service.local.ports import require_free
from renamer_ray.service.local.ray_access import public_env, settings_env, use_own_ray_token, write_ray_env
from renamer_ray.service.local.ray_head import BIN, RayHead


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
                "more; docs/configuration.md), or unset API_HOST to listen on 127.0.0.1 only")

    def start(self, after_ray_init=None) -> "LocalStack":
        """``after_ray_init``: called once this process has joined Ray (whose SIGTERM handler it
        replaces, so a stop during start-up is ours)."""
        self.check_exposure()
        require_free(self.settings.api_port, "the HTTP API", "set API_PORT=<another port>")
        require_free(self.dashboard_port, "the Ray dashboard", "pass --dashboard-port <another port>")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file = use_own_ray_token(self.workdir)
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
        self.ray_env_file = write_ray_env(self.workdir, self.token_file, self.head.address, self.head.dashboard)
        self.start_serve(after_ray_init)
        return self

    def start_serve(self, after_ray_init=None) -> None:
        """Deploy the application and wait until every deployment is running (the namer has loaded
        its model: the first job finds it warm). The replicas inherit the settings, secrets included,
        from the head's environment; their runtime_env carries no secret (``ray_access.py``)."""
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
