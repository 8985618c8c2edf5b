"""The clinical forms in a real browser: a concomitant medication refused then saved (values
kept, the message at its field), a withdrawal shown on the timeline; screenshots for the docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_e2e_browser import _ready_patient, login, server  # noqa: F401  (the fixture)

from conftest import LiveServer

pytestmark = pytest.mark.browser


def test_conmed_and_withdrawal_pages(
    browser: Any,
    server: LiveServer,  # noqa: F811
    screenshots: Path,
) -> None:
    code = _ready_patient(server.app, "C01-0077")
    page = login(browser, server, "inv1")
    page.goto(f"{server.url}/patients/{code}/forms/conmed")
    page.get_by_label("Drug name").fill("Lanreotide")
    page.get_by_label("ATC code").fill("H01C0")
    page.get_by_label("Indication").fill("carcinoid syndrome")
    page.get_by_label("Dose").fill("120")
    page.get_by_label("Unit", exact=True).fill("mg")
    page.get_by_label("Route").select_option("subcutaneous")
    page.get_by_label("Start date").fill("2023-01-10")
    page.get_by_label("Ongoing").check()
    page.get_by_role("button", name="Save concomitant medication").click()
    page.wait_for_load_state("networkidle")
    assert "not an ATC code" in page.locator("#f-atc_code-error").inner_text()
    assert page.get_by_label("Indication").input_value() == "carcinoid syndrome"
    page.get_by_label("ATC code").fill("H01CB03")
    page.get_by_role("button", name="Save concomitant medication").click()
    page.wait_for_load_state("networkidle")
    assert "Saved" in page.get_by_test_id("saved").inner_text()
    assert "H01CB03" in page.get_by_test_id("records-conmed").inner_text()
    page.screenshot(path=str(screenshots / "conmed-form.png"), full_page=True)
    page.goto(f"{server.url}/patients/{code}/forms/withdrawal")
    page.get_by_label("Kind").select_option("follow_up")
    page.locator("#f-withdrawal_date").fill("2025-03-11")
    page.get_by_label("Details").fill("moved abroad")
    page.get_by_role("button", name="Save withdrawal").click()
    page.wait_for_load_state("networkidle")
    page.goto(f"{server.url}/patients/{code}#disposition")
    assert "Withdrawal (from follow-up)" in page.get_by_test_id("disposition").inner_text()
    page.locator("#disposition").screenshot(path=str(screenshots / "patient-disposition.png"))
    page.close()
