"""The clinical forms through their page (entry and list, the timeline's sections) and the
JSON API: saved through the audited services, a rejected form keeps every typed value with the
message at its field, and the same permission and centre scoping as every other form."""

from __future__ import annotations

import re

from web_support import Site, included_via_api

CONMED = {
    "drug_name": "Octreotide LAR",
    "atc_code": "H01CB02",
    "indication": "carcinoid syndrome",
    "dose": "30",
    "unit": "mg",
    "route": "intramuscular",
    "start_date": "2024-06-01",
    "ongoing": "true",
}


def test_conmed_page_saves_says_so_and_lists_it_on_the_timeline(site: Site) -> None:
    code = included_via_api(site)
    nurse = site.client("nurse1")
    page = nurse.get(f"/patients/{code}/forms/conmed")
    assert page.status_code == 200
    for name in ("drug_name", "atc_code", "indication", "dose", "unit", "route", "ongoing"):
        assert f'name="{name}"' in page.text
    saved = nurse.post(f"/patients/{code}/forms/conmed", data=CONMED)
    assert saved.status_code == 303, saved.text
    location = saved.headers["location"]
    assert re.fullmatch(rf"/patients/{code}/forms/conmed\?saved=\d+", location)
    shown = nurse.get(location).text
    assert 'data-testid="saved"' in shown and "Saved: concomitant medication" in shown
    assert "H01CB02" in shown and "Octreotide LAR" in shown
    timeline = nurse.get(f"/patients/{code}").text
    assert 'id="form-conmed"' in timeline and "Octreotide LAR" in timeline
    assert f'href="/patients/{code}/forms/conmed"' in timeline


def test_rejected_conmed_keeps_typed_values_and_names_the_field(site: Site) -> None:
    code = included_via_api(site)
    nurse = site.client("nurse1")
    bad = {**CONMED, "atc_code": "H01C0", "indication": "flushing episodes"}
    refused = nurse.post(f"/patients/{code}/forms/conmed", data=bad)
    assert refused.status_code == 422
    assert 'id="f-atc_code-error"' in refused.text and "not an ATC code" in refused.text
    assert 'value="flushing episodes"' in refused.text and 'value="H01C0"' in refused.text
    assert '<option value="intramuscular" selected>' in refused.text
    stopped = {**CONMED, "ongoing": ""}  # unticked: a stop date is then needed
    refused = nurse.post(f"/patients/{code}/forms/conmed", data=stopped)
    assert refused.status_code == 422 and 'id="f-stop_date-error"' in refused.text
    future = {**CONMED, "start_date": "2025-03-13"}  # the site's clock is on 2025-03-12
    refused = nurse.post(f"/patients/{code}/forms/conmed", data=future)
    assert refused.status_code == 422 and "future" in refused.text
    same_day = {**CONMED, "start_date": "2025-03-12"}
    assert nurse.post(f"/patients/{code}/forms/conmed", data=same_day).status_code == 303


def test_form_pages_follow_the_policy_and_centres(site: Site) -> None:
    code = included_via_api(site)
    assert site.client("inv2").get(f"/patients/{code}/forms/conmed").status_code == 404
    assert site.client("rev").get(f"/patients/{code}/forms/conmed").status_code == 403
    assert site.client("nurse1").get(f"/patients/{code}/forms/nothing").status_code == 404
    # a monitor reads the medications on the timeline but may not add one
    monitor = site.client("mon1")
    timeline = monitor.get(f"/patients/{code}").text
    assert 'id="form-conmed"' in timeline
    assert f'href="/patients/{code}/forms/conmed"' not in timeline
    assert monitor.post(f"/patients/{code}/forms/conmed", data=CONMED).status_code == 403
    # ... and keeps the deviations log
    deviation = {
        "category": "visit_schedule",
        "severity": "minor",
        "deviation_date": "2025-03-10",
        "description": "Consent copy not given to the patient",
    }
    assert monitor.post(f"/patients/{code}/forms/deviation", data=deviation).status_code == 303


