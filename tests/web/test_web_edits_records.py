"""Corrections of the inclusion, the pre-randomization assessment, QoL questionnaires and central
reads, on the pages and through the JSON API: reached from a "Correct" link where the record is
shown, labelled fields, the message next to the field, typed input kept, a reason required
(nothing written without it), old and new value with the reason on the audit page; the central
reviewer's correction page shows nothing of the arm; other centres' records answer 404."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_web_api_review import ARM_TEXT, BASELINE, WEEK8
from test_web_edits import REASON, _api, _error_next_to, _patient
from web_support import Site, audit_change, audit_entry

from reluth.db.audit import AuditLog


def _audit_rows(site: Site) -> int:
    with site.db() as db:
        return int(db.scalar(select(func.count()).select_from(AuditLog)) or 0)


def _audit_row(audit: str, field: str) -> str:
    """The audit page's row of the last change of ``field``."""
    return audit_entry(audit, field)


# --- inclusion ---------------------------------------------------------------------------


def test_inclusion_correction_page_of_a_randomized_patient(site: Site) -> None:
    """Included 2025-03-04 (consent 2024-10-28), cycle 1 on 2025-03-05, randomized: the dates
    may still be corrected, with the entry rules and before the first cycle."""
    code = _patient(site)
    inv = site.client("inv1")
    url = f"/patients/{code}/inclusion/edit"
    assert f'href="{url}"' in inv.get(f"/patients/{code}").text
    form = inv.get(url).text
    assert '<label for="edit-consent_date">Date informed consent signed</label>' in form
    assert 'id="edit-inclusion_date" name="inclusion_date" type="date" value="2025-03-04"' in form

    before = _audit_rows(site)
    no_reason = inv.post(url, data={"consent_date": "2024-10-29", "inclusion_date": "2025-03-03"})
    assert no_reason.status_code == 422
    assert "a reason is required" in _error_next_to(no_reason.text, "reason")
    assert 'value="2024-10-29"' in no_reason.text  # typed input kept
    late = inv.post(
        url, data={"consent_date": "2024-10-28", "inclusion_date": "2025-03-06", "reason": REASON}
    )
    assert late.status_code == 422
    assert "is after the cycle 1 (2025-03-05)" in _error_next_to(late.text, "inclusion_date")
    assert REASON in late.text
    consent = inv.post(
        url, data={"consent_date": "2025-03-05", "inclusion_date": "2025-03-04", "reason": REASON}
    )
    assert "after inclusion" in _error_next_to(consent.text, "consent_date")
    assert _audit_rows(site) == before

    ok = inv.post(
        url, data={"consent_date": "2024-10-29", "inclusion_date": "2025-03-03", "reason": REASON}
    )
    assert ok.status_code == 303 and re.fullmatch(
        rf"/patients/{code}\?saved=[a-z_]+-\d+#inclusion", ok.headers["location"]
    )
    assert "Included 2025-03-03 (consent signed 2024-10-29)" in inv.get(f"/patients/{code}").text
    row = _audit_row(inv.get(f"/patients/{code}/audit").text, "inclusion_date")
    assert audit_change(row, "inclusion_date") == ("Inclusion date", "2025-03-04", "2025-03-03")
    assert "inv1" in row and "investigator" in row and REASON in row

    assert site.client("inv2").get(url).status_code == 404
    assert site.client("mon1").get(url).status_code == 403
    assert site.client("rev").get(url).status_code == 403


def test_api_inclusion_correction(site: Site) -> None:
    code = _patient(site)
    api = _api(site, "nurse1")
    url = f"/api/v1/patients/{code}/inclusion"
    missing = api.put(url, json={"inclusion_date": "2025-03-03"})
    assert missing.status_code == 422 and missing.json()["problems"][0]["field"] == "reason"
    future = api.put(url, json={"inclusion_date": "2025-03-13", "reason": REASON})
    assert future.status_code == 422 and future.json()["field"] == "inclusion_date"
    extra = api.put(url, json={"screening_id": 1, "reason": REASON})
    assert extra.status_code == 422
    ok = api.put(url, json={"inclusion_date": "2025-03-03", "reason": REASON})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body.pop("form") == "inclusion" and isinstance(body.pop("record_id"), int)
    assert body == {"consent_date": "2024-10-28", "inclusion_date": "2025-03-03"}
    assert (
        _api(site, "inv2").put(url, json={"consent_date": "2024-10-27", "reason": "r"}).status_code
        == 404
    )


# --- pre-randomization assessment ------------------------------------------------------------


