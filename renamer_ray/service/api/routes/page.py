"""The web page at ``/``: drag and drop, progress, results (``service/static/index.html``)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = files("renamer_ray.service") / "static" / "index.html"
router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))
