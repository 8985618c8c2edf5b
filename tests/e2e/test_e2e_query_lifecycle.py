"""The query lifecycle in a real browser: the monitor verifies a lab value and raises a query
from it on its record page; the research nurse answers by correcting the value (through the
correction path, with a reason), which clears its SDV; the principal investigator signs the
visit; a later change invalidates the signature; the data manager locks the patient and the
status grid shows it locked. Screenshot of the status grid in docs/screenshots/."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.store.storekit import not_childbearing as storekit_not_childbearing
from tests.store.storekit import patient_file

from conftest import LiveServer, actor_of, seeded_server
from reluth.core.context import writing
from reluth.lifecycle import signature_service as signing
from reluth.patients import service as patients
from reluth.randomization import service as randomization
from reluth.safety import service as safety
from reluth.treatment import service as treatment

pytestmark = pytest.mark.browser
PASSWORD = "browser test password"
NOW = dt.datetime(2025, 3, 12, 9, 0, tzinfo=dt.UTC)
CODE = "C01-0001"
VISIT = "LAB-W00"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, int]]:
    with seeded_server(
        tmp_path_factory.mktemp("e2e") / "e2e.db",
        NOW,
        PASSWORD,
        {"C01": "Centre One"},
        {
            "inv1": ("investigator", ("C01",)),
            "nurse1": ("research_nurse", ("C01",)),
            "mon1": ("monitor", ("C01",)),
            "dm": ("data_manager", ()),
            "stat": ("statistician", ()),
        },
    ) as live:
        app = live.app
        engine, trial = app.state.engine, app.state.trial
        with writing(engine, actor_of(app, "admin"), trial) as ctx:
            signing.designate_principal_investigator(ctx, "inv1", "C01", "Dr Anne Martin")
        with writing(engine, actor_of(app, "nurse1"), trial) as ctx:
            patients.register_patient(ctx, "C01", CODE)
            assert patients.screen_patient(ctx, patient_file(CODE)).status == "eligible"
            patients.include_patient(ctx, CODE, dt.date(2024, 10, 28), dt.date(2024, 10, 30))
            storekit_not_childbearing(ctx, CODE)
            treatment.record_cycle(ctx, CODE, 1, dt.date(2024, 11, 4), Decimal("7.4"), "L1")
            treatment.record_cycle(ctx, CODE, 2, dt.date(2024, 12, 30), Decimal("7.4"), "L2")
            patients.record_pre_randomization(ctx, CODE, dt.date(2025, 2, 24), False, "SD")
        with writing(engine, actor_of(app, "stat"), trial) as ctx:
            randomization.configure(ctx, "minimization")
        with writing(engine, actor_of(app, "inv1"), trial) as ctx:
            randomization.randomize(ctx, CODE, "e2e-query", rng=random.Random(1))
        with writing(engine, actor_of(app, "nurse1"), trial) as ctx:
            treatment.record_visit(ctx, CODE, VISIT, NOW.date())
            lab = safety.record_lab(
                ctx, CODE, {"test": "alt", "value": "30", "unit": "U/L", "date": "2025-03-12",
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


def _submit(page: Any, button: Any) -> None:
    button.click()
    page.wait_for_load_state("networkidle")


def test_query_answered_by_correction_then_signature_and_lock(
    browser: Any, server: tuple[LiveServer, int], screenshots: Path
) -> None:
    live, lab = server
    mon = _login(browser, live, "mon1")
    mon.goto(f"{live.url}/patients/{CODE}/lifecycle")
    sdv = mon.get_by_test_id("sdv-form")
    sdv.get_by_label("Form table").fill("lab_results")
    sdv.get_by_label("Record id").fill(str(lab))
    sdv.get_by_label("Field (empty: the whole form)").fill("value")
    _submit(mon, sdv.get_by_role("button", name="Mark verified"))
    assert mon.get_by_test_id("sdv-state").inner_text() == "verified"

    mon.goto(f"{live.url}/forms/lab/{lab}")  # the query button next to the saved value
    mon.get_by_test_id("query-value").click()
    mon.get_by_label("Question about Value (U/L)").fill("The source says 33 U/L?")
    _submit(mon, mon.get_by_role("button", name="Raise query"))
    assert mon.get_by_test_id("query-raised").is_visible()
    assert mon.get_by_test_id("queries-value").inner_text() == "1 open"

    nurse = _login(browser, live, "nurse1")
    nurse.goto(f"{live.url}/forms/lab/{lab}")
    fix = nurse.get_by_test_id("correct-form")
    fix.get_by_label("New value of value").fill("33")
    fix.get_by_label("Reason for the correction (required)").fill("copied from the source")
    _submit(nurse, fix.get_by_role("button", name="Correct the value and answer"))
    assert nurse.url.endswith(f"/forms/lab/{lab}")
    values = nurse.get_by_test_id("record-values").inner_text()
    assert "33" in values
    assert "Corrected value to 33: copied from the source" in nurse.content()

    mon.goto(f"{live.url}/patients/{CODE}/lifecycle")
    assert mon.get_by_test_id("sdv-state").inner_text().startswith("cleared by update")

    inv = _login(browser, live, "inv1")
    inv.goto(f"{live.url}/patients/{CODE}/lifecycle")
    sign = inv.get_by_test_id("sign-form")
    sign.get_by_label("Sign", exact=True).select_option("visit")
    sign.get_by_label("Visit code (a visit)").fill(VISIT)
    sign.get_by_label("Your password (your electronic signature)").fill(PASSWORD)
    _submit(inv, sign.get_by_role("button", name="Sign"))
    assert inv.get_by_test_id("signature-state").inner_text() == "valid"

    nurse.goto(f"{live.url}/forms/lab/{lab}/edit")  # a later change of a signed value
    nurse.get_by_label("Value (U/L)", exact=True).fill("34")
    nurse.get_by_label("Reason for the correction (required)").fill("second look at the source")
    _submit(nurse, nurse.get_by_role("button", name="Save correction"))
    inv.goto(f"{live.url}/patients/{CODE}/lifecycle")
    assert inv.get_by_test_id("signature-state").inner_text().startswith("invalid: invalidated")

    dm = _login(browser, live, "dm")
    dm.goto(f"{live.url}/patients/{CODE}/lifecycle")
    dm.get_by_label("Reason").fill("casebook reviewed")
    _submit(dm, dm.get_by_test_id("lock-button"))
    assert "casebook reviewed" in dm.get_by_test_id("locks").inner_text()
    dm.goto(f"{live.url}/status")
    grid = dm.get_by_test_id("status-grid")
    assert grid.locator("td.s-locked").count() > 0
    assert grid.locator("td:not(.s-locked):not(:empty)").count() == 0
    dm.screenshot(path=str(screenshots / "status-grid.png"), full_page=True)
    for page in (mon, nurse, inv, dm):
        page.close()
