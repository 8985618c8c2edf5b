"""The trial's main flow in a real browser in French and in English: screening with live
eligibility, inclusion, the second-PRRT cycles, randomization, a laboratory result typed with a
decimal comma (``10,2``), an adverse event and the blinded central review, each language's
screenshots written to docs/screenshots/ (``flow-fr-*.png``, ``flow-en-*.png``).

The browser's language (Accept-Language) chooses the pages' language; the labels the test
clicks are looked up in the catalogue of that language, and a few literal French and English
texts are asserted so that a page falling back to English fails the French run."""

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
from reluth.core.context import writing
from reluth.i18n import gettext, use_locale
from reluth.randomization import service as randomization

pytestmark = pytest.mark.browser
PASSWORD = "browser test password"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "patients" / "eligible.json"
NOW = dt.datetime(2025, 3, 12, 9, 0, tzinfo=dt.UTC)
BROWSER_LOCALES = {"fr": "fr-FR", "en": "en-GB"}
#: What each language must show (literal, not from the catalogue).
EXPECTED = {
    "fr": {
        "eligible": "éligible",
        "lab": "10,2 g/dL",
        "grade": "grade 1",
        "save_read": "Enregistrer la lecture",
        "response": "réponse partielle",
    },
    "en": {
        "eligible": "eligible",
        "lab": "10.2 g/dL",
        "grade": "grade 1",
        "save_read": "Save read",
        "response": "partial response",
    },
}
#: English words that must not be left on the French central review page.
ENGLISH_ON_REVIEW = re.compile(
    r"\b(Save read|Scan date|Time point|Lesions?|Reads so far|measured)\b"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    users: dict[str, tuple[str, tuple[str, ...]]] = {"stat": ("statistician", ())}
    for lang in BROWSER_LOCALES:
        users[f"inv_{lang}"] = ("investigator", ("C01",))
        users[f"rev_{lang}"] = ("central_reviewer", ())
    db = tmp_path_factory.mktemp("lang") / "lang.db"
    with seeded_server(db, NOW, PASSWORD, {"C01": "Centre One"}, users) as live:
        app = live.app
        with writing(app.state.engine, actor_of(app, "stat"), app.state.trial) as ctx:
            randomization.configure(ctx, "blocks")
            randomization.generate_list(ctx, "e2e-language-seed-0123456789", 8)
        yield live


def _t(lang: str, text: str) -> str:
    """``text`` as the pages in ``lang`` write it."""
    with use_locale(lang):
        return gettext(text)


def _login(browser: Any, server: LiveServer, lang: str, username: str) -> tuple[Any, Any]:
    context = browser.new_context(
        locale=BROWSER_LOCALES[lang], viewport={"width": 1366, "height": 768}
    )
    page = context.new_page()
    page.goto(f"{server.url}/login")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    page.get_by_label(_t(lang, "Username")).fill(username)
    page.get_by_label(_t(lang, "Password")).fill(PASSWORD)
    page.get_by_role("button", name=_t(lang, "Log in")).click()
    page.wait_for_load_state("networkidle")
    return context, page


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_main_flow_in_each_language(
    browser: Any, server: LiveServer, screenshots: Path, lang: str
) -> None:
    want = EXPECTED[lang]
    shot = lambda page, name: page.screenshot(  # noqa: E731
        path=str(screenshots / f"flow-{lang}-{name}.png"), full_page=True
    )
    context, page = _login(browser, server, lang, f"inv_{lang}")
    page.get_by_role("link", name=_t(lang, "Patients"), exact=True).click()
    page.get_by_label(_t(lang, "Year of birth (no full birth date is stored)")).fill("1961")
    page.get_by_role("button", name=_t(lang, "Register patient")).click()
    page.wait_for_url(re.compile(r".*/patients/C01-\d{4}$"))
    code = page.url.rsplit("/", 1)[1]

    # screening: the patient file typed field by field, checked as it is typed
    page.get_by_role("link", name=_t(lang, "Enter screening data")).click()
    from reluth.web import screening_form

    data = json.loads(EXAMPLE.read_text())
    data["patient_id"] = code
    typed = screening_form.to_form(data)
    typed.pop("patient_id")
    if lang == "fr":  # decimal commas, as a French site types them
        typed = {k: v.replace(".", ",") for k, v in typed.items()}
    type_into_form(page, typed)
    expect(page.get_by_test_id("eligibility-status")).to_have_text(want["eligible"])
    shot(page, "screening")
    page.get_by_role("button", name=_t(lang, "Save screening")).click()
    page.wait_for_url(re.compile(rf".*/patients/{code}(\?saved=[\w-]+)?(#screening)?$"))
    expect(page.get_by_test_id("screening-status")).to_have_text(want["eligible"])

    # inclusion, the two second-PRRT cycles, the pre-randomization assessment
    page.get_by_label(_t(lang, "Date informed consent signed")).fill("2024-10-28")
    page.get_by_label(_t(lang, "Inclusion date")).fill("2025-03-04")
    page.get_by_role("button", name=_t(lang, "Include patient")).click()
    page.get_by_test_id("inclusion").wait_for()
    not_childbearing(server.app, f"inv_{lang}", code, "2025-03-04")  # a postmenopausal woman
    for n, day in (("1", "2025-03-05"), ("2", "2025-03-06")):
        cycles = page.locator(f'form[action="/patients/{code}/cycles"]')
        cycles.locator('[name="cycle"]').select_option(n)
        cycles.locator('[name="administered_on"]').fill(day)
        cycles.locator('[name="activity_gbq"]').fill("7,4" if lang == "fr" else "7.4")
        cycles.locator('[name="lot"]').fill(f"LOT-{n}")
        cycles.get_by_role("button", name=_t(lang, "Record administration")).click()
        page.wait_for_load_state("networkidle")
    pre = page.locator(f'form[action="/patients/{code}/pre-randomization"]')
    pre.locator('[name="assessment_date"]').fill("2025-03-10")
    pre.locator('[name="overall_response"]').select_option("SD")
    pre.get_by_role("button", name=_t(lang, "Record assessment")).click()
    page.get_by_test_id("pre-randomization").wait_for()

    # randomization: confirmed, then the arm
    page.get_by_role("link", name=_t(lang, "Randomize…")).click()
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name=_t(lang, "Randomize"), exact=True).click()
    expect(page.get_by_test_id("arm")).to_have_text(
        re.compile("^(experimental|control)$" if lang == "en" else "^(expérimental|contrôle)$")
    )
    shot(page, "randomization")

    # a haemoglobin typed with a decimal comma in French (a point in English), graded live
    page.goto(f"{server.url}/patients/{code}#labs")
    labs = page.locator(f'form[action="/patients/{code}/labs"]')
    labs.locator('[name="date"]').fill("2025-03-11")
    labs.locator('[name="test"]').select_option("hemoglobin")
    labs.locator('[name="unit"]').fill("g/dL")
    labs.locator('[name="lln"]').fill("12")
    labs.get_by_label(_t(lang, "Value"), exact=True).fill("10,2" if lang == "fr" else "10.2")
    expect(page.get_by_test_id("ctcae-grade")).to_have_text(want["grade"])
    labs.get_by_role("button", name=_t(lang, "Save result")).click()
    page.wait_for_load_state("networkidle")
    expect(page.locator("#labs")).to_contain_text(want["lab"])

    # an adverse event
    ae = page.locator(f'form[action="/patients/{code}/adverse-events"]')
    ae.locator('[name="term"]').fill("Anaemia")
    ae.locator('[name="grade"]').select_option("1")
    ae.locator('[name="onset_date"]').fill("2025-03-11")
    ae.get_by_role("button", name=_t(lang, "Record adverse event")).click()
    page.wait_for_load_state("networkidle")
    expect(page.locator("#adverse-events")).to_contain_text("Anaemia")
    shot(page, "patient")
    context.close()

    # the blinded central reviewer: baseline, then a partial response at week 8
    context, rev = _login(browser, server, lang, f"rev_{lang}")
    rev.get_by_role("link", name=code).click()
    rev.get_by_label(_t(lang, "Scan date")).fill("2025-03-01")
    for i, (lid, mm) in enumerate((("T1", "40"), ("T2", "20,5" if lang == "fr" else "20.5"))):
        rev.get_by_label(_t(lang, "Lesion %(n)s id") % {"n": i + 1}).fill(lid)
        rev.get_by_label(_t(lang, "Lesion %(n)s organ") % {"n": i + 1}).fill("liver")
        rev.get_by_label(_t(lang, "Lesion %(n)s diameter in mm") % {"n": i + 1}).fill(mm)
    expect(rev.get_by_test_id("recist-sum")).to_have_text("60,5 mm" if lang == "fr" else "60.5 mm")
    rev.get_by_role("button", name=want["save_read"]).click()
    rev.wait_for_load_state("networkidle")
    rev.get_by_label(_t(lang, "Time point")).fill("week8")
    rev.get_by_label(_t(lang, "Scan date")).fill("2025-03-11")
    rev.get_by_label(_t(lang, "Lesion %(n)s diameter in mm") % {"n": 1}).fill("25")
    rev.get_by_label(_t(lang, "Lesion %(n)s diameter in mm") % {"n": 2}).fill("15")
    expect(rev.get_by_test_id("recist-overall")).to_have_text("PR")
    expect(rev.locator("#recist")).to_contain_text(want["response"])
    shot(rev, "central-review")
    if lang == "fr":
        visible = rev.locator("main").inner_text()
        assert not ENGLISH_ON_REVIEW.search(visible), ENGLISH_ON_REVIEW.search(visible)
    rev.get_by_role("button", name=want["save_read"]).click()
    rev.wait_for_load_state("networkidle")
    expect(rev.get_by_role("row").filter(has_text="week8")).to_contain_text("PR")
    context.close()
