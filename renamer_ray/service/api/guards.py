"""What a browser may not make the API do on another site's behalf.

- **DNS rebinding**: a web page whose host name is made to resolve to 127.0.0.1 would reach the local
  API as "its own" origin. Starlette's ``TrustedHostMiddleware`` answers 400 to a Host header that is
  not one of the API's names (``Settings.allowed_hosts``).
- **Cross-site writes**: any page the user visits can make the browser POST a form or a no-CORS
  ``fetch`` to ``http://127.0.0.1:8000`` (no preflight for those). A request with a method that changes
  something is refused (403) when the browser says it comes from another site (``Sec-Fetch-Site:
  cross-site``/``same-site``) or its ``Origin`` is not the API's own. Clients that are not browsers
  (curl, the openai package, `renamer-ray submit`) send neither header and are not affected.
- **The page** (``routes/page.py``) is sent with a strict Content-Security-Policy.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE = "a request from another web site was refused: use the page this API serves, or a client that is not a browser"

__all__ = ["RefuseCrossSiteWrites", "TrustedHostMiddleware"]


def cross_site(headers: Headers) -> bool:
    """Whether a browser sent this request on behalf of a page of another origin."""
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


class RefuseCrossSiteWrites:
    """ASGI middleware (not Starlette's BaseHTTPMiddleware: uploads and event streams pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and cross_site(Headers(scope=scope)):
            await JSONResponse({"detail": CROSS_SITE}, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)