def test_api_records_and_lists_each_form(site: Site) -> None:
    code = included_via_api(site)
    api = site.client("inv1")
    body = {**CONMED, "ongoing": True}
    made = api.post(f"/api/v1/patients/{code}/conmeds", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["atc_code"] == "H01CB02" and str(made.json()["dose"]) == "30"
    listed = api.get(f"/api/v1/patients/{code}/conmeds").json()
    assert [r["drug_name"] for r in listed] == ["Octreotide LAR"]
    history = {"condition": "Hypertension", "start_date": "2010-01-01", "ongoing": True}
    assert api.post(f"/api/v1/patients/{code}/medical-history", json=history).status_code == 201
    assert api.get(f"/api/v1/patients/{code}/medical-history").json()[0]["condition"] == (
        "Hypertension"
    )
    deviation = {
        "category": "eligibility",
        "severity": "major",
        "deviation_date": "2025-03-04",
        "description": "Included with platelets below the threshold",
        "corrective_action": "Sponsor informed",
    }
    assert api.post(f"/api/v1/patients/{code}/deviations", json=deviation).status_code == 201
    assert api.get(f"/api/v1/patients/{code}/deviations").json()[0]["severity"] == "major"
    bad = api.post(f"/api/v1/patients/{code}/conmeds", json={**body, "route": "nasal"})
    assert bad.status_code == 422 and "route" in bad.text
    assert site.client("inv2").get(f"/api/v1/patients/{code}/conmeds").status_code == 404
    assert site.client("rev").post(f"/api/v1/patients/{code}/conmeds", json=body).status_code == 403


def test_api_withdrawal_death_and_end_of_study_show_on_the_timeline(site: Site) -> None:
    code = included_via_api(site)
    api = site.client("inv1")
    withdrawal = {"kind": "follow_up", "withdrawal_date": "2025-03-06", "details": "moved away"}
    assert api.post(f"/api/v1/patients/{code}/withdrawals", json=withdrawal).status_code == 201
    again = api.post(f"/api/v1/patients/{code}/withdrawals", json=withdrawal)
    assert again.status_code == 409
    refused = api.post(
        f"/api/v1/patients/{code}/death",
        json={"death_date": "2025-03-08", "cause": "other"},
    )
    assert refused.status_code == 422 and "details" in refused.text
    death = {"death_date": "2025-03-08", "cause": "toxicity"}
    assert api.post(f"/api/v1/patients/{code}/death", json=death).status_code == 201
    end = {"end_date": "2025-03-07", "reason": "death"}
    early = api.post(f"/api/v1/patients/{code}/end-of-study", json=end)
    assert early.status_code == 422 and "end_date" in early.text
    end["end_date"] = "2025-03-08"
    assert api.post(f"/api/v1/patients/{code}/end-of-study", json=end).status_code == 201
    d = api.get(f"/api/v1/patients/{code}/disposition").json()
    assert d["death"]["cause"] == "toxicity" and d["end_of_study"]["reason"] == "death"
    assert [w["kind"] for w in d["withdrawals"]] == ["follow_up"]
    timeline = api.get(f"/patients/{code}").text
    assert (
        'data-testid="withdrawal-follow_up"' in timeline
        and "Withdrawal (from follow-up)" in timeline
    )
    assert 'data-testid="death"' in timeline and 'data-testid="end-of-study"' in timeline


def test_death_page_keeps_values_when_refused(site: Site) -> None:
    code = included_via_api(site)
    nurse = site.client("nurse1")
    refused = nurse.post(
        f"/patients/{code}/forms/death", data={"death_date": "2025-03-09", "cause": "other"}
    )
    assert refused.status_code == 422 and 'id="f-details-error"' in refused.text
    assert 'value="2025-03-09"' in refused.text
    ok = nurse.post(
        f"/patients/{code}/forms/death",
        data={"death_date": "2025-03-09", "cause": "other", "details": "fall at home"},
    )
    assert ok.status_code == 303
