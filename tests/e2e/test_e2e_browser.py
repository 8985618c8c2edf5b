"""The eCRF in a real browser: login, the investigator's pages, and the blinded reviewer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from conftest import LiveServer
from reluth.auth import service as auth
from reluth.auth.models import Centre
from reluth.web.app import create_app

pytestmark = pytest.mark.browser
PASSWORD = "browser test password"
ARM_WORDS = re.compile(
    r"\b(arm|experimental|control|surveillance|cycle 3|cycle 4|dosimetry)\b", re.I
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    saved = auth._HASHER
    auth._HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app = create_app(f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'e2e.db'}")
    with app.state.sessionmaker() as db:
        db.add_all([Centre(code="C01", name="Centre One"), Centre(code="C02", name="Centre Two")])
        db.flush()
        auth.create_user(db, "inv1", "investigator", PASSWORD, ["C01"])
        auth.create_user(db, "rev", "central_reviewer", PASSWORD)
        auth.create_user(db, "admin", "admin", PASSWORD)
        db.commit()
    try:
        with LiveServer(app) as live:
            yield live
    finally:
        auth._HASHER = saved
        app.state.engine.dispose()


def login(browser: Any, server: LiveServer, username: str) -> Any:
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{server.url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
    return page


def test_login_rejected_then_accepted_keeps_username(
    browser: Any, server: LiveServer, screenshots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{server.url}/dashboard")
    assert "/login" in page.url
    page.get_by_label("Username").fill("inv1")
    page.get_by_label("Password").fill("wrong password")
    page.keyboard.press("Enter")
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("alert").inner_text().startswith("invalid username or password")
    assert page.get_by_label("Username").input_value() == "inv1"  # no lost input
    page.screenshot(path=str(screenshots / "login.png"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
    page.wait_for_url(re.compile(r".*/dashboard$"))
    assert "inv1" in page.get_by_test_id("whoami").inner_text()
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    page.close()


def test_htmx_is_served_locally(browser: Any, server: LiveServer) -> None:
    page = login(browser, server, "inv1")
    assert page.evaluate("typeof htmx") == "object"
    assert page.evaluate("htmx.version").startswith("2.")
    page.close()


def test_admin_creates_a_user_and_sees_errors_next_to_the_form(
    browser: Any, server: LiveServer, screenshots: Path
) -> None:
    page = login(browser, server, "admin")
    page.get_by_label("Username").fill("nurse9")
    page.get_by_label("Role").select_option("research_nurse")
    page.get_by_label("Initial password (at least 12 characters)").fill(PASSWORD)
    page.get_by_role("button", name="Add user").click()
    page.wait_for_load_state("networkidle")
    assert "needs at least one centre" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Username").input_value() == "nurse9"
    page.get_by_label(re.compile("C02")).check()
    page.get_by_label("Initial password (at least 12 characters)").fill(PASSWORD)
    page.get_by_role("button", name="Add user").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("cell", name="nurse9").is_visible()
    page.screenshot(path=str(screenshots / "users.png"), full_page=True)
    page.close()
