"""The API documentation works offline and under the app's CSP (issue 13, item 8): Swagger UI
is served from the package behind login, started by a file (no inline script), and nothing in
the pages or their assets is loaded from another origin."""

from __future__ import annotations

import re
from pathlib import Path

from web_support import Site

WEB = Path(__file__).resolve().parents[2] / "src" / "reluth" / "web"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


def test_docs_need_a_login(site: Site) -> None:
    anon = site.client()
    page = anon.get("/api/v1/docs")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    asset = anon.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code in (303, 401) and "SwaggerUIBundle" not in asset.text


def test_docs_page_loads_only_its_own_assets_under_the_csp(site: Site) -> None:
    client = site.client("inv1")
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page.text)
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in sources
    assert all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)  # no inline script
    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        asset = client.get(f"/api/v1/docs/assets/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
    assert client.get("/api/v1/docs/assets/..%2Fapp.py").status_code == 404
    assert client.get("/api/v1/docs/assets/LICENSE.txt").status_code == 404
    assert client.get("/api/v1/openapi.json").json()["info"]["title"] == "ReLUTH eCRF API"


def test_no_template_or_script_loads_from_another_origin() -> None:
    """Hospital networks are closed: every script, style and image comes from the app."""
    found = []
    for path in [*WEB.glob("templates/*.html"), WEB / "swagger" / "init.js"]:
        text = path.read_text(encoding="utf-8")
        found += [
            f"{path.name}: {m}"
            for m in re.findall(r'(?:src|href)\s*=\s*["\']((?:https?:)?//[^"\']+)', text)
        ]
    assert found == []
    starter = (WEB / "swagger" / "init.js").read_text(encoding="utf-8")
    assert "validatorUrl: null" in starter  # Swagger UI would otherwise call validator.swagger.io
