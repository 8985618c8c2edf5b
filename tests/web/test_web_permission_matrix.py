"""Every route × every role: the expected allow/deny, written out literally, and a guard that
no route escapes the matrix. Cross-centre access by ID guessing is in the domain-page tests."""

from __future__ import annotations

from typing import Any

import pytest
from web_support import ROLE_USER, Site

from reluth.auth.roles import Role

ALL = frozenset(Role)
SITE_READERS = frozenset(
    {
        Role.INVESTIGATOR,
        Role.RESEARCH_NURSE,
        Role.MONITOR,
        Role.DATA_MANAGER,
        Role.PHARMACOVIGILANCE,
        Role.STATISTICIAN,
    }
)
ADMIN = frozenset({Role.ADMIN})

# (method, path, roles allowed, json or form body). Allowed → 2xx/3xx or 422 on a bad body;
# denied → 403. Unauthenticated → 401 (API) or redirect to login (pages), for every route.
MATRIX: list[tuple[str, str, frozenset[Role], dict[str, Any] | None]] = [
    ("GET", "/dashboard", SITE_READERS, None),
    ("GET", "/account/tokens", ALL, None),
    ("POST", "/account/tokens", ALL, {"name": "t"}),
    ("GET", "/admin/users", ADMIN, None),
    ("POST", "/admin/users", ADMIN, {"username": "", "role": "admin", "password": "x"}),
    ("GET", "/api/v1/me", ALL, None),
    ("GET", "/api/v1/dashboard", SITE_READERS, None),
    ("GET", "/api/v1/tokens", ALL, None),
    ("POST", "/api/v1/tokens", ALL, {"name": "t"}),
    ("GET", "/api/v1/users", ADMIN, None),
    ("POST", "/api/v1/users", ADMIN, {"username": "u", "role": "x", "password": "x" * 12}),
]
# Routes outside the matrix on purpose: public, or with their own tests.
UNGUARDED = {
    "/login",
    "/logout",
    "/",
    "/account/tokens/{token_id}/revoke",
    "/api/v1/tokens/{token_id}",
}


def _call(client: Any, method: str, path: str, body: dict[str, Any] | None) -> int:
    if method == "GET":
        return int(client.get(path).status_code)
    if path.startswith("/api/"):
        return int(client.request(method, path, json=body).status_code)
    return int(client.request(method, path, data=body).status_code)


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_matrix(shared_site: Site, role: Role) -> None:
    client = shared_site.client(ROLE_USER[role])
    failures = []
    for method, path, allowed, body in MATRIX:
        status = _call(client, method, path, body)
        ok = status != 403 and status < 500 if role in allowed else status == 403
        if not ok:
            failures.append(
                f"{method} {path}: {status} (expected {'allow' if role in allowed else 403})"
            )
    assert not failures, failures


def test_anonymous_is_sent_to_login_everywhere(shared_site: Site) -> None:
    client = shared_site.client()
    for method, path, _allowed, body in MATRIX:
        status = _call(client, method, path, body)
        assert status == (401 if path.startswith("/api/") else 303), (method, path, status)


def test_every_route_is_in_the_matrix(shared_site: Site) -> None:
    from reluth.web import api, pages

    covered = {path for _m, path, _a, _b in MATRIX} | UNGUARDED
    routes = {r.path for r in pages.router.routes} | {  # type: ignore[attr-defined]
        "/api/v1" + r.path
        for r in api.router.routes  # type: ignore[attr-defined]
    }
    assert routes - covered == set()
