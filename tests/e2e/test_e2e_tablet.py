"""The main pages on a tablet (820 px wide, an iPad Air in portrait) without horizontal scrolling,
and the audit history on a laptop screen (1366 px) without it either (issue 17, usability)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_e2e_browser import PASSWORD, _actor, _ready_patient, server  # noqa: F401 (fixture)

from conftest import LiveServer
from reluth.core.context import writing
from reluth.randomization import service as randomization
from reluth.safety import service as safety

pytestmark = pytest.mark.browser
TABLET = {"width": 820, "height": 1180}
LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def patients(server: LiveServer) -> Iterator[dict[str, Any]]:  # noqa: F811
    """A randomized patient with a lab result, an AE and a QoL questionnaire; a second one
    ready to be randomized (its randomize page)."""
    from reluth.qol import service as qol
    from reluth.safety import records

    app = server.app
    code = _ready_patient(app, "C01-0801")
    ready = _ready_patient(app, "C01-0802")
    with writing(app.state.engine, _actor(app, "inv1"), app.state.trial) as ctx:
        randomization.randomize(ctx, code, "tablet-1")
        lab = safety.record_lab(
            ctx,
            code,
            {"test": "platelets", "value": "74000", "unit": "/mm3", "date": "2025-03-11"},
        )
        records.record_adverse_event(
            ctx,
            {
                "patient_id": code,
                "term": "Nausea",
                "grade": 2,
                "serious": False,
                "relatedness": "possible",
                "outcome": "recovering",
                "onset_date": "2025-03-10",
            },
        )
        qol.record_questionnaire(
            ctx,
            {
                "patient_id": code,
                "instrument": "QLQ-C30",
                "timepoint": "QOL-W00",
                "completed_on": "2025-03-10",
                "items": {str(i): 1 for i in range(1, 31)},
            },
        )
    with writing(
        app.state.engine, _actor(app, "inv1"), app.state.trial, "transcription error, source p. 4"
    ) as ctx:
        safety.edit_lab(ctx, code, lab.id, {"value": "45000", "lln": "150000"})
    yield {"code": code, "ready": ready, "lab": lab.id}


def _login(browser: Any, server: LiveServer, username: str, viewport: dict[str, int]) -> Any:  # noqa: F811
    page = browser.new_page(viewport=viewport)
    page.goto(f"{server.url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
    return page


def _overflow(page: Any, width: int) -> list[str]:
    """The elements wider than the viewport (what makes the page scroll sideways)."""
    found: list[str] = page.evaluate(
        """(width) => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > width + 0.5)
            .filter(e => !e.closest('.table-wrap, .status-wrap, details:not([open])'))
            .slice(0, 8)
            .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                 + (e.className ? '.' + String(e.className).split(' ').join('.') : ''))""",
        width,
    )
    return found


def _fits(page: Any, width: int) -> None:
    page.wait_for_load_state("networkidle")
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url}: scrollWidth {scroll} > {width}: {_overflow(page, width)}"


#: (name, user, path below the server; {code}, {ready}, {lab} filled in)
PAGES = [
    ("dashboard", "inv1", "/dashboard"),
    ("patients", "inv1", "/patients"),
    ("patient", "inv1", "/patients/{code}"),
    ("screening", "inv1", "/patients/{ready}/screening"),
    ("lab", "inv1", "/patients/{code}/labs/{lab}/edit"),
    ("adverse-events", "inv1", "/adverse-events"),
    ("qol", "inv1", "/patients/{code}/qol"),
    ("randomize", "inv1", "/patients/{ready}/randomize"),
    ("status", "inv1", "/status"),
    ("review", "rev", "/review"),
    ("review-patient", "rev", "/review/{code}"),
    ("audit", "inv1", "/patients/{code}/audit"),
]


def test_login_fits_a_tablet(browser: Any, server: LiveServer, screenshots: Path) -> None:  # noqa: F811
    page = browser.new_page(viewport=TABLET)
    page.goto(f"{server.url}/login")
    _fits(page, TABLET["width"])
    page.close()


@pytest.mark.parametrize("name,user,path", PAGES, ids=[p[0] for p in PAGES])
def test_main_pages_fit_a_tablet(
    browser: Any,
    server: LiveServer,  # noqa: F811
    patients: dict[str, Any],
    screenshots: Path,
    name: str,
    user: str,
    path: str,
) -> None:
    page = _login(browser, server, user, TABLET)
    page.goto(server.url + path.format(**patients))
    assert page.locator("main h1").count() >= 1, page.url
    _fits(page, TABLET["width"])
    if name in ("patient", "screening", "audit", "review-patient"):
        page.screenshot(path=str(screenshots / f"tablet-{name}.png"), full_page=True)
    page.close()


def test_audit_history_fits_a_laptop_in_plain_words(
    browser: Any,
    server: LiveServer,  # noqa: F811
    patients: dict[str, Any],
    screenshots: Path,
) -> None:
    page = _login(browser, server, "inv1", LAPTOP)
    page.goto(f"{server.url}/patients/{patients['code']}/audit")
    _fits(page, LAPTOP["width"])
    table = page.get_by_test_id("audit-table")
    assert '{"' not in table.inner_text() and "\\u" not in table.inner_text()
    change = page.locator('tr[data-table="lab_results"][data-action="update"]').last
    text = change.inner_text()
    assert re.search(r"Value \(/mm3\)\s*74000\s*→\s*45000", text), text
    assert re.search(r"Lower limit of normal \(/mm3\)\s*—\s*→\s*150000", text), text
    assert "transcription error, source p. 4" in text and "Europe/Paris" in text
    change.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "audit-history.png"), full_page=True)
    page.close()
