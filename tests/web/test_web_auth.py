"""Login, throttling of failed logins, session cookie flags, idle timeout, logout, CSRF, API
tokens."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import PASSWORD, Site

from reluth.auth import service as auth
from reluth.db.audit import AuditLog
from reluth.db.session import read_session
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


def _error(response: object) -> str:
    found = re.search(r'id="login-error">([^<]*)<', response.text)  # type: ignore[attr-defined]
    assert found is not None, response.text  # type: ignore[attr-defined]
    return found.group(1)


def _from(site: Site, address: str) -> TestClient:
    return TestClient(site.app, follow_redirects=False, client=(address, 50000))


def _lock_events(site: Site) -> list[AuditLog]:
    with read_session(site.app.state.engine) as db:
        return list(db.scalars(select(AuditLog).where(AuditLog.action == "lock")))


def test_failures_are_throttled_with_progressive_delays_not_a_lockout(site: Site) -> None:
    """After the free failures of one account from one address, each further failure blocks
    the next attempt for 1 s, then 2 s, ... (not 15 minutes): the right password is refused
    while blocked and accepted once the delay has passed."""
    client = site.client()
    free = auth.THROTTLE_FREE["pair"]
    for _ in range(free):
        assert _login(client, "nurse1", "not the password").status_code == 401
    assert not _lock_events(site)
    assert _login(client, "nurse1", "not the password").status_code == 401  # blocked 1 s
    assert _login(client, "nurse1", PASSWORD).status_code == 401
    site.clock.advance(seconds=1.1)
    assert _login(client, "nurse1", "still not it").status_code == 401  # blocked 2 s
    site.clock.advance(seconds=1.1)
    assert _login(client, "nurse1", PASSWORD).status_code == 401
    site.clock.advance(seconds=1)
    assert _login(client, "nurse1", PASSWORD).status_code == 303
    locks = _lock_events(site)
    assert [(e.username, e.role, e.record_id) for e in locks] == [
        ("reluth", "system", "pair:nurse1|testclient")
    ] * 2


def test_free_failures_do_not_delay_and_success_resets_the_count(site: Site) -> None:
    client = site.client()
    for _ in range(2):
        for _ in range(auth.THROTTLE_FREE["pair"]):
            assert _login(client, "inv1", "nope nope nope").status_code == 401
        assert _login(client, "inv1", PASSWORD).status_code == 303
    assert not _lock_events(site)


def test_unknown_user_wrong_password_and_throttled_look_alike(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same status, same message, and the same work: one password-hash verification per
    attempt, whether the account exists, the password is wrong or the attempt is throttled
    (so timing does not tell them apart either; no wall-clock threshold is asserted)."""
    verified: list[str] = []

    class Counting(type(auth._HASHER)):  # type: ignore[misc]
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            verified.append(str(hash)[:9])
            return bool(super().verify(hash, password))

    hasher = auth._HASHER
    monkeypatch.setattr(
        auth,
        "_HASHER",
        Counting(hasher.time_cost, hasher.memory_cost, hasher.parallelism),
    )
    client = site.client()
    answers = {}
    for label, username, password in (
        ("unknown", "nobody", "wrong password!!"),
        ("wrong", "inv1", "wrong password!!"),
    ):
        verified.clear()
        answers[label] = _login(client, username, password)
        assert len(verified) == 1, (label, verified)
    for _ in range(auth.THROTTLE_FREE["pair"]):
        _login(client, "inv1", "wrong password!!")
    verified.clear()
    answers["throttled"] = _login(client, "inv1", PASSWORD)
    assert len(verified) == 1
    assert {r.status_code for r in answers.values()} == {401}
    assert len({_error(r) for r in answers.values()}) == 1
    assert "invalid username or password" in _error(answers["throttled"])


def test_an_account_is_throttled_whatever_the_address(site: Site) -> None:
    """Guessing one account's password from many addresses is slowed down per account."""
    for n in range(auth.THROTTLE_FREE["user"] + 1):
        assert (
            _login(_from(site, f"10.0.0.{n + 1}"), "inv1", "guess guess guess").status_code == 401
        )
    assert _login(_from(site, "10.0.1.1"), "inv1", PASSWORD).status_code == 401
    assert _login(_from(site, "10.0.1.1"), "dm", PASSWORD).status_code == 303  # others unaffected
    site.clock.advance(seconds=1.1)
    assert _login(_from(site, "10.0.1.1"), "inv1", PASSWORD).status_code == 303


def test_an_address_spraying_many_accounts_is_throttled(site: Site) -> None:
    """One address trying a password on many (here unknown) accounts is slowed down per
    address, without touching the accounts as seen from elsewhere."""
    sprayer = _from(site, "192.0.2.7")
    for n in range(auth.THROTTLE_FREE["addr"] + 1):
        assert _login(sprayer, f"ghost{n}", "Summer2025!!Summer").status_code == 401
    assert _login(sprayer, "inv1", PASSWORD).status_code == 401
    assert _login(_from(site, "192.0.2.8"), "inv1", PASSWORD).status_code == 303
    site.clock.advance(seconds=1.1)
    assert _login(sprayer, "inv1", PASSWORD).status_code == 303


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
    # a token-authenticated request needs no CSRF token (no cookie is involved), but an API
    # token cannot mint tokens: they are created from a password login
    minted = bearer.post("/api/v1/tokens", json={"name": "second"})
    assert minted.status_code == 403 and "password login" in minted.json()["error"]
    # someone else cannot revoke it
    assert site.client("dm").delete(f"/api/v1/tokens/{body['id']}").status_code == 404
    assert client.delete(f"/api/v1/tokens/{body['id']}").json()["revoked"] is True
    assert bearer.get("/api/v1/me").status_code == 401
    bogus = TestClient(site.app, headers={"Authorization": "Bearer rlt_not-a-token"})
    assert bogus.get("/api/v1/me").status_code == 401


def test_stored_secrets_are_hashes(site: Site) -> None:
    client = site.client("stat")
    plain = client.post("/api/v1/tokens", json={"name": "n"}).json()["token"]
    with site.reading_as("stat") as ctx:
        user = auth.get_user(ctx.session, "stat")
        assert user.password_hash.startswith("$argon2id$")
        stored = [t.token_sha256 for t in auth.list_tokens(ctx)]
    assert plain not in stored and auth.sha256(plain) in stored


def test_inactive_user_cannot_log_in_and_loses_sessions(site: Site) -> None:
    client = site.client("mon1")
    with site.as_user("admin", reason="left the trial") as ctx:
        auth.set_active(ctx, "mon1", False)
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