def test_pre_randomization_correction_refuses_pd_after_randomization(site: Site) -> None:
    code = _patient(site)  # assessed 2025-03-10 SD, randomized 2025-03-12
    inv = site.client("inv1")
    url = f"/patients/{code}/pre-randomization/edit"
    assert f'href="{url}"' in inv.get(f"/patients/{code}").text
    form = inv.get(url).text
    assert '<label for="edit-overall_response">Overall response (RECIST 1.1)</label>' in form
    assert '<option value="SD" selected>' in form

    before = _audit_rows(site)
    fields = {"assessment_date": "2025-03-10", "overall_response": "PD", "comment": "re-read"}
    pd = inv.post(url, data=fields | {"reason": REASON})
    assert pd.status_code == 409
    message = _error_next_to(pd.text, "overall_response")
    assert "randomized on 2025-03-12" in message and "invalid" in message
    assert '<option value="PD" selected>' in pd.text and "re-read" in pd.text  # kept
    no_reason = inv.post(url, data=fields | {"overall_response": "PR"})
    assert no_reason.status_code == 422 and "reason" in _error_next_to(no_reason.text, "reason")
    assert _audit_rows(site) == before

    ok = inv.post(url, data=fields | {"overall_response": "PR", "reason": REASON})
    assert ok.status_code == 303 and re.fullmatch(
        rf"/patients/{code}\?saved=[a-z_]+-\d+#pre", ok.headers["location"]
    )
    timeline = inv.get(f"/patients/{code}").text
    assert "2025-03-10: PR — no radiological progression" in timeline
    audit = inv.get(f"/patients/{code}/audit").text
    row = _audit_row(audit, "overall_response")
    assert audit_change(row, "overall_response")[1:] == ("SD", "PR") and REASON in row
    assert site.client("inv2").get(url).status_code == 404
    assert site.client("stat").get(url).status_code == 403


def test_api_pre_randomization_correction(site: Site) -> None:
    code = _patient(site)
    api = _api(site, "inv1")
    url = f"/api/v1/patients/{code}/pre-randomization"
    pd = api.put(url, json={"overall_response": "PD", "reason": REASON})
    assert pd.status_code == 409 and pd.json()["field"] == "overall_response"
    assert "randomized" in pd.json()["error"]
    assert api.put(url, json={"overall_response": "XX", "reason": REASON}).status_code == 422
    flag = api.put(url, json={"radiological_progression": True, "reason": REASON})
    assert flag.status_code == 422  # follows the response
    ok = api.put(url, json={"overall_response": "CR", "reason": REASON})
    assert ok.status_code == 200, ok.text
    assert ok.json()["overall_response"] == "CR" and ok.json()["radiological_progression"] is False


# --- QoL -------------------------------------------------------------------------------------


