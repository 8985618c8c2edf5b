"""The data lifecycle in a real browser: the monitor verifies a lab value, the principal
investigator signs the casebook, the investigator corrects the value (its SDV is cleared and
the signature invalidated), then the data manager locks the patient and the lab form is
refused naming the lock. Screenshots of the new pages go to docs/screenshots/."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer, actor_of, seeded_server
from reluth.core.context import writing
from reluth.lifecycle import signature_service as signing
from reluth.safety import service as safety

pytestmark = pytest.mark.browser
PASSWORD = "browser test password"
NOW = dt.datetime(2025, 3, 12, 9, 0, tzinfo=dt.UTC)
CODE = "C01-0001"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, int]]:
    import json

    from test_e2e_browser import EXAMPLE

    from reluth.patients import service as patients

    with seeded_server(
        tmp_path_factory.mktemp("e2e") / "e2e.db",
        NOW,
        PASSWORD,
        {"C01": "Centre One"},
        {
            "inv1": ("investigator", ("C01",)),
            "mon1": ("monitor", ("C01",)),
            "dm": ("data_manager", ()),
        },
    ) as live:
        app = live.app
        engine, trial = app.state.engine, app.state.trial
        with writing(engine, actor_of(app, "admin"), trial) as ctx:
            signing.designate_principal_investigator(ctx, "inv1", "C01", "Dr Anne Martin")
        data = json.loads(EXAMPLE.read_text())
        data["patient_id"] = CODE
        with writing(engine, actor_of(app, "inv1"), trial) as ctx:
            patients.register_patient(ctx, "C01", CODE)
            assert patients.screen_patient(ctx, data).status == "eligible"
            patients.include_patient(ctx, CODE, dt.date(2024, 10, 28), dt.date(2025, 3, 4))
            lab = safety.record_lab(
                ctx, CODE, {"test": "alt", "value": "30", "unit": "U/L", "date": "2025-03-11",
                            "uln": "40"}
            ).id  # fmt: skip
        yield live, lab


def _login(browser: Any, live: LiveServer, username: str) -> Any:
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{live.url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
    return page


def test_sdv_signature_correction_and_lock(
    browser: Any, server: tuple[LiveServer, int], screenshots: Path
) -> None:
    live, lab = server
    mon = _login(browser, live, "mon1")
    mon.goto(f"{live.url}/patients/{CODE}/lifecycle")
    form = mon.get_by_test_id("sdv-form")
    form.get_by_label("Form table").fill("lab_results")
    form.get_by_label("Record id").fill(str(lab))
    form.get_by_label("Field (empty: the whole form)").fill("value")
    form.get_by_role("button", name="Mark verified").click()
    mon.wait_for_load_state("networkidle")
    assert mon.get_by_test_id("sdv-state").inner_text() == "verified"

    inv = _login(browser, live, "inv1")
    inv.goto(f"{live.url}/patients/{CODE}/lifecycle")
    inv.get_by_label("Your password (your electronic signature)").fill(PASSWORD)
    inv.get_by_role("button", name="Sign").click()
    inv.wait_for_load_state("networkidle")
    assert inv.get_by_test_id("signature-state").inner_text() == "valid"
    inv.screenshot(path=str(screenshots / "patient-lifecycle.png"), full_page=True)

    inv.goto(f"{live.url}/patients/{CODE}/labs/{lab}/edit")
    inv.get_by_label("Value (U/L)", exact=True).fill("31")
    inv.get_by_label("Reason for the correction (required)").fill("transcription error")
    inv.get_by_role("button", name="Save correction").click()
    inv.wait_for_load_state("networkidle")
    inv.goto(f"{live.url}/patients/{CODE}/lifecycle")
    assert inv.get_by_test_id("signature-state").inner_text().startswith("invalid: invalidated")
    assert inv.get_by_test_id("sdv-state").inner_text().startswith("cleared by update")

    mon.goto(f"{live.url}/sdv?centre=C01")
    assert "C01" in mon.get_by_test_id("sdv-report").inner_text()
    mon.screenshot(path=str(screenshots / "sdv-report.png"), full_page=True)

    dm = _login(browser, live, "dm")
    dm.goto(f"{live.url}/patients/{CODE}/lifecycle")
    dm.get_by_label("Reason").fill("casebook complete")
    dm.get_by_test_id("lock-button").click()
    dm.wait_for_load_state("networkidle")
    assert "casebook complete" in dm.get_by_test_id("locks").inner_text()
    dm.goto(f"{live.url}/lifecycle")
    dm.screenshot(path=str(screenshots / "lifecycle.png"), full_page=True)

    inv.goto(f"{live.url}/patients/{CODE}")
    inv.get_by_label("Test", exact=True).select_option("alt")
    inv.get_by_label("Value", exact=True).fill("35")
    inv.get_by_label("Unit", exact=True).fill("U/L")
    inv.get_by_label("Upper limit of normal").fill("40")
    inv.get_by_role("button", name="Save result").click()
    inv.wait_for_load_state("networkidle")
    assert "is locked (by dm" in inv.get_by_role("alert").inner_text()
    for page in (mon, inv, dm):
        page.close()
