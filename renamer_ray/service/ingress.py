"""The Ray Serve deployment that serves the FastAPI app (``serve deploy`` import path:
``renamer_ray.service.ingress:app``). The app is built inside each replica from its environment,
so nothing unpicklable (boto3 clients) travels with the deployment."""

from __future__ import annotations

from ray import serve


def build_api():
    from renamer_ray.config import load_settings
    from renamer_ray.service.api import create_app

    return create_app(load_settings())


@serve.deployment(name="renamer-api", ray_actor_options={"num_cpus": 0},
                  max_ongoing_requests=64, health_check_period_s=10)
@serve.ingress(build_api)
class RenamerApi:
    """HTTP only: uploads, status, events, downloads. The heavy work runs in the queue driver."""


app = RenamerApi.bind()
