"""The local tumour assessment and the correction of a clinical form in a real browser: the
RECIST response computed as the lesions are typed, a saved assessment, and a concomitant
medication corrected through the generic correction page; screenshots for the docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_e2e_browser import _ready_patient, login, server  # noqa: F401  (the fixture)

from conftest import LiveServer

pytestmark = pytest.mark.browser


def test_local_assessment_and_conmed_correction_pages(
    browser: Any,
    server: LiveServer,  # noqa: F811
    screenshots: Path,
) -> None:
    code = _ready_patient(server.app, "C01-0078")
    page = login(browser, server, "inv1")
    page.goto(f"{server.url}/patients/{code}/local-assessment")
    page.locator("#read-date").fill("2025-03-07")
    for i, (lid, organ, kind, mm) in enumerate(
        (("T1", "liver", "target", "40"), ("T2", "liver", "target", "21,5"))
    ):
        page.locator(f"#id_{i}").fill(lid)
        page.locator(f"#organ_{i}").fill(organ)
        page.locator(f"#kind_{i}").select_option(kind)
        page.locator(f"#diameter_{i}").fill(mm)
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Save local assessment").click()
    page.wait_for_load_state("networkidle")
    assert "Saved" in page.get_by_test_id("saved").inner_text()
    assert "61.5" in page.content() or "61,5" in page.content()
    page.screenshot(path=str(screenshots / "local-assessment.png"), full_page=True)

    page.goto(f"{server.url}/patients/{code}/forms/conmed")
    page.get_by_label("Drug name").fill("Lanreotide")
    page.get_by_label("Indication").fill("carcinoid syndrome")
    page.get_by_label("Route").select_option("subcutaneous")
    page.get_by_label("Start date").fill("2023-01-10")
    page.get_by_label("Ongoing").check()
    page.get_by_role("button", name="Save concomitant medication").click()
    page.wait_for_load_state("networkidle")
    record = page.url.rsplit("saved=", 1)[1]
    page.goto(f"{server.url}/forms/conmed/{record}/edit")
    page.locator("#edit-ongoing").uncheck()
    page.locator("#edit-stop_date").fill("2025-03-01")
    page.locator("#edit-reason").fill("stopped before the first cycle, source p. 2")
    page.screenshot(path=str(screenshots / "conmed-correction.png"), full_page=True)
    page.get_by_role("button", name="Save correction").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"/patients/{code}/forms/conmed")
    assert "2025-03-01" in page.get_by_test_id("records-conmed").inner_text() or (
        "01/03/2025" in page.get_by_test_id("records-conmed").inner_text()
    )
    page.close()
