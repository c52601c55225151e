"""The Serve application ``renamer``: the HTTP ingress (FastAPI), the warm ``namer`` and the queue
``driver``, deployed together (``serve deploy`` import path: ``renamer_ray.service.ingress:app``).

Each replica builds what it needs from its own environment, so nothing unpicklable (boto3 clients)
travels with the deployment. The ingress holds a handle to the driver for ``/ready``; the driver's
runs reach the namer by name (``pipeline/infer.py``)."""

from __future__ import annotations

import asyncio

from ray import serve

from renamer_ray.config import Settings, load_settings
from renamer_ray.service.namer import bind_namer
from renamer_ray.service.supervisor import JobDriver

DRIVER_STATUS_TIMEOUT_SECONDS = 3


@serve.deployment(name="renamer-api", ray_actor_options={"num_cpus": 0},
                  max_ongoing_requests=64, health_check_period_s=10)
@serve.ingress()
class RenamerApi:
    """HTTP only: uploads, status, events, downloads. The heavy work runs in the driver's runs."""

    def __init__(self, driver, namer=None) -> None:
        self.driver = driver
        self.namer = namer  # bound so that the namer is part of this application

    async def driver_status(self) -> dict:
        return await asyncio.wait_for(self.driver.status.remote(), timeout=DRIVER_STATUS_TIMEOUT_SECONDS)

    async def ask_namer(self, request: dict) -> dict:
        """One image for the warm namer (``/v1/chat/completions``): ``{"raw", "error"}`` and the
        model's ``prompt_tokens`` and ``completion_tokens``."""
        return await self.namer.name.remote(request)

    def __serve_build_asgi_app__(self):
        from renamer_ray.service.api import create_app

        return create_app(load_settings(), driver_status=self.driver_status,
                          ask_namer=self.ask_namer if self.namer is not None else None)


def build_app(settings: Settings, *, runtime_env: dict | None = None):
    """The whole application graph: ingress → driver, and the namer beside them. ``runtime_env``
    (the local stack passes the settings as env_vars) goes to every deployment."""
    def actor_options(options: dict) -> dict:
        return {**options, "runtime_env": runtime_env} if runtime_env else options

    api = RenamerApi.options(ray_actor_options=actor_options({"num_cpus": 0}))
    driver = JobDriver.options(ray_actor_options=actor_options({"num_cpus": 0}))
    return api.bind(driver.bind(), bind_namer(settings, actor_options))


app = build_app(load_settings())
