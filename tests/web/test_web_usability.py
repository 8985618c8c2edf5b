"""The usability defects a site saw (issue 17, item 6): the page says what was saved, a refused
form keeps every typed value, the cycle selector proposes the next cycle, a re-screening starts
from the last screening, screen failures name the criterion in words, registration dates are
the site's, and the audit history reads in plain words in the site's time."""

from __future__ import annotations

import json
import re
from html import escape

import pytest
from test_web_trial_flow import ready_patient
from web_support import (
    Site,
    eligible_file,
    form_controls,
    form_values,
    included_via_api,
    randomize_experimental,
)

from reluth.protocol.eligibility import check_eligibility
from reluth.protocol.patient import parse_patient


def _register(site: Site, user: str = "inv1") -> str:
    r = site.client(user).post("/patients", data={"centre": "C01"})
    assert r.status_code == 303, r.text
    return str(r.headers["location"]).rsplit("/", 1)[1]


def _saved(html: str) -> dict[str, str]:
    """The "saved" note of a page: its title and each field's label -> value."""
    found = re.search(r'data-testid="saved">(.*?)</dl>', html, re.S)
    assert found, "no saved note"
    note = found.group(1)
    title = re.search(r"<strong>([^<]*)</strong>", note)
    assert title
    fields = dict(re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", note))
    return {"": title.group(1), **fields}


def test_after_a_save_the_patient_page_says_what_was_saved(site: Site) -> None:
    code = included_via_api(site)
    inv = site.client("inv1")
    plain = inv.get(f"/patients/{code}").text
    assert 'data-testid="saved"' not in plain
    lab = {"test": "platelets", "value": "74000", "unit": "/mm3", "date": "2025-03-11"}
    r = inv.post(f"/patients/{code}/labs", data=lab)
    assert r.status_code == 303 and "?saved=lab-" in r.headers["location"]
    note = _saved(inv.get(r.headers["location"]).text)
    assert note[""] == "Saved: Laboratory result", note
    assert note["Test"] == "platelets" and note["Value (/mm3)"] == "74000"
    assert note["Sample date"] == "2025-03-11" and note["CTCAE grade"] == "2"
    ae = {
        "term": "Nausea",
        "grade": "2",
        "relatedness": "possible",
        "outcome": "recovering",
        "onset_date": "2025-03-10",
        "awareness_date": "",
    }
    r = inv.post(f"/patients/{code}/adverse-events", data=ae)
    assert r.status_code == 303, r.text
    note = _saved(inv.get(r.headers["location"]).text)
    assert note[""] == "Saved: Adverse event" and note["CTCAE term"] == "Nausea"
    r = inv.post(
        f"/patients/{code}/cycles",
        data={"cycle": "1", "administered_on": "2025-03-05", "activity_gbq": "7.4", "lot": "L1"},
    )
    assert r.status_code == 303, r.text
    note = _saved(inv.get(r.headers["location"]).text)
    assert note["Cycle"] == "1" and note["Date given"] == "2025-03-05" and note["Lot"] == "L1"
    # another centre's user cannot read a record through the note
    other = site.client("inv2").get(r.headers["location"])
    assert other.status_code == 404


def test_the_cycle_selector_proposes_the_next_cycle(site: Site) -> None:
    code = included_via_api(site)
    inv = site.client("inv1")

    def proposed() -> str:
        values = form_values(inv.get(f"/patients/{code}").text, f"/patients/{code}/cycles")
        return values["cycle"]

    assert proposed() == "1"
    r = inv.post(
        f"/patients/{code}/cycles",
        data={"cycle": "1", "administered_on": "2025-03-05", "activity_gbq": "7.4", "lot": "L1"},
    )
    assert r.status_code == 303, r.text
    assert proposed() == "2"


def test_rescreening_starts_from_the_last_screening(site: Site) -> None:
    code = _register(site)
    inv = site.client("inv1")
    first = inv.get(f"/patients/{code}/screening").text
    assert 'data-testid="prefilled"' not in first
    data = eligible_file(code, site.clock().date())
    data["ecog"] = 3  # not eligible: a re-screening follows
    r = inv.post(f"/patients/{code}/screening", data={"patient_json": json.dumps(data)})
    assert r.status_code == 303, r.text
    again = inv.get(f"/patients/{code}/screening").text
    assert 'data-testid="prefilled"' in again
    values = form_values(again, f"/patients/{code}/screening")
    assert values["ecog"] == "3" and values["age"] == str(data["age"])
    assert values["labs.creatinine.value"] == str(data["labs"]["creatinine"]["value"])  # type: ignore[index]
    assert values["assessment_date"] == data["assessment_date"]


def test_screen_failures_show_the_criterion_text(site: Site) -> None:
    code = _register(site)
    inv = site.client("inv1")
    data = eligible_file(code, site.clock().date())
    data["ecog"] = 3
    result = check_eligibility(
        parse_patient(data, as_of=site.clock().date()), site.trial.protocol, stage="inclusion"
    )
    failed = list(result.failed)
    assert failed
    r = inv.post(f"/patients/{code}/screening", data={"patient_json": json.dumps(data)})
    assert r.status_code == 303, r.text
    page = inv.get(f"/patients/{code}").text
    summary = page[page.index('data-testid="screen-failure"') :]
    summary = summary[: summary.index("</ul>")]
    for c in failed:
        assert f"<strong>{c.id}</strong> {escape(c.text)}" in summary
    passing = [c for c in result.criteria if c.passes]
    assert passing and all(f"<strong>{c.id}</strong>" not in summary for c in passing)
    dashboard = inv.get("/dashboard").text
    cell = re.search(rf'data-testid="failure-{failed[0].id}">(.*?)</td>', dashboard, re.S)
    assert cell and escape(failed[0].text) in cell.group(1)
    refused = inv.post(
        f"/patients/{code}/inclusion",
        data={"consent_date": "2024-10-28", "inclusion_date": "2025-03-04"},
    )
    assert refused.status_code == 409 and escape(failed[0].text) in refused.text


def test_registration_date_is_the_site_day(site: Site) -> None:
    import datetime as dt

    # 23:30 UTC on 11 March is 00:30 on 12 March in Paris: the site registered on the 12th
    site.clock.now = dt.datetime(2025, 3, 11, 23, 30, tzinfo=dt.UTC)
    code = _register(site)
    page = site.client("inv1").get(f"/patients/{code}").text
    assert 'data-testid="registered-on">registered 2025-03-12<' in page
    listed = site.client("inv1").get("/patients").text
    row = re.search(rf'<a href="/patients/{code}">.*?</tr>', listed, re.S)
    assert row and "2025-03-12" in row.group(0) and "2025-03-11" not in row.group(0)


def test_audit_page_reads_in_plain_words_in_the_site_time(site: Site) -> None:
    code = ready_patient(site)
    randomize_experimental(site.app, code)
    page = site.client("inv1").get(f"/patients/{code}/audit").text
    audit = page[page.index('data-testid="audit-table"') : page.index("</table>")]
    assert "&#34;" not in audit and '{"' not in audit  # never escaped JSON
    # 09:00 UTC is 10:00 in Paris (CET)
    assert "2025-03-12 10:00 Europe/Paris" in audit and "UTC" not in audit
    inclusion = re.search(r'<tr id="audit-\d+" data-table="inclusions".*?</tr>', audit, re.S)
    assert inclusion, audit
    row = inclusion.group(0)
    assert "Inclusion" in row and "created" in row
    assert re.search(r"<dt>Inclusion date</dt>\s*<dd><span class=\"audit-new\">2025-03-04<", row)
    screening = re.search(r'<tr id="audit-\d+" data-table="screenings".*?</tr>', audit, re.S)
    assert screening and "<summary>" in screening.group(0)  # the patient file, folded
    assert "ecog: 1" in screening.group(0)


# --- a refused form keeps every typed value -----------------------------------------------

#: (form action below /patients/{code}, typed values, the value that makes it refused)
PATIENT_PAGE_FORMS = [
    (
        "cycles",
        {"cycle": "2", "administered_on": "2025-03-05", "activity_gbq": "7,3", "lot": "LOT-9"},
        {"administered_on": "2031-01-01"},
    ),
    (
        "labs",
        {
            "date": "2025-03-11",
            "test": "hemoglobin",
            "value": "11,5",
            "unit": "g/dL",
            "lln": "12",
            "uln": "16",
            "baseline": "13",
        },
        {"date": "2031-01-01"},
    ),
    (
        "adverse-events",
        {
            "term": "Nausea",
            "grade": "3",
            "serious": "yes",
            "sae_hospitalisation": "yes",
            "relatedness": "probable",
            "outcome": "not_recovered",
            "onset_date": "2025-03-09",
            "awareness_date": "2025-03-10",
            "awareness_time": "14:05",
        },
        {"onset_date": "2031-01-01"},
    ),
    ("queries", {"field": "lab 1 value", "question": "Please check the source."}, {"field": ""}),
]


@pytest.mark.parametrize(
    "action,typed,bad", PATIENT_PAGE_FORMS, ids=[f[0] for f in PATIENT_PAGE_FORMS]
)
def test_a_refused_patient_page_form_keeps_every_typed_value(
    site: Site, action: str, typed: dict[str, str], bad: dict[str, str]
) -> None:
    code = included_via_api(site)
    inv = site.client("mon1" if action == "queries" else "inv1")
    path = f"/patients/{code}/{action}"
    shown = form_values(inv.get(f"/patients/{code}").text, path)
    posted = shown | typed | bad
    refused = inv.post(path, data=posted)
    assert 400 <= refused.status_code < 500, refused.text
    assert form_values(refused.text, path) == posted


def test_a_refused_inclusion_and_pre_randomization_keep_their_values(site: Site) -> None:
    code = _register(site)
    inv = site.client("inv1")
    data = eligible_file(code, site.clock().date())
    assert (
        inv.post(f"/patients/{code}/screening", data={"patient_json": json.dumps(data)}).status_code
        == 303
    )
    path = f"/patients/{code}/inclusion"
    typed = {"consent_date": "2031-01-01", "inclusion_date": "2025-03-04"}
    refused = inv.post(path, data=typed)
    assert refused.status_code == 422, refused.text
    assert form_values(refused.text, path) == typed
    assert (
        inv.post(
            path, data={"consent_date": "2024-10-28", "inclusion_date": "2025-03-04"}
        ).status_code
        == 303
    )
    path = f"/patients/{code}/pre-randomization"
    typed = {"assessment_date": "2031-01-01", "overall_response": "PR", "comment": "see report"}
    refused = inv.post(path, data=typed)
    assert 400 <= refused.status_code < 500, refused.text
    assert form_values(refused.text, path) == typed


def test_a_refused_screening_keeps_its_values(site: Site) -> None:
    code = _register(site)
    inv = site.client("inv1")
    path = f"/patients/{code}/screening"
    shown = form_values(inv.get(path).text, path)
    typed = shown | {"age": "64", "ecog": "1", "assessment_date": "2031-01-01", "sex": "female"}
    refused = inv.post(path, data=typed)
    assert 400 <= refused.status_code < 500
    assert {k: v for k, v in form_values(refused.text, path).items() if k in typed} == typed


def test_a_refused_qol_and_visit_keep_their_values(site: Site) -> None:
    code = ready_patient(site)
    randomize_experimental(site.app, code)
    inv = site.client("inv1")
    path = f"/patients/{code}/qol"
    shown = form_values(inv.get(path).text, path)
    typed = shown | {
        "timepoint": "QOL-W08",
        "completed_on": "2031-01-01",
        "item_1": "2",
        "item_29": "6",
    }
    refused = inv.post(path, data=typed)
    assert refused.status_code == 422
    assert form_values(refused.text, path) == typed
    path = f"/patients/{code}/visits"
    shown = form_values(inv.get(f"/patients/{code}/visits/TA-W08").text, path)
    typed = shown | {"visit_date": "2031-01-01"}
    refused = inv.post(path, data=typed)
    assert 400 <= refused.status_code < 500
    assert form_values(refused.text, path) == typed


def test_a_refused_central_read_keeps_its_values(site: Site) -> None:
    code = ready_patient(site)
    randomize_experimental(site.app, code)
    rev = site.client("rev")
    path = f"/review/{code}"
    shown = form_values(rev.get(path).text, path)
    typed = dict(shown)
    for name in typed:
        if name.endswith("diameter_mm"):
            typed[name] = "23"
        elif name.endswith("organ"):
            typed[name] = "liver"
    typed |= {"assessment_date": "2031-01-01"}
    refused = rev.post(path, data=typed)
    assert 400 <= refused.status_code < 500
    assert form_values(refused.text, path) == typed


@pytest.mark.parametrize("form_id", ["conmed", "medical_history", "deviation", "death"])
def test_a_refused_clinical_form_keeps_its_values(site: Site, form_id: str) -> None:
    code = included_via_api(site)
    inv = site.client("inv1")
    path = f"/patients/{code}/forms/{form_id}"
    shown, options = form_controls(inv.get(path).text, path)
    typed = {}
    for name, value in shown.items():
        if name in options:
            typed[name] = options[name][-1]  # another choice than the proposed one
        else:
            typed[name] = value or ("2031-01-01" if "date" in name else "typed text")
    refused = inv.post(path, data=typed)
    assert 400 <= refused.status_code < 500, refused.text
    assert form_values(refused.text, path) == typed


def test_a_refused_registration_keeps_its_values(site: Site) -> None:
    inv = site.client("inv1")
    typed = {"centre": "C01", "sex": "female", "birth_year": "1890"}
    refused = inv.post("/patients", data=typed)
    assert refused.status_code == 422, refused.text
    assert form_values(refused.text, "/patients") == typed
