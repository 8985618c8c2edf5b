"""Queries linked to (form instance, field): raised from the record page's query button, the
target chosen from the record (an unknown form, record or field is refused 422 naming it),
open -> answered -> closed -> re-opened with a reason, days open, per-centre counts on the
dashboard; missing-data codes on a field are stored and shown."""

from __future__ import annotations

import re

from test_web_edits import _lab, _patient
from web_support import Site


def test_query_on_a_lab_value_from_its_record_page(site: Site) -> None:
    code = _patient(site)
    inv, mon = site.client("inv1"), site.client("mon1")
    lab_id = _lab(inv, code)
    assert f'href="/forms/lab/{lab_id}"' in mon.get(f"/patients/{code}").text  # from the timeline
    page = mon.get(f"/forms/lab/{lab_id}")
    assert page.status_code == 200 and 'data-testid="query-value"' in page.text
    assert (
        'name="form" value="lab"' in page.text and f'name="record_id" value="{lab_id}"' in page.text
    )
    assert "/edit" not in page.text  # the monitor does not correct
    raised = mon.post(
        f"/patients/{code}/queries",
        data={"form": "lab", "record_id": str(lab_id), "field": "value", "question": "74000?"},
    )
    assert (
        raised.status_code == 303
        and raised.headers["location"] == f"/forms/lab/{lab_id}?queried=true"
    )
    shown = mon.get(raised.headers["location"]).text
    assert 'data-testid="queries-value">1 open' in shown and "74000?" in shown

    api = f"/api/v1/patients/{code}/queries"
    for body, field in (
        ({"field": "nonsense 99999 foo", "question": "?"}, "field"),
        ({"form": "nonsense", "field": "value", "question": "?"}, "form"),
        ({"form": "lab", "record_id": 99999, "field": "value", "question": "?"}, "record_id"),
        ({"form": "lab", "record_id": lab_id, "field": "colour", "question": "?"}, "field"),
        ({"field": "lab_results 99999 value", "question": "?"}, "field"),
    ):
        refused = mon.post(api, json=body)
        assert refused.status_code == 422 and refused.json()["field"] == field, refused.text
    by_table = mon.post(api, json={"field": f"lab_results {lab_id} uln", "question": "ULN?"})
    assert by_table.status_code == 201 and by_table.json()["form_id"] == "lab"

    queries = mon.get("/api/v1/queries").json()
    q = next(x for x in queries if x["item"] == "value")
    assert (q["form_id"], q["record_id"], q["days_open"]) == ("lab", lab_id, 0)
    assert f'href="/forms/lab/{lab_id}"' in mon.get("/queries").text
    grid = site.client("dm").get("/api/v1/status").json()["patients"][0]["visits"]
    assert grid["LAB-W00"]["forms"]["lab"] == {  # the result of 2025-03-11 is in its window
        "status": "queried",
        "records": [lab_id],
        "missing_code": None,
    }
    assert grid["LAB-W00"]["status"] == "queried"

    site.clock.advance(days=3)
    mon = site.client("mon1")
    assert mon.get("/api/v1/queries").json()[0]["days_open"] == 3
    dash = mon.get("/api/v1/dashboard").json()["queries_by_centre"]
    assert dash["C01"] == {"open": 2, "answered": 0, "oldest_days": 3}
    assert 'data-testid="queries-by-centre"' in mon.get("/dashboard").text

    qid = q["id"]
    inv = site.client("inv1")
    assert (
        inv.post(f"/api/v1/queries/{qid}/answer", json={"answer": "source: 47000"}).status_code
        == 200
    )
    assert mon.post(f"/api/v1/queries/{qid}/reopen", json={"reason": "r"}).status_code == 409
    assert mon.post(f"/api/v1/queries/{qid}/close").status_code == 200
    assert inv.post(f"/api/v1/queries/{qid}/reopen", json={"reason": "r"}).status_code == 403
    again = mon.post(f"/api/v1/queries/{qid}/reopen", json={"reason": "value not corrected"})
    assert again.status_code == 200 and again.json()["status"] == "open"
    assert again.json()["reopen_reason"] == "value not corrected" and again.json()["days_open"] == 0
    reasons = {r["reason"] for r in inv.get(f"/api/v1/patients/{code}/audit").json()}
    assert f"data query {qid} re-opened: value not corrected" in reasons
    assert site.client("inv2").get(f"/forms/lab/{lab_id}").status_code == 404


