"""The administrator's account tasks on the users page and the API — deactivate, reactivate,
unlock, reset the password, change the role — each an audit row carrying its reason and how the
administrator authenticated; no self-grant of the unblinded role; the access review; a reset
password that forces the password page; tokens created only from a password login, with an
expiry (issue 13, items 3 and 7)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from test_web_auth import _login
from web_support import PASSWORD, Site

from reluth.auth import service as auth
from reluth.db.audit import AuditLog
from reluth.db.session import read_session

TEMPORARY = "temporary pass 4711"


def _user_id(site: Site, username: str) -> str:
    with site.db() as db:
        return str(auth.get_user(db, username).id)


def _rows(site: Site, username: str, since: int = 0) -> list[AuditLog]:
    """Audit rows of the account ``username`` after sequence number ``since``."""
    with read_session(site.app.state.engine) as db:
        stmt = (
            select(AuditLog)
            .where(
                AuditLog.table_name == "users",
                AuditLog.record_id == _user_id(site, username),
                AuditLog.seq > since,
            )
            .order_by(AuditLog.seq)
        )
        return list(db.scalars(stmt))


def _last_seq(site: Site) -> int:
    with read_session(site.app.state.engine) as db:
        return int(db.scalar(select(AuditLog.seq).order_by(AuditLog.seq.desc()).limit(1)) or 0)


def _changes(rows: list[AuditLog]) -> dict[str, tuple[Any, Any, str | None, str, str | None]]:
    """field (or event) -> (old, new, reason, who, how authenticated)."""
    out = {}
    for r in rows:
        key = r.field or r.action
        old = None if r.old_value is None else json.loads(r.old_value)
        new = None if r.new_value is None else json.loads(r.new_value)
        out[key] = (old, new, r.reason, r.username, r.auth_method)
    return out


def _throttle(site: Site, username: str) -> TestClient:
    """Failed logins until the account is throttled (from the test client's address)."""
    client = site.client()
    for _ in range(auth.THROTTLE_FREE["pair"] + 1):
        assert _login(client, username, "not the password").status_code == 401
    assert _login(client, username, PASSWORD).status_code == 401
    return client


def test_account_changes_on_the_users_page_are_audit_rows_with_their_reason(site: Site) -> None:
    admin = site.client("admin")
    page = admin.get("/admin/users").text
    assert 'action="/admin/users/mon1/deactivate"' in page
    assert 'action="/admin/users/mon1/unlock"' in page

    before = _last_seq(site)
    refused = admin.post("/admin/users/mon1/deactivate", data={"reason": ""})
    assert refused.status_code == 422 and "a reason is required" in refused.text
    assert _rows(site, "mon1", before) == []  # nothing written

    monitor = site.client("mon1")
    done = admin.post("/admin/users/mon1/deactivate", data={"reason": "left the trial"})
    assert done.status_code == 200 and "User mon1: deactivated." in done.text
    assert _changes(_rows(site, "mon1", before))["active"] == (
        True,
        False,
        "left the trial",
        "admin",
        "web_session",
    )
    assert monitor.get("/api/v1/me").status_code == 401  # the open session stops at once
    assert _login(site.client(), "mon1", PASSWORD).status_code == 401

    step = _last_seq(site)
    back = admin.post("/admin/users/mon1/reactivate", data={"reason": "contract renewed"})
    assert back.status_code == 200 and "User mon1: reactivated." in back.text
    assert _changes(_rows(site, "mon1", step))["active"][:3] == (False, True, "contract renewed")
    assert _login(site.client(), "mon1", PASSWORD).status_code == 303

    step = _last_seq(site)
    moved = admin.post(
        "/admin/users/dm/set-role",
        data={"role": "monitor", "centres": ["C02"], "reason": "moved to monitoring"},
    )
    assert moved.status_code == 200, moved.text
    changes = _changes(_rows(site, "dm", step))
    assert changes["role"][:3] == ("data_manager", "monitor", "moved to monitoring")
    assert changes["centres"][2] == "moved to monitoring"
    assert site.client("dm").get("/api/v1/me").json()["role"] == "monitor"

    step = _last_seq(site)
    reset = admin.post(
        "/admin/users/nurse1/reset-password",
        data={"temporary_password": TEMPORARY, "reason": "forgotten, identity checked"},
    )
    assert reset.status_code == 200 and "User nurse1: password reset." in reset.text
    changes = _changes(_rows(site, "nurse1", step))
    assert changes["must_change_password"][:3] == (False, True, "forgotten, identity checked")
    old_hash, new_hash = changes["password_hash"][:2]
    assert str(new_hash).startswith("sha256:") and old_hash != new_hash  # never the hash itself

    throttled = _throttle(site, "inv1")
    step = _last_seq(site)
    unlocked = admin.post("/admin/users/inv1/unlock", data={"reason": "called the helpdesk"})
    assert unlocked.status_code == 200 and "User inv1: unlocked." in unlocked.text
    event = _changes(_rows(site, "inv1", step))["unlock"]
    assert event[1] == {"cleared": 2} and event[2:] == (
        "called the helpdesk",
        "admin",
        "web_session",
    )
    assert _login(throttled, "inv1", PASSWORD).status_code == 303


def test_account_changes_through_the_api_name_the_field_and_are_audited(site: Site) -> None:
    api = TestClient(site.app, headers={"Authorization": f"Bearer {site.token('admin')}"})
    url = "/api/v1/users/{}/{}"
    missing = api.post(url.format("mon1", "deactivate"), json={})
    assert missing.status_code == 422 and missing.json()["field"] == "reason"
    assert api.post(url.format("ghost", "deactivate"), json={"reason": "r"}).status_code == 404
    bad_role = api.post(url.format("dm", "set-role"), json={"role": "wizard", "reason": "r"})
    assert bad_role.status_code == 422 and bad_role.json()["field"] == "role"
    weak = api.post(
        url.format("nurse1", "reset-password"),
        json={"temporary_password": "password1234", "reason": "r"},
    )
    assert weak.status_code == 422 and weak.json()["field"] == "password"

    steps: list[tuple[str, str, dict[str, Any], str]] = [
        ("mon1", "deactivate", {}, "active"),
        ("mon1", "reactivate", {}, "active"),
        ("dm", "set-role", {"role": "pharmacovigilance"}, "role"),
        ("nurse1", "reset-password", {"temporary_password": TEMPORARY}, "must_change_password"),
    ]
    for username, action, body, field in steps:
        step = _last_seq(site)
        reason = f"{action} of {username} (ticket 12)"
        done = api.post(url.format(username, action), json={**body, "reason": reason})
        assert done.status_code == 200, (action, done.text)
        row = _changes(_rows(site, username, step))[field]
        assert row[2:] == (reason, "admin", "api_token"), (action, row)
    roles = {u["username"]: u["role"] for u in api.get("/api/v1/users").json()}
    assert roles["dm"] == "pharmacovigilance"

    _throttle(site, "inv2")
    step = _last_seq(site)
    unlocked = api.post(url.format("inv2", "unlock"), json={"reason": "locked out by a typo"})
    assert unlocked.status_code == 200 and unlocked.json()["username"] == "inv2"
    event = _changes(_rows(site, "inv2", step))["unlock"]
    assert event[2:] == ("locked out by a typo", "admin", "api_token")
    assert _login(site.client(), "inv2", PASSWORD).status_code == 303


def test_an_administrator_cannot_grant_themselves_the_unblinded_role(site: Site) -> None:
    admin = site.client("admin")
    step = _last_seq(site)
    page = admin.post(
        "/admin/users/admin/set-role", data={"role": "statistician", "reason": "need the list"}
    )
    assert page.status_code == 403 and "grant yourself the statistician role" in page.text
    api = admin.post(
        "/api/v1/users/admin/set-role", json={"role": "statistician", "reason": "need the list"}
    )
    assert api.status_code == 403 and "another administrator" in api.json()["error"]
    assert _rows(site, "admin", step) == []
    assert admin.get("/api/v1/me").json()["role"] == "admin"
    # granting it to another account is allowed (and shows in the access review)
    other = admin.post(
        "/api/v1/users/dm/set-role", json={"role": "statistician", "reason": "DSMB statistician"}
    )
    assert other.status_code == 200, other.text


def test_the_access_review_lists_every_unblinded_grant(site: Site) -> None:
    site.clock.advance(hours=1)
    admin = site.client("admin")
    granted = admin.post(
        "/admin/users/dm/set-role",
        data={"role": "statistician", "reason": "second statistician for the DSMB"},
    )
    assert granted.status_code == 200, granted.text
    page = admin.get("/admin/access-review")
    assert page.status_code == 200
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", page.text, re.S)
    cells = [re.split(r"</td>\s*<td>", r) for r in rows]
    assert ["stat", "statistician", "account created", "admin"] in [c[:4] for c in cells]
    dm = next(c for c in cells if c[0] == "dm")
    assert dm[1:4] == ["statistician", "role changed", "admin"]
    assert dm[4] == "2025-03-12 10:00:00" and dm[5] == "second statistician for the DSMB"
    assert dm[6] == "yes"
    review = admin.get("/api/v1/users/review").json()
    assert {(g["username"], g["how"], g["reason"]) for g in review} == {
        ("stat", "account created", None),
        ("dm", "role changed", "second statistician for the DSMB"),
    }
    # a grant that no longer holds stays listed, marked as not held
    admin.post("/admin/users/dm/set-role", data={"role": "data_manager", "reason": "DSMB over"})
    later = {g["username"]: g["active_now"] for g in admin.get("/api/v1/users/review").json()}
    assert later == {"stat": True, "dm": False}
    assert 'href="/admin/access-review"' in admin.get("/admin/users").text


def test_a_reset_password_must_be_changed_before_anything_else(site: Site) -> None:
    open_session = site.client("nurse1")
    with site.as_user("admin", reason="forgotten, identity checked") as ctx:
        auth.reset_password(ctx, "nurse1", TEMPORARY)
    # an open session and a new login both land on the password page, and nowhere else
    for client in (open_session, site.client()):
        if client is not open_session:
            landed = _login(client, "nurse1", TEMPORARY, "/patients")
            assert landed.headers["location"] == "/account/password"
        blocked = client.get("/dashboard")
        assert blocked.status_code == 303 and blocked.headers["location"] == "/account/password"
        api = client.get("/api/v1/me")
        assert api.status_code == 403 and "/account/password" in api.json()["error"]
        assert client.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
        form = client.get("/account/password")
        assert form.status_code == 200 and "reset by an administrator" in form.text
    client = site.client()
    _login(client, "nurse1", TEMPORARY)
    csrf = _csrf(client)
    wrong = client.post(
        "/account/password",
        data={"current_password": "nope", "new_password": "a brand new secret", "csrf_token": csrf},
    )
    assert wrong.status_code == 422 and 'id="password-error"' in wrong.text
    common = client.post(
        "/account/password",
        data={"current_password": TEMPORARY, "new_password": "password1234", "csrf_token": csrf},
    )
    assert common.status_code == 422 and "commonly used password" in common.text
    step = _last_seq(site)
    changed = client.post(
        "/account/password",
        data={
            "current_password": TEMPORARY,
            "new_password": "a brand new secret",
            "csrf_token": csrf,
        },
    )
    assert changed.status_code == 303, changed.text
    assert changed.headers["location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200
    row = _changes(_rows(site, "nurse1", step))["must_change_password"]
    assert row == (True, False, "password changed by its owner", "nurse1", "web_session")
    assert _login(site.client(), "nurse1", TEMPORARY).status_code == 401
    assert _login(site.client(), "nurse1", "a brand new secret").status_code == 303


def _csrf(client: TestClient) -> str:
    page = client.get("/account/password").text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_tokens_come_from_a_web_session_expire_and_cannot_mint_tokens(site: Site) -> None:
    browser = site.client("stat")
    made = browser.post("/api/v1/tokens", json={"name": "weekly", "expires_in_days": 7})
    assert made.status_code == 201, made.text
    body = made.json()
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert expires == site.clock() + dt.timedelta(days=7)
    default = browser.post("/api/v1/tokens", json={"name": "default lifetime"}).json()
    assert dt.datetime.fromisoformat(default["expires_at"]) == site.clock() + dt.timedelta(
        days=auth.API_TOKEN_DEFAULT_DAYS
    )
    too_long = browser.post("/api/v1/tokens", json={"name": "x", "expires_in_days": 400})
    assert too_long.status_code == 422

    bearer = TestClient(
        site.app, follow_redirects=False, headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert bearer.get("/api/v1/me").json()["via"] == "api_token"
    minted = bearer.post("/api/v1/tokens", json={"name": "child"})
    assert minted.status_code == 403 and "password login" in minted.json()["error"]
    page = bearer.post("/account/tokens", data={"name": "child", "expires_in_days": "7"})
    assert page.status_code == 403 and "password login" in page.text
    assert len(browser.get("/api/v1/tokens").json()) == 2  # nothing was minted

    created = browser.post(
        "/account/tokens", data={"name": "from the page", "expires_in_days": "30"}
    )
    assert created.status_code == 200 and 'data-testid="new-token"' in created.text
    assert (site.clock() + dt.timedelta(days=30)).strftime("%Y-%m-%d") in created.text

    site.clock.advance(days=7)
    assert bearer.get("/api/v1/me").status_code == 401  # expired
    with read_session(site.app.state.engine) as db:
        rows = list(db.scalars(select(AuditLog).where(AuditLog.table_name == "api_tokens")))
    inserts = [r for r in rows if r.action == "insert"]
    assert len(inserts) == 3 and {r.username for r in inserts} == {"stat"}
    assert {r.auth_method for r in inserts} == {"web_session"}


def test_logging_out_revokes_the_tokens_the_web_session_created(site: Site) -> None:
    """A token never outlives the login that made it: the web logout revokes what the session
    created (audited), and tokens of another session live on."""
    browser, other = site.client("stat"), site.client("stat")
    made = browser.post("/api/v1/tokens", json={"name": "script"}).json()
    kept = other.post("/api/v1/tokens", json={"name": "other session"}).json()
    bearer = TestClient(site.app, headers={"Authorization": f"Bearer {made['token']}"})
    survivor = TestClient(site.app, headers={"Authorization": f"Bearer {kept['token']}"})
    assert bearer.get("/api/v1/me").status_code == 200
    assert browser.post("/logout").status_code == 303
    assert bearer.get("/api/v1/me").status_code == 401
    assert survivor.get("/api/v1/me").status_code == 200
    assert browser.get("/api/v1/me").status_code == 401  # the session itself has ended
    with read_session(site.app.state.engine) as db:
        revoked = db.scalars(
            select(AuditLog).where(
                AuditLog.table_name == "api_tokens",
                AuditLog.record_id == str(made["id"]),
                AuditLog.field == "revoked_at",
            )
        ).one()
    assert revoked.username == "stat" and revoked.auth_method == "web_session"
    assert "logout" in (revoked.reason or "")


def test_revoking_a_token_is_an_audit_row(site: Site) -> None:
    browser = site.client("pv")
    token = browser.post("/api/v1/tokens", json={"name": "safety listing"}).json()
    assert browser.delete(f"/api/v1/tokens/{token['id']}").json()["revoked"] is True
    with read_session(site.app.state.engine) as db:
        row = db.scalars(
            select(AuditLog).where(
                AuditLog.table_name == "api_tokens",
                AuditLog.record_id == str(token["id"]),
                AuditLog.field == "revoked_at",
            )
        ).one()
    assert (row.username, row.reason) == ("pv", f"token {token['id']} revoked by pv")


def test_a_refused_reason_leaves_the_database_writable(site: Site) -> None:
    """A reason with control characters is refused naming the field, and the next write goes
    through (it once left SQLite's writer lock taken: every later write waited forever)."""
    import threading

    admin = site.client("admin")
    refused = admin.post("/api/v1/users/mon1/deactivate", json={"reason": "left\x1b[2J"})
    assert refused.status_code == 422 and refused.json()["field"] == "reason"
    outcome: list[int] = []

    def write() -> None:
        done = admin.post("/api/v1/users/mon1/deactivate", json={"reason": "left the trial"})
        outcome.append(done.status_code)

    worker = threading.Thread(target=write, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert outcome == [200]
