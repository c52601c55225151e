"""The queue driver as a Ray Serve deployment, so that Serve supervises it: a replica whose process
dies, or whose ``check_health`` raises (the loop stopped, or has not polled the queue for longer
than a long poll plus a margin), is replaced without anyone running a command — locally and on the
cluster alike. One replica; it reserves no CPU (its runs' tasks reserve their own)."""

from __future__ import annotations

import logging
import threading

from ray import serve

log = logging.getLogger("renamer_ray.driver")
DRIVER = "driver"


@serve.deployment(name=DRIVER, num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=32,
                  health_check_period_s=5, health_check_timeout_s=30, graceful_shutdown_timeout_s=30)
class JobDriver:
    def __init__(self) -> None:
        from renamer_ray.config import load_settings
        from renamer_ray.service.driver import Driver
        from renamer_ray.service.namer import namer_problem
        from renamer_ray.service.webhooks import Webhooks

        logging.getLogger("renamer_ray").setLevel(logging.INFO)
        settings = load_settings()
        self.driver = Driver(settings, webhooks=Webhooks(settings.webhook_secret,
                                                         allow_private=settings.callback_allow_private),
                             namer_status=namer_problem)
        self.stop = threading.Event()
        self.loop = threading.Thread(target=self.driver.serve_forever, args=(self.stop,), daemon=True,
                                     name="driver-loop")
        self.loop.start()

    def check_health(self) -> None:
        if not self.loop.is_alive():
            raise RuntimeError("the driver loop has stopped")
        if problem := self.driver.health_problem():
            raise RuntimeError(problem)

    async def status(self) -> dict:
        return self.driver.status()

    def __del__(self) -> None:
        self.stop.set()
        self.loop.join(timeout=20)
