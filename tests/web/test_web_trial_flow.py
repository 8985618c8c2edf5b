"""The investigator's flow through the pages (server side), with the audit trail, site isolation
by ID guessing, and the blinding of the arm."""

from __future__ import annotations

import json
import re

import pytest
from web_support import Site, eligible_file, make_site, setup_randomization


def _register(client: object, centre: str = "C01") -> str:
    response = client.post(
        "/patients",
        data={
            "centre": centre,
            "sex": "female",  # type: ignore[attr-defined]
            "birth_year": "1961",
        },
    )
    assert response.status_code == 303, response.text
    return str(response.headers["location"]).rsplit("/", 1)[1]


def ready_patient(site: Site) -> str:
    """A patient screened, included, given cycles 1-2 and assessed through the pages: ready to
    be randomized."""
    inv = site.client("inv1")
    code = _register(inv)
    data = json.dumps(eligible_file(code, site.clock().date()))
    live = inv.post(f"/patients/{code}/screening/check", data={"patient_json": data})
    assert "eligible" in live.text and "I1" in live.text
    assert inv.post(f"/patients/{code}/screening", data={"patient_json": data}).status_code == 303
    assert (
        inv.post(
            f"/patients/{code}/inclusion",
            data={"consent_date": "2024-10-28", "inclusion_date": "2025-03-04"},
        ).status_code
        == 303
    )
    # a woman (registered female, born 1961): her childbearing potential before a cycle
    not_fertile = {"reason": "postmenopausal", "assessed_on": "2025-03-04"}
    r = inv.post(f"/patients/{code}/forms/childbearing", data=not_fertile)
    assert r.status_code == 303, r.text
    for n, day in (("1", "2025-03-05"), ("2", "2025-03-06")):
        r = inv.post(
            f"/patients/{code}/cycles",
            data={"cycle": n, "administered_on": day, "activity_gbq": "7.4", "lot": f"L{n}"},
        )
        assert r.status_code == 303, r.text
    r = inv.post(
        f"/patients/{code}/pre-randomization",
        data={"assessment_date": "2025-03-10", "overall_response": "SD"},
    )
    assert r.status_code == 303, r.text
    return code


def randomized_patient(site: Site) -> str:
    setup_randomization(site.app)
    code = ready_patient(site)
    inv = site.client("inv1")
    confirm = inv.get(f"/patients/{code}/randomize")
    assert "All preconditions hold" in confirm.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', confirm.text).group(1)  # type: ignore[union-attr]
    refused = inv.post(f"/patients/{code}/randomize", data={"request_id": request_id})
    assert refused.status_code == 422  # not confirmed
    done = inv.post(
        f"/patients/{code}/randomize", data={"request_id": request_id, "confirm": "yes"}
    )
    assert done.status_code == 200 and 'data-testid="arm"' in done.text
    again = inv.post(
        f"/patients/{code}/randomize", data={"request_id": request_id, "confirm": "yes"}
    )
    assert "already been served" in again.text  # idempotent retry
    return code


def test_full_flow_and_audit(site: Site) -> None:
    code = randomized_patient(site)
    inv = site.client("inv1")
    grade = inv.post(
        f"/patients/{code}/labs/grade",
        data={"test": "platelets", "value": "74000", "unit": "/mm3", "lln": "150000"},
    )
    assert 'data-testid="ctcae-grade">grade 2<' in grade.text
    saved = inv.post(
        f"/patients/{code}/labs",
        data={
            "date": "2025-03-11",
            "test": "platelets",
            "value": "74000",
            "unit": "/mm3",
            "lln": "150000",
        },
    )
    assert saved.status_code == 303, saved.text
    page = inv.get(f"/patients/{code}").text
    assert "platelets" in page and 'data-testid="timeline-arm"' in page
    audit = inv.get(f"/patients/{code}/audit").text
    for table in (
        "patients",
        "screenings",
        "inclusions",
        "administrations",
        "lab_results",
        "randomizations",
    ):
        assert table in audit


def test_rejected_form_keeps_input_and_names_the_field(site: Site) -> None:
    code = randomized_patient(site)
    inv = site.client("inv1")
    r = inv.post(
        f"/patients/{code}/labs",
        data={"date": "2025-03-11", "test": "platelets", "value": "74000", "unit": "furlongs"},
    )
    assert r.status_code == 422
    assert "lab.unit" in r.text and 'value="furlongs"' in r.text and 'value="74000"' in r.text


