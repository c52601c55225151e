"""The web page at ``/``: drag and drop, progress, results (``service/static/index.html``), sent with a
strict Content-Security-Policy: its one inline script and one inline style by their hashes, nothing
from elsewhere but the S3 endpoint its presigned downloads and thumbnails come from."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from importlib.resources import files
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from renamer_ray.service.api.deps import SettingsDep

PAGE = files("renamer_ray.service") / "static" / "index.html"
AWS_S3 = "https://*.amazonaws.com"   # presigned URLs on AWS: https://<bucket>.s3.<region>.amazonaws.com/…
router = APIRouter()


def inline_hashes(html: str, tag: str) -> str:
    """CSP sources for each inline ``<tag>`` block: 'sha256-…' of its exact text."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)


@lru_cache(maxsize=4)
def page_headers(s3_endpoint: str | None) -> tuple[str, dict[str, str]]:
    html = PAGE.read_text(encoding="utf-8")
    s3 = "{0.scheme}://{0.netloc}".format(urlsplit(s3_endpoint)) if s3_endpoint else AWS_S3
    policy = "; ".join((
        "default-src 'none'", f"script-src {inline_hashes(html, 'script')}", f"style-src {inline_hashes(html, 'style')}",
        f"img-src 'self' blob: {s3}", f"connect-src 'self' {s3}", "form-action 'none'", "base-uri 'none'",
        "frame-ancestors 'none'"))
    return html, {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(settings: SettingsDep) -> HTMLResponse:
    html, headers = page_headers(settings.aws_endpoint_url)
    return HTMLResponse(html, headers=headers)
