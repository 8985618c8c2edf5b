"""Corrections of saved data on the pages and through the JSON API, and the visit pages: a reason
is required (message next to the reason field, nothing written), the typed values come back
when a form is refused, the audit page shows old value, new value, who and why; blinded roles
never reach treatment corrections; other centres' records answer 404."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_web_trial_flow import ready_patient
from web_support import Site, audit_change, audit_entry, audit_values, randomize_experimental

from reluth.auth.policy import POLICY, Action, Resource
from reluth.auth.roles import Role
from reluth.db.audit import AuditLog

REASON = "transcription error, source p. 4"


def _patient(site: Site) -> str:
    code = ready_patient(site)
    randomize_experimental(site.app, code)  # 2025-03-12
    return code


def _lab(client: TestClient, code: str) -> int:
    saved = client.post(
        f"/api/v1/patients/{code}/labs",
        json={"test": "platelets", "value": "74000", "unit": "/mm3", "date": "2025-03-11"},
    )
    assert saved.status_code == 201, saved.text
    return int(saved.json()["id"])


def _ae(client: TestClient, code: str) -> int:
    r = client.post(
        f"/patients/{code}/adverse-events",
        data={
            "term": "Nausea",
            "grade": "2",
            "relatedness": "possible",
            "outcome": "recovering",
            "onset_date": "2025-03-10",
            "awareness_date": "",
        },
    )
    assert r.status_code == 303, r.text
    page = client.get(f"/patients/{code}").text
    return int(re.findall(r"/adverse-events/(\d+)/edit", page)[-1])


def _audit_rows(site: Site) -> int:
    with site.db() as db:
        return int(db.scalar(select(func.count()).select_from(AuditLog)) or 0)


def _error_next_to(html: str, field: str) -> str:
    """The message shown next to the input ``field`` (and that input marks itself invalid)."""
    assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', html), field
    found = re.search(rf'<p class="error" role="alert" id="err-{field}">([^<]*)</p>', html)
    assert found, html
    return found.group(1)


def test_lab_correction_page_needs_a_reason_then_shows_in_the_audit(site: Site) -> None:
    code = _patient(site)
    inv = site.client("inv1")
    lab_id = _lab(inv, code)
    timeline = inv.get(f"/patients/{code}").text
    assert f'href="/patients/{code}/labs/{lab_id}/edit"' in timeline
    form = inv.get(f"/patients/{code}/labs/{lab_id}/edit")
    assert form.status_code == 200
    assert '<label for="edit-value">Value (/mm3)</label>' in form.text
    assert 'id="edit-value" name="value" inputmode="decimal" value="74000"' in form.text
    assert 'data-testid="ctcae-grade">grade 2<' in form.text  # the saved value, graded
    live = inv.post(f"/patients/{code}/labs/{lab_id}/grade", data={"value": "45000"})
    assert 'data-testid="ctcae-grade">grade 3<' in live.text

    before = _audit_rows(site)
    no_reason = inv.post(
        f"/patients/{code}/labs/{lab_id}/edit", data={"value": "45000", "date": "2025-03-11"}
    )
    assert no_reason.status_code == 422
    assert "a reason is required" in _error_next_to(no_reason.text, "reason")
    assert 'name="value" inputmode="decimal" value="45000"' in no_reason.text  # kept
    bad = inv.post(
        f"/patients/{code}/labs/{lab_id}/edit",
        data={"value": "lots", "date": "2025-03-11", "reason": REASON},
    )
    assert bad.status_code == 422 and "lab.value" in _error_next_to(bad.text, "value")
    assert REASON in bad.text  # the typed reason is not lost
    assert _audit_rows(site) == before  # nothing written by either refusal

    ok = inv.post(
        f"/patients/{code}/labs/{lab_id}/edit",
        data={"value": "45000", "date": "2025-03-11", "reason": REASON},
    )
    assert (
        ok.status_code == 303
        and ok.headers["location"] == f"/patients/{code}?saved=lab-{lab_id}#labs"
    )
    assert "45000 /mm3" in inv.get(f"/patients/{code}").text
    audit = inv.get(f"/patients/{code}/audit").text
    row = audit_entry(audit, "value")
    assert audit_change(row, "value") == ("Value (/mm3)", "74000", "45000")  # old and new value
    assert "inv1" in row and "investigator" in row and REASON in row
    assert audit_change(row, "ctcae_grade") == ("CTCAE grade", "2", "3")


def test_adverse_event_correction_page_rechecks_the_sae_rules(site: Site) -> None:
    code = _patient(site)
    inv = site.client("inv1")
    ae_id = _ae(inv, code)
    form = inv.get(f"/patients/{code}/adverse-events/{ae_id}/edit").text
    assert 'id="edit-term" name="term" value="Nausea"' in form
    assert '<option value="2" selected>' in form
    fields = {
        "term": "Nausea",
        "grade": "3",
        "serious": "yes",
        "relatedness": "possible",
        "outcome": "recovering",
        "onset_date": "2025-03-10",
        "resolution_date": "",
        "awareness_date": "",
        "description": "",
        "reason": REASON,
    }
    sae = inv.post(f"/patients/{code}/adverse-events/{ae_id}/edit", data=fields)
    assert sae.status_code == 422
    assert "24-hour" in _error_next_to(sae.text, "awareness_date")
    assert 'name="serious" value="yes" checked' in sae.text and '"3" selected' in sae.text
    ok = inv.post(
        f"/patients/{code}/adverse-events/{ae_id}/edit",
        data={**fields, "awareness_date": "2025-03-11"},
    )
    assert ok.status_code == 303, ok.text
    pv = site.client("pv").get("/adverse-events").text
    assert 'data-testid="sae-clock"' in pv  # now a serious event with its clock
    audit = inv.get(f"/patients/{code}/audit").text
    serious = audit_entry(audit, "serious")
    assert audit_change(serious, "serious")[1:] == ("no", "yes") and REASON in serious


def test_cycle_correction_page_and_blinded_reviewer(site: Site) -> None:
    code = _patient(site)
    inv = site.client("inv1")
    assert f'href="/patients/{code}/cycles/2/edit"' in inv.get(f"/patients/{code}").text
    refused = inv.post(
        f"/patients/{code}/cycles/2/edit",
        data={"administered_on": "2025-03-05", "activity_gbq": "7.4", "lot": "L2", "reason": "x"},
    )
    assert refused.status_code == 422
    assert "the same day as the cycle 1 (2025-03-05)" in _error_next_to(
        refused.text, "administered_on"
    )
    ok = inv.post(
        f"/patients/{code}/cycles/2/edit",
        data={"administered_on": "2025-03-07", "activity_gbq": "7.38", "lot": "L2", "reason": "x"},
    )
    assert ok.status_code == 303, ok.text
    audit = inv.get(f"/patients/{code}/audit").text
    changed = audit_entry(audit, "administered_on")
    assert audit_change(changed, "administered_on") == ("Date given", "2025-03-06", "2025-03-07")
    assert '<td class="audit-reason">x</td>' in changed
    rev = site.client("rev")
    for path in ("/cycles/2/edit", "/cycles/3/edit"):
        assert rev.get(f"/patients/{code}{path}").status_code == 403
        assert rev.post(f"/patients/{code}{path}", data={"reason": "x"}).status_code == 403
    assert site.client("inv2").get(f"/patients/{code}/cycles/2/edit").status_code == 404
    assert inv.get(f"/patients/{code}/cycles/3/edit").status_code == 404  # not given yet


def test_visit_recorded_from_the_timeline_shows_its_window_status(site: Site) -> None:
    code = _patient(site)
    inv = site.client("inv1")
    timeline = inv.get(f"/patients/{code}").text
    assert 'data-testid="visit-TA-W08"' in timeline and 'data-testid="visit-C3"' in timeline
    assert f'href="/patients/{code}/visits/TA-W08">Record' in timeline
    site.clock.now = dt.datetime(2025, 5, 20, 9, tzinfo=dt.UTC)
    inv = site.client("inv1")  # a new session: the first one timed out meanwhile
    page = inv.get(f"/patients/{code}/visits/TA-W08").text
    assert "2025-05-07" in page and "2025-04-30 to 2025-05-14" in page  # day 56 +/- 7
    assert 'data-testid="visit-status">missed<' in page and 'action="/patients/' in page

    future = inv.post(
        f"/patients/{code}/visits", data={"visit_code": "TA-W08", "visit_date": "2025-05-21"}
    )
    assert future.status_code == 422 and "in the future" in _error_next_to(
        future.text, "visit_date"
    )
    assert 'value="2025-05-21"' in future.text  # kept
    saved = inv.post(
        f"/patients/{code}/visits", data={"visit_code": "TA-W08", "visit_date": "2025-05-16"}
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/patients/{code}/visits/TA-W08?saved=true"
    shown = inv.get(saved.headers["location"]).text
    assert 'data-testid="visit-status">late<' in shown and "(+9 days from target)" in shown
    assert 'data-testid="visit-saved"' in shown
    assert 'class="late">late<' in inv.get(f"/patients/{code}").text

    again = inv.post(
        f"/patients/{code}/visits", data={"visit_code": "TA-W08", "visit_date": "2025-05-10"}
    )
    assert again.status_code == 409  # recorded once; a change is a correction
    no_reason = inv.post(f"/patients/{code}/visits/TA-W08/edit", data={"visit_date": "2025-05-10"})
    assert no_reason.status_code == 422 and "reason" in _error_next_to(no_reason.text, "reason")
    fixed = inv.post(
        f"/patients/{code}/visits/TA-W08/edit",
        data={"visit_date": "2025-05-10", "reason": REASON},
    )
    assert fixed.status_code == 303
    assert 'data-testid="visit-status">in window<' in inv.get(fixed.headers["location"]).text
    audit = inv.get(f"/patients/{code}/audit").text
    visit = audit_entry(audit, "visit_date")
    assert audit_change(visit, "visit_date")[1] == "2025-05-16" and REASON in visit
    assert site.client("inv2").get(f"/patients/{code}/visits/TA-W08").status_code == 404
    assert site.client("rev").get(f"/patients/{code}/visits/TA-W08").status_code == 403


def test_treatment_visits_hidden_from_roles_without_treatment(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No role reading visits lacks treatment today; take treatment from the monitor to check
    that C3/C4 (which reveal the arm) leave the timeline, the visit page and the audit page."""
    code = _patient(site)
    site.clock.now = dt.datetime(2025, 5, 20, 9, tzinfo=dt.UTC)
    inv = site.client("inv1")
    for visit_code, day in (("C3", "2025-03-14"), ("TA-W08", "2025-05-07")):
        r = inv.post(
            f"/api/v1/patients/{code}/visits", json={"visit_code": visit_code, "visit_date": day}
        )
        assert r.status_code == 201, r.text
    grants = POLICY[Role.MONITOR] - {(Action.READ, Resource.TREATMENT)}
    monkeypatch.setitem(POLICY, Role.MONITOR, grants)
    mon = site.client("mon1")
    timeline = mon.get(f"/patients/{code}").text
    assert 'data-testid="visit-TA-W08"' in timeline
    assert 'data-testid="visit-C3"' not in timeline and "Cycle 3" not in timeline
    assert mon.get(f"/patients/{code}/visits/C3").status_code == 403
    assert mon.get(f"/patients/{code}/visits/TA-W08").status_code == 200
    audit = mon.get(f"/patients/{code}/audit").text
    assert "TA-W08" in audit_values(audit, "visit_code", "visits")
    assert "C3" not in audit_values(audit, "visit_code", "visits")
    unblinded = inv.get(f"/patients/{code}/audit").text
    assert "C3" in audit_values(unblinded, "visit_code", "visits")


