"""The API's interactive documentation (Swagger UI) served from the package, behind login.

FastAPI's default page loads Swagger UI from a public CDN (it fails on a closed hospital
network and runs third-party script in the app's origin) and starts it with an inline script
(which the app's Content-Security-Policy refuses). Here the vendored assets (swagger/VENDORED.txt)
and a starter file are served to logged-in users under the same CSP as every page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from reluth.errors import NotFound
from reluth.i18n import N_
from reluth.i18n.reasons import refusal
from reluth.web.deps import WHO, Auth
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)
ASSETS = Path(__file__).parent / "swagger"
#: The files the page may load, with their media types.
SERVED = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "init.js": "text/javascript",
}


@router.get("/api/v1/docs", response_class=HTMLResponse)
def docs_page(request: Request, who: Auth = WHO) -> HTMLResponse:
    return render(request, "api_docs.html", {"who": who, "openapi": "/api/v1/openapi.json"})


@router.get("/api/v1/docs/assets/{name}")
def docs_asset(name: str, who: Auth = WHO) -> FileResponse:
    if name not in SERVED:
        raise refusal(
            NotFound, "asset_not_found", N_("no documentation asset '{name}'"), name=name[:80]
        )
    return FileResponse(
        ASSETS / name, media_type=SERVED[name], headers={"Cache-Control": "private, max-age=3600"}
    )
