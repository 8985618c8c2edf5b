"""Login, lockout, session cookie flags, idle timeout, logout, CSRF, API tokens."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from web_support import PASSWORD, Site

from reluth.auth import service as auth
from reluth.web.deps import LOGIN_CSRF_COOKIE, SESSION_COOKIE


def _login(client: TestClient, username: str, password: str, next_url: str = "/") -> object:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": token.group(1),
            "next": next_url,
        },
    )


def test_login_sets_a_secure_session_cookie_and_lands_on_the_role_home(site: Site) -> None:
    client = site.client()
    response = _login(client, "inv1", PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = next(h for h in response.headers.get_list("set-cookie") if SESSION_COOKIE in h)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/dashboard").status_code == 200
    assert _login(site.client(), "rev", PASSWORD).headers["location"] == "/review"


def test_secure_flag_in_production(site: Site) -> None:
    site.app.state.secure_cookies = True
    response = _login(
        TestClient(site.app, base_url="https://testserver", follow_redirects=False),
        "inv1",
        PASSWORD,
    )
    cookie = next(h for h in response.headers.get_list("set-cookie") if SESSION_COOKIE in h)
    assert "Secure" in cookie


def test_wrong_password_is_refused_with_one_generic_message(site: Site) -> None:
    client = site.client()
    bad = _login(client, "inv1", "wrong password!!")
    unknown = _login(client, "nobody", "wrong password!!")
    assert bad.status_code == unknown.status_code == 401
    assert "invalid username or password" in bad.text
    assert client.get("/dashboard").status_code == 303


def test_login_follows_only_local_next(site: Site) -> None:
    ok = _login(site.client(), "inv1", PASSWORD, "/account/tokens")
    assert ok.headers["location"] == "/account/tokens"
    for evil in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = _login(site.client(), "inv1", PASSWORD, evil)
        assert response.headers["location"] == "/dashboard"


def test_lockout_after_five_failures_then_unlock_after_fifteen_minutes(site: Site) -> None:
    client = site.client()
    for _ in range(auth.MAX_FAILED_LOGINS):
        assert _login(client, "nurse1", "not the password").status_code == 401
    # locked: even the right password is refused
    assert _login(client, "nurse1", PASSWORD).status_code == 401
    site.clock.advance(minutes=14, seconds=59)
    assert _login(client, "nurse1", PASSWORD).status_code == 401
    site.clock.advance(seconds=2)
    assert _login(client, "nurse1", PASSWORD).status_code == 303


def test_four_failures_do_not_lock_and_success_resets_the_count(site: Site) -> None:
    client = site.client()
    for _ in range(auth.MAX_FAILED_LOGINS - 1):
        _login(client, "inv1", "nope nope nope")
    assert _login(client, "inv1", PASSWORD).status_code == 303
    for _ in range(auth.MAX_FAILED_LOGINS - 1):
        _login(client, "inv1", "nope nope nope")
    assert _login(client, "inv1", PASSWORD).status_code == 303


def test_idle_session_expires(site: Site) -> None:
    client = site.client("inv1")
    assert client.get("/dashboard").status_code == 200
    site.clock.advance(minutes=29)
    assert client.get("/dashboard").status_code == 200  # activity slides the window
    site.clock.advance(minutes=29)
    assert client.get("/dashboard").status_code == 200
    site.clock.advance(minutes=30, seconds=1)
    response = client.get("/dashboard")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert client.get("/api/v1/me").status_code == 401
    site.clock.advance(seconds=1)  # an expired session stays dead
    assert client.get("/api/v1/me").status_code == 401


def test_absolute_session_lifetime(site: Site) -> None:
    client = site.client("inv1")
    for _ in range(26):  # keep active every 29 min for > 12 h
        site.clock.advance(minutes=29)
        last = client.get("/api/v1/me").status_code
        if last == 401:
            break
    assert last == 401


def test_logout_ends_the_session_server_side(site: Site) -> None:
    client = site.client("inv1")
    cookie = client.cookies.get(SESSION_COOKIE)
    assert client.post("/logout").status_code == 303
    replay = TestClient(site.app, follow_redirects=False)
    replay.cookies.set(SESSION_COOKIE, cookie or "")
    assert replay.get("/api/v1/me").status_code == 401


def test_csrf_required_on_every_cookie_authenticated_post(site: Site) -> None:
    client = site.client("admin")
    del client.headers["X-CSRF-Token"]
    data = {"username": "newbie", "role": "data_manager", "password": PASSWORD}
    assert client.post("/admin/users", data=data).status_code == 403
    assert client.post("/admin/users", data={**data, "csrf_token": "forged"}).status_code == 403
    assert client.post("/logout").status_code == 403
    assert client.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
    # another user's valid token is not this session's token
    other = site.client("dm")
    stolen = site.csrf["dm"]
    assert other.get("/api/v1/me").status_code == 200
    assert client.post("/admin/users", data={**data, "csrf_token": stolen}).status_code == 403
    ok = client.post("/admin/users", data={**data, "csrf_token": site.csrf["admin"]})
    assert ok.status_code == 303


def test_login_form_needs_its_csrf_cookie(site: Site) -> None:
    client = site.client()
    client.get("/login")
    client.cookies.delete(LOGIN_CSRF_COOKIE, path="/login")
    response = client.post(
        "/login", data={"username": "inv1", "password": PASSWORD, "csrf_token": "x"}
    )
    assert response.status_code == 403


def test_api_tokens_authenticate_without_cookie_and_stop_working_when_revoked(site: Site) -> None:
    client = site.client("stat")
    created = client.post("/api/v1/tokens", json={"name": "nightly export"})
    assert created.status_code == 201
    body = created.json()
    bearer = TestClient(site.app, headers={"Authorization": f"Bearer {body['token']}"})
    me = bearer.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["role"] == "statistician"
    # a token-authenticated write needs no CSRF token (no cookie is involved)
    assert bearer.post("/api/v1/tokens", json={"name": "second"}).status_code == 201
    # someone else cannot revoke it
    assert site.client("dm").delete(f"/api/v1/tokens/{body['id']}").status_code == 404
    assert client.delete(f"/api/v1/tokens/{body['id']}").json()["revoked"] is True
    assert bearer.get("/api/v1/me").status_code == 401
    bogus = TestClient(site.app, headers={"Authorization": "Bearer rlt_not-a-token"})
    assert bogus.get("/api/v1/me").status_code == 401


def test_stored_secrets_are_hashes(site: Site) -> None:
    client = site.client("stat")
    plain = client.post("/api/v1/tokens", json={"name": "n"}).json()["token"]
    with site.db() as db:
        user = auth.get_user(db, "stat")
        assert user.password_hash.startswith("$argon2id$")
        stored = [t.token_sha256 for t in auth.list_tokens(db, user)]
    assert plain not in stored and auth.sha256(plain) in stored


def test_inactive_user_cannot_log_in_and_loses_sessions(site: Site) -> None:
    client = site.client("mon1")
    with site.db() as db:
        auth.set_active(db, "mon1", False)
        db.commit()
    assert client.get("/api/v1/me").status_code == 401
    assert _login(site.client(), "mon1", PASSWORD).status_code == 401


@pytest.mark.parametrize("password", ["short", "elevenchars"])
def test_short_passwords_refused(site: Site, password: str) -> None:
    response = site.client("admin").post(
        "/api/v1/users", json={"username": "x1", "role": "admin", "password": password}
    )
    assert response.status_code == 422


def test_production_hasher_is_argon2id_with_rfc9106_low_memory_parameters() -> None:
    from argon2 import PasswordHasher

    encoded = PasswordHasher().hash(PASSWORD)
    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_a_request_never_holds_two_pooled_connections(site: Site) -> None:
    """A write request reads (authentication, the patient) and then writes through the audited
    door: its read connection goes back to the pool first, so concurrent requests cannot
    exhaust the pool by each holding one connection while waiting for a second."""
    from sqlalchemy import event
    from test_web_trial_flow import ready_patient

    code = ready_patient(site)  # included: labs may be recorded
    inv = site.client("inv1")
    engine = site.app.state.engine
    out = {"now": 0, "max": 0}

    def checkout(*_args: object) -> None:
        out["now"] += 1
        out["max"] = max(out["max"], out["now"])

    def checkin(*_args: object) -> None:
        out["now"] -= 1

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    try:
        lab = {"test": "alt", "value": "50", "unit": "U/L", "uln": "40", "date": "2025-03-11"}
        assert inv.post(f"/api/v1/patients/{code}/labs", json=lab).status_code == 201
        page = inv.post(f"/patients/{code}/labs", data=lab | {"value": "60"})
        assert page.status_code == 303, page.text
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "checkin", checkin)
    assert out["max"] == 1
