"""SQL and HTML injection attempts in every text field are stored as text and rendered escaped."""

from __future__ import annotations

import pytest
from markupsafe import escape
from web_support import PASSWORD, Site

PAYLOADS = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "'; DROP TABLE users; --",
    "Robert'); DELETE FROM api_tokens; --",
    "{{ 7*7 }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_token_name_is_rendered_escaped(site: Site, payload: str) -> None:
    client = site.client("inv1")
    response = client.post("/account/tokens", data={"name": payload})
    assert response.status_code == 200
    page = client.get("/account/tokens").text
    assert str(escape(payload)) in page  # shown, escaped
    assert "<script>alert" not in page and "<img src=x" not in page
    if "{{" in payload:
        assert "{{ 7*7 }}" in page  # not evaluated as a template
    names = [t["name"] for t in client.get("/api/v1/tokens").json()]
    assert payload in names  # stored verbatim, tables intact


@pytest.mark.parametrize("payload", PAYLOADS)
def test_login_fields_and_admin_form_echo_escaped(site: Site, payload: str) -> None:
    anon = site.client()
    page = anon.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = anon.post(
        "/login",
        data={"username": payload, "password": payload, "csrf_token": token, "next": payload},
    )
    assert response.status_code == 401
    assert "<script>alert" not in response.text and "<img src=x" not in response.text
    admin = site.client("admin")
    accounts = len(admin.get("/api/v1/users").json())
    echoed = admin.post(
        "/admin/users", data={"username": payload, "role": payload, "password": PASSWORD}
    )
    assert echoed.status_code == 422
    assert "<script>alert" not in echoed.text and "<img src=x" not in echoed.text
    assert admin.get("/api/v1/users").status_code == 200  # users table still there
    assert len(admin.get("/api/v1/users").json()) == accounts  # nothing added or deleted


def test_nul_character_in_any_page_form_is_refused_by_name_on_each_backend(db_url: str) -> None:
    """PostgreSQL cannot store NUL in text: a page form carrying one is refused (422, field
    named) before anything is written, on both backends alike, never a server error."""
    from sqlalchemy import func, select
    from web_support import make_site

    from reluth.queries.models import DataQuery

    site = make_site(db_url)
    try:
        inv = site.client("inv1")
        code = str(inv.post("/patients", data={"centre": "C01"}).headers["location"]).rsplit(
            "/", 1
        )[1]
        refused = site.client("mon1").post(
            f"/patients/{code}/queries",
            data={"field": "patients sex", "question": "Source\x00 says?"},
        )
        assert refused.status_code == 422 and "question" in refused.text
        assert "NUL" in refused.text
        ok = site.client("mon1").post(
            f"/patients/{code}/queries", data={"field": "patients sex", "question": "Source says?"}
        )
        assert ok.status_code == 303
        with site.db() as db:
            assert db.scalar(select(func.count()).select_from(DataQuery)) == 1
    finally:
        site.app.state.engine.dispose()
