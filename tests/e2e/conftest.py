"""Browser tests: the app served by uvicorn on loopback, driven by Debian's Chromium through
Playwright's Python API (never ``playwright install``). Skipped only when /usr/bin/chromium is
absent and CI is not set; under CI a missing browser fails the run."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

CHROMIUM = Path(os.environ.get("RELUTH_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {CHROMIUM} is missing: the browser tests must run")
    pytest.skip(f"{CHROMIUM} not installed")


class LiveServer:
    def __init__(self, app: Any) -> None:
        self.app = app
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def actor_of(app: Any, username: str) -> Any:
    """``username`` as a password-authenticated actor (as after a login)."""
    from reluth.auth import service as auth
    from reluth.auth.actor import AuthMethod
    from reluth.db.session import read_session

    with read_session(app.state.engine) as db:
        return auth.actor_for(auth.get_user(db, username), AuthMethod.PASSWORD)


@contextmanager
def seeded_server(
    db_path: Path,
    now: Any,
    password: str,
    centres: dict[str, str],
    users: dict[str, tuple[str, tuple[str, ...]]],
) -> Iterator[LiveServer]:
    """A served app on a fresh SQLite database whose clock stands at ``now``: an administrator
    made by the bootstrap, then ``centres`` (code -> name) and ``users`` (username -> role,
    centres) through the services, passwords hashed cheaply for speed."""
    from argon2 import PasswordHasher

    from reluth.auth import service as auth
    from reluth.core.context import writing
    from reluth.db.session import read_session
    from reluth.sites import service as sites
    from reluth.web.app import create_app

    saved = auth._HASHER
    auth._HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app = create_app(f"sqlite:///{db_path}", clock=lambda: now)
    engine, trial = app.state.engine, app.state.trial
    try:
        with read_session(engine) as db:
            operator = auth.bootstrap_actor(db, "e2e")
        with writing(engine, operator, trial) as ctx:
            auth.create_user(ctx, "admin", "admin", password)
        with writing(engine, actor_of(app, "admin"), trial) as ctx:
            for code, name in centres.items():
                sites.add_centre(ctx, code, name)
        with writing(engine, actor_of(app, "admin"), trial) as ctx:
            for username, (role, where) in users.items():
                auth.create_user(ctx, username, role, password, list(where))
        with LiveServer(app) as live:
            yield live
    finally:
        auth._HASHER = saved
        app.state.engine.dispose()


def type_into_form(page: Any, values: dict[str, str]) -> None:
    """Each value typed into the page's control of that name (a select chosen, a box ticked)."""
    for name, value in values.items():
        control = page.locator(f'[name="{name}"]')
        tag = control.evaluate("e => e.tagName + (e.type === 'checkbox' ? ':checkbox' : '')")
        if tag == "SELECT":
            control.select_option(value)
        elif tag.endswith(":checkbox"):
            control.check()
        else:
            control.fill(value)


def not_childbearing(app: Any, username: str, code: str, on: str) -> None:
    """Record, as ``username`` through the service, that the included woman ``code`` (the
    example patient file) is not of childbearing potential, so her cycles need no pregnancy
    test (the childbearing form's pages have their own tests in tests/web)."""
    from tests.store.storekit import NOT_CHILDBEARING

    from reluth.clinical import service as clinical
    from reluth.core.context import writing

    with writing(app.state.engine, actor_of(app, username), app.state.trial) as ctx:
        clinical.record_childbearing(ctx, code, {**NOT_CHILDBEARING, "assessed_on": on})