# --- JSON API ----------------------------------------------------------------------------


def _api(site: Site, username: str) -> TestClient:
    token = site.client(username).post("/api/v1/tokens", json={"name": "s"}).json()["token"]
    return TestClient(site.app, headers={"Authorization": f"Bearer {token}"})


def test_api_adverse_event_and_cycle_corrections(site: Site) -> None:
    code = _patient(site)
    api = _api(site, "inv1")
    ae_id = _ae(site.client("inv1"), code)
    url = f"/api/v1/patients/{code}/adverse-events/{ae_id}"
    missing = api.put(url, json={"grade": 3})
    assert missing.status_code == 422 and missing.json()["problems"][0]["field"] == "reason"
    blank = api.put(url, json={"grade": 3, "reason": "  "})
    assert blank.status_code == 422 and blank.json()["field"] == "reason"
    extra = api.put(url, json={"patient_id": "C01-0002", "reason": REASON})
    assert extra.status_code == 422 and "patient_id" in extra.text
    fatal = api.put(url, json={"grade": 5, "reason": REASON})
    assert fatal.status_code == 422 and fatal.json()["field"] == "adverse_event.outcome"
    ok = api.put(url, json={"grade": 5, "outcome": "fatal", "reason": REASON})
    assert ok.status_code == 200, ok.text
    assert ok.json()["id"] == ae_id and ok.json()["grade"] == 5
    assert ok.json()["term"] == "Nausea"  # fields left out keep their value

    cycle = api.put(f"/api/v1/patients/{code}/cycles/1", json={"lot": "L1-B", "reason": REASON})
    assert cycle.status_code == 200 and cycle.json()["lot"] == "L1-B"
    bad = api.put(f"/api/v1/patients/{code}/cycles/1", json={"activity_gbq": "70", "reason": "r"})
    assert bad.status_code == 422 and bad.json()["field"] == "activity_gbq"
    assert api.put(f"/api/v1/patients/{code}/cycles/5", json={"reason": "r"}).status_code == 422
    assert api.put(f"/api/v1/patients/{code}/cycles/3", json={"reason": "r"}).status_code == 404
    with site.db() as db:
        reasons = set(db.scalars(select(AuditLog.reason).where(AuditLog.action == "update")))
    assert reasons == {REASON}

    other = _api(site, "inv2")
    assert other.put(url, json={"grade": 3, "reason": "r"}).status_code == 404
    assert (
        other.put(f"/api/v1/patients/{code}/cycles/1", json={"lot": "Z", "reason": "r"}).status_code
        == 404
    )
    rev = _api(site, "rev")
    assert rev.put(f"/api/v1/patients/{code}/cycles/3", json={"reason": "r"}).status_code == 403