def test_missing_data_code_on_a_field(site: Site) -> None:
    code = _patient(site)
    inv = site.client("inv1")
    lab_id = _lab(inv, code)  # saved without a ULN
    page = inv.get(f"/forms/lab/{lab_id}").text
    assert (
        'data-testid="missing-code-uln"' in page and 'data-testid="missing-code-value"' not in page
    )
    bad = inv.post(
        f"/forms/lab/{lab_id}/missing", data={"item": "uln", "code": "ASKU", "reason": "x"}
    )
    assert bad.status_code == 422 and "ASKU" in bad.text and "ND (not done)" in bad.text
    ok = inv.post(
        f"/forms/lab/{lab_id}/missing",
        data={"item": "uln", "code": "NA", "reason": "no ULN for platelets"},
    )
    assert ok.status_code == 303
    shown = inv.get(f"/forms/lab/{lab_id}").text
    assert re.search(
        r'data-testid="missing-uln">NA \(not applicable\): no ULN for platelets', shown
    )
    again = inv.post(
        f"/forms/lab/{lab_id}/missing", data={"item": "uln", "code": "ND", "reason": "x"}
    )
    assert again.status_code == 409
    has_value = inv.post(
        f"/forms/lab/{lab_id}/missing", data={"item": "value", "code": "ND", "reason": "x"}
    )
    assert has_value.status_code == 409 and "correct it instead" in has_value.text
    assert (
        site.client("mon1")
        .post(f"/forms/lab/{lab_id}/missing", data={"item": "uln", "code": "NA", "reason": "x"})
        .status_code
        == 403
    )


def test_a_query_answered_by_correcting_the_value(site: Site) -> None:
    code = _patient(site)
    inv, mon = site.client("inv1"), site.client("mon1")
    lab_id = _lab(inv, code)  # platelets 74000 /mm3
    api = f"/api/v1/patients/{code}/queries"
    qid = mon.post(api, json={"form": "lab", "record_id": lab_id, "field": "value",
                              "question": "source says 47000?"}).json()["id"]  # fmt: skip
    no_reason = inv.post(f"/api/v1/queries/{qid}/answer", json={"correct": "47000"})
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
    bad = inv.post(f"/api/v1/queries/{qid}/answer", json={"correct": "lots", "reason": "typo"})
    assert bad.status_code == 422, bad.text  # the domain's own check of the value
    assert (
        mon.post(
            f"/api/v1/queries/{qid}/answer", json={"correct": "47000", "reason": "typo"}
        ).status_code
        == 403
    )  # the monitor neither answers nor corrects
    done = inv.post(
        f"/api/v1/queries/{qid}/answer", json={"correct": "47000", "reason": "transcription error"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "answered"
    assert done.json()["answer"] == "Corrected value to 47000: transcription error"
    assert ">47000<" in inv.get(f"/forms/lab/{lab_id}").text
    audit = inv.get(f"/api/v1/patients/{code}/audit").json()
    changed = [r for r in audit if (r["table_name"], r["field"]) == ("lab_results", "value")]
    assert changed and changed[-1]["reason"] == f"transcription error (answer to data query {qid})"

    second = mon.post(api, json={"form": "lab", "record_id": lab_id, "field": "value",
                                 "question": "and now?"}).json()["id"]  # fmt: skip
    page = inv.get(f"/forms/lab/{lab_id}").text
    assert 'data-testid="correct-form"' in page and f'id="correct-{second}"' in page
    assert 'data-testid="correct-form"' not in mon.get(f"/forms/lab/{lab_id}").text
    posted = inv.post(
        f"/queries/{second}/answer",
        data={"corrected": "yes", "correct": "48000", "reason": "checked again",
              "back": f"/forms/lab/{lab_id}"},
    )  # fmt: skip
    assert posted.status_code == 303 and posted.headers["location"] == f"/forms/lab/{lab_id}"
    row = next(q for q in inv.get("/api/v1/queries").json() if q["id"] == second)
    assert row["status"] == "answered" and "48000" in row["answer"]