def test_screening_in_the_future_or_malformed_is_shown_next_to_the_field(site: Site) -> None:
    inv = site.client("inv1")
    code = _register(inv)
    bad = inv.post(f"/patients/{code}/screening", data={"patient_json": "{not json"})
    assert bad.status_code == 422 and "malformed JSON" in bad.text and "{not json" in bad.text


@pytest.mark.parametrize("username", ["inv2", "mon1"])
def test_cross_centre_id_guessing_finds_nothing(site: Site, username: str) -> None:
    code = _register(site.client("inv1"))
    other = site.client(username)
    if username == "mon1":  # monitor of C01 sees it; make it a C02 monitor's view instead
        code = _register(site.client("inv2"), "C02")
    for path in ("", "/screening", "/audit", "/randomize"):
        r = other.get(f"/patients/{code}{path}")
        assert r.status_code in (403, 404), (path, r.status_code)
        assert r.status_code == 404 or path in ("/screening", "/randomize")
    for path, data in (
        ("/inclusion", {"consent_date": "2025-01-01"}),
        ("/labs", {"test": "alt", "value": "1", "unit": "U/L"}),
        ("/screening", {"patient_json": "{}"}),
    ):
        r = other.post(f"/patients/{code}{path}", data=data)
        assert r.status_code in (403, 404), (path, r.status_code)
    assert code not in other.get("/patients").text
    assert other.post(
        "/patients", data={"centre": "C01" if username == "inv2" else "C02"}
    ).status_code in (403, 404)


def test_arm_hidden_from_roles_without_arm(site: Site) -> None:
    code = randomized_patient(site)
    for username in ("dm", "pv", "stat", "mon1", "nurse1"):
        page = site.client(username).get(f"/patients/{code}")
        assert page.status_code == 200
        assert 'data-testid="timeline-arm"' in page.text  # all unblinded roles
    assert site.client("rev").get(f"/patients/{code}").status_code == 403
    assert site.client("admin").get(f"/patients/{code}").status_code == 403


def _read(rows: list[tuple[str, str, str, str]], **fields: str) -> dict[str, str]:
    data = dict(fields)
    for i, (lid, organ, kind, diameter) in enumerate(rows):
        data[f"id_{i}"] = lid
        if organ:
            data[f"organ_{i}"] = organ
            data[f"kind_{i}"] = kind
        if diameter:
            data[f"diameter_{i}"] = diameter
        elif kind == "non_target" or not organ:
            data[f"status_{i}"] = "present"
    return data


def test_central_review_is_blinded_and_computes_recist(site: Site) -> None:
    code = randomized_patient(site)
    rev = site.client("rev")
    worklist = rev.get("/review")
    assert worklist.status_code == 200 and code in worklist.text
    baseline = _read(
        [("T1", "liver", "target", "40"), ("T2", "liver", "target", "20")],
        timepoint="baseline",
        assessment_date="2025-03-01",
        modality="CT",
    )
    live = rev.post(f"/review/{code}/evaluate", data=baseline)
    assert (
        'data-testid="recist-sum">60.0 mm' in live.text
        or 'data-testid="recist-sum">60 mm' in live.text
    )
    assert rev.post(f"/review/{code}", data=baseline).status_code == 303
    follow = _read(
        [("T1", "", "", "25"), ("T2", "", "", "15")],
        timepoint="week8",
        assessment_date="2025-03-11",
        modality="CT",
        new_lesions="no",
    )
    live = rev.post(f"/review/{code}/evaluate", data=follow)
    assert 'data-testid="recist-overall">PR<' in live.text  # 40 mm = -33.3 %
    assert rev.post(f"/review/{code}", data=follow).status_code == 303
    page = rev.get(f"/review/{code}").text
    assert "PR" in page
    arm_words = re.compile(
        r"\b(arm|experimental|control|surveillance|cycle|dosimetry|randomi[sz]ed)\b", re.I
    )
    for text in (page, worklist.text, rev.get("/account/tokens").text):
        assert not arm_words.search(text), arm_words.search(text)
    for path in (f"/patients/{code}", "/patients", "/dashboard", f"/patients/{code}/audit"):
        assert rev.get(path).status_code == 403
    assert rev.get("/review/C01-9999").status_code == 404