def test_api_visits_record_and_correct(site: Site) -> None:
    code = _patient(site)
    site.clock.now = dt.datetime(2025, 5, 20, 9, tzinfo=dt.UTC)
    api = _api(site, "nurse1")
    url = f"/api/v1/patients/{code}/visits"
    created = api.post(url, json={"visit_code": "TA-W08", "visit_date": "2025-04-20"})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "visit_code": "TA-W08",
        "visit_date": "2025-04-20",
        "target_date": "2025-05-07",
        "window_start": "2025-04-30",
        "window_end": "2025-05-14",
        "status": "early",
        "days_from_target": -17,
    }
    assert (
        api.post(url, json={"visit_code": "TA-W08", "visit_date": "2025-05-01"}).status_code == 409
    )
    unknown = api.post(url, json={"visit_code": "TA-W99", "visit_date": "2025-05-01"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "visit_code"
    bad_date = api.post(url, json={"visit_code": "TA-W16", "visit_date": "05/01/2025"})
    assert bad_date.status_code == 422 and bad_date.json()["field"] == "visit_date"
    put = f"{url}/TA-W08"
    assert api.put(put, json={"visit_date": "2025-05-07"}).status_code == 422  # no reason
    fixed = api.put(put, json={"visit_date": "2025-05-07", "reason": REASON})
    assert fixed.status_code == 200 and fixed.json()["status"] == "in_window"
    assert fixed.json()["days_from_target"] == 0
    assert (
        api.put(f"{url}/TA-W16", json={"visit_date": "2025-05-07", "reason": "r"}).status_code
        == 404
    )
    timeline = api.get(f"/api/v1/patients/{code}").json()
    visits = {v["code"]: v for v in timeline["visits"]}
    assert visits["TA-W08"]["status"] == "in_window" and visits["C3"]["status"] == "missed"
    other = _api(site, "inv2")
    assert (
        other.post(url, json={"visit_code": "TA-W16", "visit_date": "2025-05-01"}).status_code
        == 404
    )
    assert (
        _api(site, "mon1")
        .post(url, json={"visit_code": "TA-W16", "visit_date": "2025-05-01"})
        .status_code
        == 403
    )


def test_visits_before_randomization_are_refused(site: Site) -> None:
    code = ready_patient(site)
    inv = site.client("inv1")
    assert 'id="visits"' not in inv.get(f"/patients/{code}").text
    r = inv.post(
        f"/api/v1/patients/{code}/visits", json={"visit_code": "TA-W08", "visit_date": "2025-03-11"}
    )
    assert r.status_code == 409 and "not randomized" in r.json()["error"]


def test_the_lln_typed_with_a_lab_value_is_stored_and_the_correction_keeps_it(site: Site) -> None:
    # Issue 17: the correction page asked for the lower limit of normal again.
    from reluth.safety.models import LabResult

    code = _patient(site)
    inv = site.client("inv1")
    saved = inv.post(
        f"/patients/{code}/labs",
        data={
            "test": "hemoglobin",
            "value": "11,0",
            "unit": "g/dL",
            "lln": "12",
            "date": "2025-03-11",
        },
    )
    assert saved.status_code == 303, saved.text
    with site.db() as db:
        row = db.scalars(select(LabResult).where(LabResult.analyte == "hemoglobin")).one()
        assert row.lln is not None and row.lln == 12 and row.ctcae_grade == 1
        lab_id = row.id
    form = inv.get(f"/patients/{code}/labs/{lab_id}/edit").text
    assert 'id="edit-lln" name="lln" inputmode="decimal" value="12"' in form
    assert 'id="hint-lln">stored with the result<' in form  # not "give it again"
    # a correction of the value only: the stored LLN grades it, not asked again
    ok = inv.post(
        f"/patients/{code}/labs/{lab_id}/edit",
        data={"value": "11.5", "date": "2025-03-11", "reason": REASON},
    )
    assert ok.status_code == 303, ok.text
    with site.db() as db:
        row = db.get(LabResult, lab_id)
        assert row is not None and row.lln == 12 and row.ctcae_grade == 1
