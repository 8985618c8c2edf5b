"""The eCRF in a real browser: login, the investigator's pages, and the blinded reviewer."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from conftest import LiveServer, actor_of, not_childbearing, seeded_server, type_into_form
from reluth.auth.actor import Actor
from reluth.core.context import writing
from reluth.randomization import service as randomization

pytestmark = pytest.mark.browser
PASSWORD = "browser test password"
ARM_WORDS = re.compile(
    r"\b(arm|experimental|control|surveillance|cycle|dosimetry|randomi[sz]ed|randomization)\b",
    re.I,
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "patients" / "eligible.json"
#: The site's clock stands still just after the example patient's screening (2025-03-03), so
#: that the example's dates are in the trial's order and the time-bound criteria hold.
NOW = dt.datetime(2025, 3, 12, 9, 0, tzinfo=dt.UTC)


def _actor(app: Any, username: str) -> Actor:
    actor: Actor = actor_of(app, username)
    return actor


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    users: dict[str, tuple[str, tuple[str, ...]]] = {
        "inv1": ("investigator", ("C01",)),
        "rev": ("central_reviewer", ()),
        "stat": ("statistician", ()),
        "phys": ("medical_physicist", ()),
        "pv": ("pharmacovigilance", ()),
        "coder": ("coder", ()),
    }
    db = tmp_path_factory.mktemp("e2e") / "e2e.db"
    centres = {"C01": "Centre One", "C02": "Centre Two"}
    with seeded_server(db, NOW, PASSWORD, centres, users) as live:
        with writing(live.app.state.engine, _actor(live.app, "stat"), live.app.state.trial) as ctx:
            randomization.configure(ctx, "blocks")
            randomization.generate_list(ctx, "e2e-secret-seed-0123456789", 8)
        yield live


def _ready_patient(app: Any, code: str) -> str:
    """Registered, screened, included, cycles 1-2 given and assessed (through the services)."""
    from decimal import Decimal

    from reluth.patients import service as patients
    from reluth.treatment import service as treatment

    data = json.loads(EXAMPLE.read_text())
    data["patient_id"] = code
    with writing(app.state.engine, _actor(app, "inv1"), app.state.trial) as ctx:
        patients.register_patient(ctx, "C01", code)
        assert patients.screen_patient(ctx, data).status == "eligible"
        patients.include_patient(ctx, code, dt.date(2024, 10, 28), dt.date(2025, 3, 4))
    not_childbearing(app, "inv1", code, "2025-03-04")
    with writing(app.state.engine, _actor(app, "inv1"), app.state.trial) as ctx:
        for n, day in ((1, dt.date(2025, 3, 5)), (2, dt.date(2025, 3, 6))):
            treatment.record_cycle(ctx, code, n, day, Decimal("7.4"), f"L{n}")
        patients.record_pre_randomization(ctx, code, dt.date(2025, 3, 10), False, "SD")
    return code


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
    add = page.locator('form[action="/admin/users"]')
    add.get_by_label("Username").fill("nurse9")
    add.get_by_label("Role").select_option("research_nurse")
    add.get_by_label("Initial password").fill(PASSWORD)
    add.get_by_role("button", name="Add user").click()
    page.wait_for_load_state("networkidle")
    assert "needs at least one centre" in page.get_by_role("alert").inner_text()
    add = page.locator('form[action="/admin/users"]')
    assert add.get_by_label("Username").input_value() == "nurse9"
    add.get_by_label(re.compile("C02")).check()
    add.get_by_label("Initial password").fill(PASSWORD)
    add.get_by_role("button", name="Add user").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("cell", name="nurse9").is_visible()
    page.screenshot(path=str(screenshots / "users.png"), full_page=True)

    # deactivating an account needs a reason, typed in the row's change form
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="nurse9", exact=True))
    row.locator("summary").click()
    deactivate = row.locator('form[action="/admin/users/nurse9/deactivate"]')
    deactivate.get_by_label("Reason").fill("left the trial")
    deactivate.get_by_role("button", name="Deactivate").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("status")).to_have_text("User nurse9: deactivated.")
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="nurse9", exact=True))
    expect(row.get_by_role("cell", name="no", exact=True)).to_be_visible()

    page.get_by_role("link", name="Access review (unblinded roles)").click()
    review = page.get_by_test_id("access-review")
    expect(review.get_by_role("row").filter(has_text="stat")).to_contain_text("account created")
    page.close()


def test_investigator_flow_then_blinded_central_review(
    browser: Any, server: LiveServer, screenshots: Path
) -> None:
    page = login(browser, server, "inv1")
    page.get_by_role("link", name="Patients").click()
    page.get_by_label("Year of birth (no full birth date is stored)").fill("1961")
    page.get_by_role("button", name="Register patient").click()
    page.wait_for_url(re.compile(r".*/patients/C01-\d{4}$"))
    code = page.url.rsplit("/", 1)[1]

    # screening with live per-criterion feedback
    page.get_by_role("link", name="Enter screening data").click()
    data = json.loads(EXAMPLE.read_text())
    data["patient_id"] = code
    # Typed field by field into the form (ids are the engine's field paths), live-checked.
    from reluth.web import screening_form

    typed = screening_form.to_form(data)
    typed.pop("patient_id")
    typed["labs.platelets.value"] = "79999"  # one below the limit first
    type_into_form(page, typed)
    expect(page.get_by_test_id("eligibility-status")).to_have_text("not eligible")
    expect(page.get_by_test_id("criterion-I11")).to_be_visible()
    page.get_by_label("Platelets value").fill("184000")
    expect(page.get_by_test_id("eligibility-status")).to_have_text("eligible")
    page.screenshot(path=str(screenshots / "screening.png"), full_page=True)
    page.get_by_role("button", name="Save screening").click()
    page.wait_for_url(re.compile(rf".*/patients/{code}(\?saved=screening-\d+)?(#screening)?$"))
    expect(page.get_by_test_id("saved")).to_contain_text("Saved: Screening")
    assert page.get_by_test_id("screening-status").inner_text() == "eligible"

    # inclusion, the two second-PRRT cycles, the pre-randomization assessment
    page.get_by_label("Date informed consent signed").fill("2024-10-28")
    page.get_by_label("Inclusion date").fill("2025-03-04")
    page.get_by_role("button", name="Include patient").click()
    page.get_by_test_id("inclusion").wait_for()
    not_childbearing(server.app, "inv1", code, "2025-03-04")  # a postmenopausal woman
    for n, day in (("1", "2025-03-05"), ("2", "2025-03-06")):
        page.get_by_label("Cycle").select_option(n)
        page.get_by_label("Date given").fill(day)
        page.get_by_label("Lot").fill(f"LOT-{n}")
        page.get_by_role("button", name="Record administration").click()
        page.wait_for_load_state("networkidle")
    page.get_by_label("Assessment date").fill("2025-03-10")
    page.get_by_label("Overall response (RECIST 1.1)").select_option("SD")
    page.get_by_role("button", name="Record assessment").click()
    page.get_by_test_id("pre-randomization").wait_for()

    # randomization: confirmation step, then the result
    page.get_by_role("link", name="Randomize…").click()
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name="Randomize").click()
    arm = page.get_by_test_id("arm").inner_text()
    assert arm in ("experimental", "control")
    page.screenshot(path=str(screenshots / "randomization.png"), full_page=True)

    # laboratory entry: the CTCAE grade appears as the value is typed
    page.goto(f"{server.url}/patients/{code}#labs")
    page.get_by_label("Test", exact=True).select_option("platelets")
    page.get_by_label("Unit", exact=True).fill("/mm3")
    page.get_by_label("Lower limit of normal").fill("150000")
    page.get_by_label("Value", exact=True).fill("74000")
    expect(page.get_by_test_id("ctcae-grade")).to_have_text("grade 2")
    page.screenshot(path=str(screenshots / "labs.png"), full_page=True)
    page.get_by_role("button", name="Save result").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("cell", name="platelets").is_visible()
    page.screenshot(path=str(screenshots / "patient-timeline.png"), full_page=True)

    # a correction of the saved value needs a reason; the audit page keeps the old value
    page.locator("#labs").get_by_role("link", name="Correct").click()
    page.get_by_label("Value (/mm3)", exact=True).fill("45000")
    expect(page.get_by_test_id("ctcae-grade")).to_have_text("grade 3")  # re-graded live
    page.get_by_role("button", name="Save correction").click()
    page.wait_for_load_state("networkidle")
    reason = page.get_by_label("Reason for the correction (required)")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#err-reason")).to_contain_text("a reason is required")
    assert page.get_by_label("Value (/mm3)", exact=True).input_value() == "45000"  # no lost input
    reason.fill("transcription error, source p. 4")
    page.screenshot(path=str(screenshots / "lab-correction.png"), full_page=True)
    page.get_by_role("button", name="Save correction").click()
    page.wait_for_url(re.compile(rf".*/patients/{code}\?saved=lab-\d+#labs$"))
    expect(page.locator("#labs")).to_contain_text("45000 /mm3")
    expect(page.get_by_test_id("saved")).to_contain_text("45000")  # what was saved
    page.get_by_role("link", name="Audit history").click()
    change = page.locator('tr[data-table="lab_results"][data-action="update"]').filter(
        has_text="transcription error, source p. 4"
    )
    value = change.locator('[data-field="value"]')
    expect(value.locator(".audit-old")).to_have_text("74000")  # the old value
    expect(value.locator(".audit-new")).to_have_text("45000")
    expect(change).to_contain_text("inv1")
    expect(change).to_contain_text("investigator")
    page.goto(f"{server.url}/patients/{code}")

    # a serious adverse event: the 24-hour clock to pharmacovigilance is shown
    page.get_by_label("CTCAE v5.0 term").fill("Platelet count decreased")
    page.get_by_label("Grade").select_option("4")
    page.get_by_label("Serious (SAE: report to pharmacovigilance within 24 hours)").check()
    page.get_by_label("Onset date").fill("2025-03-10")
    page.get_by_role("button", name="Record adverse event").click()
    page.wait_for_load_state("networkidle")
    page.get_by_role("link", name="Adverse events").click()
    expect(page.get_by_test_id("sae-clock").first).to_contain_text("due by")
    page.screenshot(path=str(screenshots / "adverse-events.png"), full_page=True)

    # QoL entry item by item: the scale scores follow the answers
    page.goto(f"{server.url}/patients/{code}")
    page.get_by_role("link", name="Enter QLQ-C30").click()
    page.get_by_label("Time point").select_option("QOL-W00")
    for item in range(1, 6):
        page.locator(f'input[name="item_{item}"][value="1"]').check()
    expect(page.get_by_test_id("qol-PF")).to_have_text("100.00")
    page.locator('input[name="item_29"][value="4"]').check()
    expect(page.get_by_test_id("qol-QL")).to_have_text("50.00")  # 1 of 2 items answered
    page.screenshot(path=str(screenshots / "qol.png"), full_page=True)
    page.get_by_role("button", name="Save questionnaire").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator("#qol")).to_contain_text("PF 100.00")
    page.close()

    # the central reviewer: worklist and lesion entry, never a trace of the arm
    rev = login(browser, server, "rev")
    assert rev.url.endswith("/review")
    texts = [rev.content()]
    rev.get_by_role("link", name=code).click()
    rev.get_by_label("Scan date").fill("2025-03-01")
    for i, (lid, organ, mm) in enumerate((("T1", "liver", "40"), ("T2", "liver", "20"))):
        rev.get_by_label(f"Lesion {i + 1} id").fill(lid)
        rev.get_by_label(f"Lesion {i + 1} organ").fill(organ)
        rev.get_by_label(f"Lesion {i + 1} diameter in mm").fill(mm)
    expect(rev.get_by_test_id("recist-sum")).to_have_text("60 mm")
    texts.append(rev.content())
    rev.get_by_role("button", name="Save read").click()
    rev.wait_for_load_state("networkidle")
    rev.get_by_label("Time point").fill("week8")
    rev.get_by_label("Scan date").fill("2025-03-11")
    rev.get_by_label("Lesion 1 diameter in mm").fill("25")
    rev.get_by_label("Lesion 2 diameter in mm").fill("15")
    expect(rev.get_by_test_id("recist-overall")).to_have_text("PR")
    rev.screenshot(path=str(screenshots / "central-review.png"), full_page=True)
    texts.append(rev.content())
    rev.get_by_role("button", name="Save read").click()
    rev.wait_for_load_state("networkidle")
    texts.append(rev.content())
    for path in (f"/patients/{code}", "/dashboard", "/patients"):
        response = rev.goto(f"{server.url}{path}")
        assert response is not None and response.status == 403
        texts.append(rev.content())
    for text in texts:
        visible = re.sub(r"<[^>]+>", " ", text)
        assert not ARM_WORDS.search(visible), ARM_WORDS.search(visible)
        assert arm not in visible
    rev.close()


def test_physicist_stores_dosimetry_and_statistician_downloads_the_datasets(
    browser: Any, server: LiveServer, screenshots: Path, tmp_path: Path
) -> None:
    """The physicist pastes a cycle's dose records on the patient's dosimetry page and sees the
    cycle and the cumulative kidney dose; the statistician downloads the analysis datasets."""
    import zipfile

    code = _ready_patient(server.app, "C01-0701")  # cycles 1-2 given
    records = [
        {"region": "kidneys", "quantity": "absorbed_dose", "value": 2.25, "sd": 0.25,
         "unit": "Gy", "method": "S-value"},
        {"region": "tumour1", "kind": "tumour", "quantity": "absorbed_dose", "value": 31.5,
         "unit": "Gy", "method": "sphere model"},
        {"region": "red_marrow", "kind": "marrow", "quantity": "absorbed_dose", "value": 0.375,
         "unit": "Gy", "method": "blood-based"},
    ]  # fmt: skip
    page = login(browser, server, "phys")
    page.goto(f"{server.url}/patients/{code}/dosimetry")
    expect(page.get_by_text("No dosimetry result stored for this patient.")).to_be_visible()
    page.get_by_label("Administration cycle").select_option("1")
    page.get_by_label("Case ID (optional when the JSON names it)").fill("CASE-E2E")
    page.get_by_label(re.compile(r"^Results:")).fill(json.dumps(records))
    page.get_by_role("button", name="Store dosimetry results").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name=re.compile(r"^Cycle 1"))).to_be_visible()
    kidneys = page.get_by_test_id("cumulative-kidneys")
    expect(kidneys).to_contain_text("2.25")
    page.screenshot(path=str(screenshots / "dosimetry.png"), full_page=True)
    page.close()

    page = login(browser, server, "stat")
    page.get_by_role("link", name="Exports").click()
    expect(page.get_by_role("heading", name="Exports")).to_be_visible()
    expect(page.get_by_test_id("randomization-summary")).to_contain_text("blocks")
    page.screenshot(path=str(screenshots / "exports.png"), full_page=True)
    page.get_by_label("Format").select_option("csv")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download datasets").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    names = zipfile.ZipFile(saved).namelist()
    for dataset in ("adsl", "adrs", "adtte", "adae", "adqs"):
        assert any(dataset in n.lower() and n.endswith(".csv") for n in names), names
    page.close()


def test_api_docs_render_offline_under_the_csp(
    browser: Any, server: LiveServer, screenshots: Path
) -> None:
    """Swagger UI renders the API from the package: every request stays on the app's origin
    and the browser reports no Content-Security-Policy violation."""
    page = login(browser, server, "inv1")
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{server.url}/api/v1/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() >= 30
    foreign = [u for u in requests if not u.startswith((server.url, "data:"))]
    assert foreign == [] and problems == [], (foreign, problems)
    page.screenshot(path=str(screenshots / "api-docs.png"))
    page.close()


def test_sae_report_assessment_and_coding_pages(
    browser: Any, server: LiveServer, screenshots: Path
) -> None:
    """The site types a term (the CTCAE list is proposed as typed), marks the SAE criteria and
    sends the initial report; pharmacovigilance assesses it (SUSAR, its clock, the PDF link);
    the coder codes an uncoded term."""
    code = _ready_patient(server.app, "C01-0901")
    page = login(browser, server, "inv1")
    page.goto(f"{server.url}/patients/{code}")
    term = page.get_by_label("CTCAE v5.0 term")
    term.press_sequentially("platel", delay=30)
    expect(page.locator("#ctcae-terms option").first).to_have_attribute(
        "value", "Platelet count decreased"
    )
    term.fill("Platelet count decreased")
    page.get_by_label("Grade").select_option("4")
    page.get_by_label("Serious (SAE: report to pharmacovigilance within 24 hours)").check()
    page.get_by_label(
        "Requires inpatient hospitalisation or prolongation of existing hospitalisation"
    ).check()
    page.get_by_label("Onset date").fill("2025-03-10")
    page.get_by_role("button", name="Record adverse event").click()
    page.wait_for_load_state("networkidle")
    page.locator('[data-testid="sae-link"]').first.click()
    page.get_by_label("Narrative").fill(
        "Grade 4 thrombocytopenia; admitted for platelet transfusion."
    )
    page.get_by_label("Action taken with Lutathera").select_option("drug_interrupted")
    page.get_by_label("Treatment of the event").fill("Platelet transfusion")
    page.get_by_role("button", name="Send initial report").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("saved")).to_contain_text("initial report")
    sae_url = page.url.split("?")[0]
    page.close()

    pv = login(browser, server, "pv")
    pv.goto(sae_url)
    pv.get_by_role("button", name="Assess initial report").click()
    pv.wait_for_load_state("networkidle")
    expect(pv.get_by_test_id("susar")).to_have_text("SUSAR")
    expect(pv.get_by_role("link", name="CIOMS-like PDF")).to_be_visible()
    pv.screenshot(path=str(screenshots / "sae-report.png"), full_page=True)
    pv.close()

    page = login(browser, server, "inv1")
    page.goto(f"{server.url}/patients/{code}")
    page.get_by_label("CTCAE v5.0 term").fill("nausée")
    page.get_by_label("Grade").select_option("1")
    page.get_by_label("Onset date").fill("2025-03-10")
    page.get_by_role("button", name="Record adverse event").click()
    page.wait_for_load_state("networkidle")
    page.close()
    coder = login(browser, server, "coder")
    coder.get_by_role("link", name="Coding").click()
    row = coder.get_by_role("row").filter(has_text="nausée")
    expect(row).to_contain_text("uncoded")
    row.get_by_label("LLT code").fill("10028813")
    row.get_by_label("Reason").fill("French verbatim: nausea")
    row.get_by_role("button", name=re.compile("Recode")).click()
    coder.wait_for_load_state("networkidle")
    expect(coder.get_by_role("row").filter(has_text="nausée")).to_contain_text(
        "Gastrointestinal disorders"
    )
    coder.screenshot(path=str(screenshots / "coding.png"), full_page=True)
    coder.close()


def test_french_browser_gets_french_pages(
    browser: Any, server: LiveServer, screenshots: Path
) -> None:
    """A French browser (Accept-Language fr-FR) logs in and registers a patient in French."""
    context = browser.new_context(locale="fr-FR", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto(f"{server.url}/login")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    page.get_by_label("Identifiant").fill("inv1")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r".*/dashboard$"))
    expect(page.get_by_role("heading", name="Tableau de bord")).to_be_visible()
    expect(page.get_by_text("Recrutement")).to_be_visible()
    page.screenshot(path=str(screenshots / "dashboard-fr.png"), full_page=True)
    page.goto(f"{server.url}/patients")
    page.get_by_label(
        "Année de naissance (la date de naissance complète n’est pas conservée)"
    ).fill("1961")
    page.get_by_role("button", name="Enregistrer le patient").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name=re.compile(r"^Patient C01-"))).to_be_visible()
    expect(page.get_by_text("Pas encore de pré-inclusion.")).to_be_visible()
    page.screenshot(path=str(screenshots / "patient-fr.png"), full_page=True)
    context.close()