def test_dashboard_counts_by_centre_and_hides_arm_counts_from_site_roles(site: Site) -> None:
    code = randomized_patient(site)
    _register(site.client("inv2"), "C02")
    inv2 = site.client("inv2").get("/api/v1/dashboard").json()
    assert inv2["included"] == 0 and [c["code"] for c in inv2["centres"]] == ["C02"]
    assert inv2["arm_counts"] is None
    inv1 = site.client("inv1").get("/dashboard").text
    assert 'data-testid="included">1<' in inv1 and "arm-counts" not in inv1
    stat = site.client("stat").get("/api/v1/dashboard").json()
    assert stat["randomized"] == 1 and sum(stat["arm_counts"].values()) == 1
    assert stat["included_by_month"] == [["2025-03", 1, 1]]
    assert code  # registered through the pages


def test_api_flow_with_token_and_reasoned_correction(site: Site) -> None:
    code = randomized_patient(site)
    token = site.client("inv1").post("/api/v1/tokens", json={"name": "script"}).json()["token"]
    from fastapi.testclient import TestClient

    api = TestClient(site.app, headers={"Authorization": f"Bearer {token}"})
    lab = api.post(
        f"/api/v1/patients/{code}/labs",
        json={"test": "alt", "value": "150", "unit": "U/L", "uln": "40", "date": "2025-03-11"},
    )
    assert lab.status_code == 201, lab.text
    assert lab.json()["ctcae_grade"] == 2  # 150 U/L = 3.75 x ULN: > 3-5 x ULN is grade 2
    lab_id = lab.json()["id"]
    no_reason = api.put(f"/api/v1/patients/{code}/labs/{lab_id}", json={"value": "45"})
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    blank = api.put(f"/api/v1/patients/{code}/labs/{lab_id}", json={"value": "45", "reason": "  "})
    assert blank.status_code in (403, 422)
    fixed = api.put(
        f"/api/v1/patients/{code}/labs/{lab_id}",
        json={"value": "45", "reason": "transcription error, source p. 4"},
    )
    assert fixed.status_code == 200 and fixed.json()["ctcae_grade"] == 1
    audit = site.client("inv1").get(f"/patients/{code}/audit").text
    assert "transcription error, source p. 4" in audit and "150" in audit
    # Date and ULN are corrected like on the page, and the result is re-graded (45 U/L is
    # grade 0 below a ULN of 50); nothing to correct, or a future date, is refused by field.
    both = api.put(
        f"/api/v1/patients/{code}/labs/{lab_id}",
        json={"date": "2025-03-10", "uln": "50", "reason": "lab report reissued"},
    )
    assert both.status_code == 200, both.text
    from decimal import Decimal

    out = both.json()
    assert out["date"] == "2025-03-10"
    assert (Decimal(out["uln"]), Decimal(out["value"])) == (Decimal(50), Decimal(45))
    assert both.json()["ctcae_grade"] == 0
    empty = api.put(f"/api/v1/patients/{code}/labs/{lab_id}", json={"reason": "nothing"})
    assert empty.status_code == 422 and empty.json()["field"] == "body"
    future = api.put(
        f"/api/v1/patients/{code}/labs/{lab_id}", json={"date": "2030-01-01", "reason": "typo"}
    )
    assert future.status_code == 422 and future.json()["code"] == "date_in_future"
    assert "Date: 2030-01-01 is in the future" in future.json()["error"]
    timeline = api.get(f"/api/v1/patients/{code}").json()
    assert timeline["arm"] in ("experimental", "control")
    other = site.client("inv2")
    assert (
        other.put(
            f"/api/v1/patients/{code}/labs/{lab_id}", json={"value": "1", "reason": "x"}
        ).status_code
        == 404
    )


def test_flow_on_each_backend(db_url: str) -> None:
    """The same page flow on SQLite and PostgreSQL (the db_url fixture gives both)."""
    site = make_site(db_url)
    try:
        code = randomized_patient(site)
        assert site.client("rev").get("/review").text.count(code) >= 1
        assert site.client("inv2").get(f"/patients/{code}").status_code == 404
    finally:
        site.app.state.engine.dispose()