def _questionnaire(client: TestClient, code: str) -> int:
    items = {str(n): 1 for n in range(1, 31)} | {"29": 5, "30": 5}
    saved = client.post(
        f"/api/v1/patients/{code}/qol",
        json={
            "instrument": "QLQ-C30",
            "timepoint": "QOL-W00",
            "completed_on": "2025-03-11",
            "items": items,
        },
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["scales"]["QL"] == 66.67
    return int(saved.json()["id"])


def test_qol_correction_page_rescores(site: Site) -> None:
    code = _patient(site)
    nurse = site.client("nurse1")
    qol_id = _questionnaire(nurse, code)
    url = f"/patients/{code}/qol/{qol_id}/edit"
    assert f'href="{url}"' in nurse.get(f"/patients/{code}").text
    form = nurse.get(url).text
    assert 'for="edit-item_29">Item 29:' in form and "(1-7)" in form
    assert "saved scores:" in form and "QL 66.67" in form

    before = _audit_rows(site)
    bad = nurse.post(url, data={"completed_on": "2025-03-11", "item_29": "9", "reason": REASON})
    assert bad.status_code == 422 and "out of range" in _error_next_to(bad.text, "item_29")
    no_reason = nurse.post(url, data={"completed_on": "2025-03-11", "item_29": "7"})
    assert no_reason.status_code == 422 and "reason" in _error_next_to(no_reason.text, "reason")
    assert '<option value="7" selected>' in no_reason.text  # kept
    assert _audit_rows(site) == before

    ok = nurse.post(
        url,
        data={"completed_on": "2025-03-11", "item_29": "7", "item_30": "7", "reason": REASON},
    )
    assert ok.status_code == 303 and re.fullmatch(
        rf"/patients/{code}\?saved=[a-z_]+-\d+#qol", ok.headers["location"]
    )
    assert "QL 100.00" in nurse.get(f"/patients/{code}").text
    audit = nurse.get(f"/patients/{code}/audit").text
    row = _audit_row(audit, "answers_json.29")
    # the answers are one JSON text, shown item by item: old and new answer of item 29
    assert audit_change(row, "answers_json.29")[1:] == ("5", "7") and REASON in row
    assert 'data-field="answers_json.1"' not in row  # unchanged items are not listed
    assert 'data-field="scores_json.scales › QL"' in audit and "&#34;" not in audit
    assert site.client("inv2").get(url).status_code == 404
    assert site.client("mon1").get(url).status_code == 403


def test_api_qol_correction(site: Site) -> None:
    code = _patient(site)
    api = _api(site, "inv1")
    qol_id = _questionnaire(api, code)
    url = f"/api/v1/patients/{code}/qol/{qol_id}"
    assert api.put(url, json={"items": {"29": 7}}).status_code == 422  # no reason
    bad = api.put(url, json={"items": {"29": 8}, "reason": REASON})
    assert bad.status_code == 422 and bad.json()["field"] == "items.29"
    ok = api.put(url, json={"items": {"29": 7, "30": 7}, "reason": REASON})
    assert ok.status_code == 200, ok.text
    assert ok.json()["scales"]["QL"] == 100 and ok.json()["items"]["29"] == 7
    listed = api.get(f"/api/v1/patients/{code}/qol").json()
    assert listed[0]["id"] == qol_id and listed[0]["scales"]["QL"] == 100
    assert _api(site, "inv2").put(url, json={"items": {"1": 2}, "reason": "r"}).status_code == 404


# --- central reads (blinded) ------------------------------------------------------------------


def _reads(site: Site, code: str) -> tuple[int, int]:
    rev = site.client("rev")
    ids = []
    for body in (BASELINE, WEEK8):
        saved = rev.post(f"/api/v1/review/{code}", json=body)
        assert saved.status_code == 201, saved.text
        ids.append(int(saved.json()["id"]))
    return ids[0], ids[1]


def test_central_read_correction_page_is_blinded_and_re_evaluated(site: Site) -> None:
    code = _patient(site)
    _base, week8 = _reads(site, code)  # week 8: 25 + 15 = 40 mm, PR
    rev = site.client("rev")
    url = f"/review/{code}/reads/{week8}/edit"
    assert f'href="{url}"' in rev.get(f"/review/{code}").text
    form = rev.get(url)
    assert form.status_code == 200
    assert '<label for="edit-diameter_T1">T1 (liver, target): diameter (mm)</label>' in form.text
    assert 'name="diameter_T1" inputmode="decimal" value="25.0"' in form.text
    assert f'<a href="/review/{code}">{code}</a>' in form.text  # not the patient timeline
    assert not ARM_TEXT.search(form.text), ARM_TEXT.search(form.text)

    before = _audit_rows(site)
    fields = {
        "diameter_T1": "35",
        "diameter_T2": "15",
        "status_NT1": "present",
        "new_lesions": "no",
    }
    no_reason = rev.post(url, data=fields)
    assert no_reason.status_code == 422 and "reason" in _error_next_to(no_reason.text, "reason")
    assert 'value="35"' in no_reason.text
    bad = rev.post(url, data=fields | {"diameter_T1": "3.45", "reason": REASON})
    assert bad.status_code == 422 and "one decimal" in _error_next_to(bad.text, "diameter_T1")
    target_present = rev.post(
        url, data=fields | {"diameter_T1": "", "status_T1": "present", "reason": REASON}
    )
    assert target_present.status_code == 422
    assert "not a measurement of a target" in _error_next_to(target_present.text, "status_T1")
    assert not ARM_TEXT.search(bad.text)
    assert _audit_rows(site) == before

    ok = rev.post(url, data=fields | {"reason": REASON})
    assert ok.status_code == 303 and ok.headers["location"] == f"/review/{code}"
    reads = rev.get(f"/api/v1/review/{code}").json()["reads"]
    assert (reads[1]["target_sum_mm"], reads[1]["overall_response"]) == (50, "SD")  # -16.7 %
    audit = site.client("inv1").get(f"/patients/{code}/audit").text
    row = _audit_row(audit, "diameter_mm")
    assert audit_change(row, "diameter_mm")[1:] == (
        "25",
        "35",
    )  # the history drops the trailing zero
    assert "rev" in row and "central reviewer" in row and REASON in row
    assert audit_change(_audit_row(audit, "overall_response"), "overall_response")[1:] == (
        "PR",
        "SD",
    )
    for user in ("inv1", "mon1", "stat"):
        assert site.client(user).get(url).status_code == 403


def test_api_central_read_correction(site: Site) -> None:
    code = _patient(site)
    base, week8 = _reads(site, code)
    api = _api(site, "rev")
    url = f"/api/v1/review/{code}/reads/{week8}"
    assert api.put(url, json={"new_lesions": "yes"}).status_code == 422  # no reason
    organ = api.put(url, json={"lesions": {"T1": {"organ": "lung"}}, "reason": REASON})
    assert organ.status_code == 422
    unknown = api.put(url, json={"lesions": {"T9": {"diameter_mm": 3}}, "reason": REASON})
    assert unknown.status_code == 422 and unknown.json()["field"] == "lesions.T9"
    at_baseline = api.put(
        f"/api/v1/review/{code}/reads/{base}", json={"new_lesions": "yes", "reason": REASON}
    )
    assert at_baseline.status_code == 422 and at_baseline.json()["field"] == "new_lesions"
    ok = api.put(url, json={"new_lesions": "yes", "reason": REASON})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["new_lesions"] == "yes" and body["reads"][1]["overall_response"] == "PD"
    assert not ARM_TEXT.search(ok.text)
    assert (
        api.put(
            f"/api/v1/review/{code}/reads/999999", json={"new_lesions": "no", "reason": "r"}
        ).status_code
        == 404
    )
    assert _api(site, "inv1").put(url, json={"new_lesions": "no", "reason": "r"}).status_code == 403
