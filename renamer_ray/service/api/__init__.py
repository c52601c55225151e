"""The HTTP API (FastAPI): routers by concern in ``routes/``, shared dependencies in ``deps.py``.
Served by Ray Serve (``service/ingress.py``); also runs under any ASGI server or ``TestClient``."""

from renamer_ray.service.api.app import create_app

__all__ = ["create_app"]