def test_sae_clock_boundaries() -> None:
    import datetime as dt
    from decimal import Decimal

    from reluth.protocol.definition import load_protocol
    from reluth.safety.service import sae_clock

    protocol = load_protocol()

    aware = dt.date(2025, 3, 10)
    due = dt.datetime(2025, 3, 10, 23, 0, tzinfo=dt.UTC)  # start of the day in Paris + 24 h
    assert sae_clock(aware, due, protocol=protocol).late is False
    assert sae_clock(aware, due, protocol=protocol).hours_left == Decimal("0.0")
    assert sae_clock(aware, due + dt.timedelta(seconds=1), protocol=protocol).late is True
    assert sae_clock(
        aware, dt.datetime(2025, 3, 10, 11, tzinfo=dt.UTC), protocol=protocol
    ).hours_left == Decimal("12.0")
    assert sae_clock(aware, due - dt.timedelta(seconds=1), protocol=protocol).late is False


def test_sae_recorded_by_site_is_seen_by_pharmacovigilance_with_its_clock(site: Site) -> None:
    code = randomized_patient(site)
    inv = site.client("inv1")
    bad = inv.post(
        f"/patients/{code}/adverse-events",
        data={
            "term": "Thrombocytopenia",
            "grade": "5",
            "relatedness": "possible",
            "outcome": "recovering",
            "onset_date": "2025-03-10",
        },
    )
    assert (
        bad.status_code == 422 and "grade 5 = fatal" in bad.text and "Thrombocytopenia" in bad.text
    )
    ok = inv.post(
        f"/patients/{code}/adverse-events",
        data={
            "term": "Platelet count decreased",
            "grade": "4",
            "serious": "yes",
            "relatedness": "probable",
            "outcome": "recovering",
            "onset_date": "2025-03-10",
            "awareness_date": "2025-03-12",
        },
    )
    assert ok.status_code == 303, ok.text
    pv = site.client("pv").get("/adverse-events").text
    assert "Platelet count decreased" in pv and 'data-testid="sae-clock"' in pv
    # T0 is 2025-03-12 09:00 UTC; due 24 h after 00:00 in Paris starting the awareness day
    assert "due by 2025-03-12 23:00 UTC (2025-03-13 00:00 Europe/Paris" in pv
    assert "from the start of the awareness day" in pv
    assert "h left" in pv
    site.clock.advance(days=1)
    assert "h late" in site.client("pv").get("/adverse-events").text
    assert "Platelet count decreased" not in site.client("inv2").get("/adverse-events").text


def test_data_query_open_answer_close_with_audit(site: Site) -> None:
    inv = site.client("inv1")
    code = _register(inv)
    mon = site.client("mon1")
    raised = mon.post(
        f"/patients/{code}/queries",
        data={"field": "patients birth_year", "question": "Source says 1962?"},
    )
    assert raised.status_code == 303, raised.text
    listing = inv.get("/queries").text
    qid = int(re.search(r"/queries/(\d+)/answer", listing).group(1))  # type: ignore[union-attr]
    assert "Source says 1962?" in listing
    assert (
        site.client("inv2").post(f"/queries/{qid}/answer", data={"answer": "x"}).status_code == 404
    )
    assert mon.post(f"/queries/{qid}/answer", data={"answer": "x"}).status_code == 403
    assert inv.post(f"/queries/{qid}/answer", data={"answer": "Checked: 1961"}).status_code == 303
    assert inv.post(f"/queries/{qid}/close").status_code == 403
    assert mon.post(f"/queries/{qid}/close").status_code == 303
    assert mon.post(f"/queries/{qid}/close").status_code == 409
    page = site.client("dm").get("/queries").text
    assert 'data-testid="query-status">closed<' in page and "Checked: 1961" in page
    audit = inv.get(f"/patients/{code}/audit").text
    assert "data_queries" in audit and f"answer to data query {qid}" in audit
    from sqlalchemy import select

    from reluth.db.audit import AuditLog

    with site.db() as db:
        reasons = set(
            db.scalars(select(AuditLog.reason).where(AuditLog.table_name == "data_queries"))
        )
    assert f"answer to data query {qid}" in reasons and f"data query {qid} closed" in reasons
