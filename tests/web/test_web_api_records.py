"""The JSON API for what the pages record besides screening, randomization and labs: inclusion,
cycles, pre-randomization assessment, adverse events with the SAE clock, data queries, QoL and
the audit history. Per route: an allowed role gets the expected content, a denied role 403,
another centre's user 404, and bad input 422 naming the field."""

from __future__ import annotations

from typing import Any

from web_support import Site, included_via_api, randomized_via_api, setup_randomization


def _register(site: Site, username: str = "inv1", centre: str = "C01") -> str:
    r = site.client(username).post("/api/v1/patients", json={"centre": centre})
    assert r.status_code == 201, r.text
    return str(r.json()["patient_id"])


def _fields(response: Any) -> set[str]:
    """The fields a 422 names: pydantic's problems, or the service's one field."""
    body = response.json()
    assert response.status_code == 422, body
    return {p["field"] for p in body.get("problems", [])} | {body.get("field")} - {None}


def test_inclusion_cycles_and_pre_randomization(site: Site) -> None:
    from web_support import eligible_file

    inv, nurse = site.client("inv1"), site.client("nurse1")
    code = _register(site)
    p = f"/api/v1/patients/{code}"
    unscreened = inv.post(f"{p}/inclusion", json={"consent_date": "2024-10-28"})
    assert unscreened.status_code == 409 and "not been screened" in unscreened.json()["error"]
    assert inv.post(f"{p}/screening", json=eligible_file(code, site.clock().date())).json()[
        "status"
    ] == ("eligible")
    assert _fields(inv.post(f"{p}/inclusion", json={})) == {"consent_date"}
    future = inv.post(f"{p}/inclusion", json={"consent_date": "2030-01-01"})
    assert _fields(future) == {"consent_date"}
    included = inv.post(
        f"{p}/inclusion", json={"consent_date": "2024-10-28", "inclusion_date": "2025-03-04"}
    )
    assert included.status_code == 201, included.text
    assert included.json() == {
        "patient_id": code,
        "consent_date": "2024-10-28",
        "inclusion_date": "2025-03-04",
    }
    assert inv.post(f"{p}/inclusion", json={"consent_date": "2024-10-28"}).status_code == 409
    status = {"childbearing_potential": False, "reason": "postmenopausal"}  # the example woman
    assert (
        inv.post(f"{p}/childbearing", json=status | {"assessed_on": "2025-03-04"}).status_code
        == 201
    )

    cycle = {"cycle": 1, "administered_on": "2025-03-05", "activity_gbq": "7.4", "lot": "L1"}
    assert _fields(inv.post(f"{p}/cycles", json=cycle | {"cycle": 9})) == {"cycle"}
    assert _fields(inv.post(f"{p}/cycles", json=cycle | {"activity_gbq": 11})) == {"activity_gbq"}
    assert _fields(inv.post(f"{p}/cycles", json=cycle | {"lot": "  "})) == {"lot"}
    early = inv.post(f"{p}/cycles", json=cycle | {"cycle": 3})
    assert early.status_code == 409 and "experimental arm" in early.json()["error"]
    first = inv.post(f"{p}/cycles", json=cycle)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "patient_id": code,
        "cycle": 1,
        "administered_on": "2025-03-05",
        "activity_gbq": 7.4,
        "lot": "L1",
    }
    second = nurse.post(f"{p}/cycles", json=cycle | {"cycle": 2, "administered_on": "2025-03-06"})
    assert second.status_code == 201, second.text
    assert inv.post(f"{p}/cycles", json=cycle).status_code == 409  # cycle 1 already recorded

    pre = {"assessment_date": "2025-03-10", "overall_response": "SD"}
    assert _fields(inv.post(f"{p}/pre-randomization", json=pre | {"overall_response": "XX"})) == {
        "overall_response"
    }
    contradiction = pre | {"overall_response": "PD", "radiological_progression": False}
    assert _fields(inv.post(f"{p}/pre-randomization", json=contradiction)) == {"overall_response"}
    saved = inv.post(f"{p}/pre-randomization", json=pre)
    assert saved.status_code == 201, saved.text
    assert saved.json()["radiological_progression"] is False  # derived from SD, as on the page

    timeline = inv.get(p).json()
    assert [c["cycle"] for c in timeline["cycles"]] == [1, 2]
    assert timeline["inclusion_date"] == "2025-03-04"
    assert timeline["pre_randomization"]["response"] == "SD"

    # denied roles 403; another centre's investigator 404 (as for an unknown id)
    mon, inv2 = site.client("mon1"), site.client("inv2")
    for step, body in (
        ("inclusion", {"consent_date": "2024-10-28"}),
        ("cycles", cycle),
        ("pre-randomization", pre),
    ):
        assert mon.post(f"{p}/{step}", json=body).status_code == 403, step
        assert site.client("rev").post(f"{p}/{step}", json=body).status_code == 403, step
        assert inv2.post(f"{p}/{step}", json=body).status_code == 404, step
        assert inv2.post(f"{p}/{step}", json={}).status_code == 404, step  # before the body


SAE = {
    "term": "Platelet count decreased",
    "grade": 4,
    "serious": True,
    "relatedness": "probable",
    "outcome": "recovering",
    "onset_date": "2025-03-10",
    "awareness_date": "2025-03-11",
}


def test_adverse_events_with_the_sae_clock(site: Site) -> None:
    code = included_via_api(site)
    registered_only = _register(site)
    refused = site.client("inv1").post(
        f"/api/v1/patients/{registered_only}/adverse-events", json=SAE
    )
    assert refused.status_code == 409 and "not included" in refused.json()["error"]
    inv = site.client("inv1")
    path = f"/api/v1/patients/{code}/adverse-events"
    assert _fields(inv.post(path, json=SAE | {"grade": 9})) == {"grade"}
    assert _fields(inv.post(path, json=SAE | {"relatedness": "maybe"})) == {"relatedness"}
    fatal = inv.post(path, json=SAE | {"grade": 5})
    assert _fields(fatal) == {"adverse_event.outcome"} and "grade 5 = fatal" in fatal.text
    created = inv.post(path, json=SAE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["patient_id"] == code and body["serious"] is True
    # T0 is 2025-03-12 09:00 UTC: with no awareness time, due 24 h after the beginning of the
    # awareness day at the site (00:00 in Paris = 23:00 UTC the day before, in March)
    assert body["sae_clock"] == {
        "awareness_date": "2025-03-11",
        "awareness_time": None,
        "due_by": "2025-03-11T23:00:00Z",
        "hours_left": -10.0,
        "overdue": True,
        "received_at": None,
        "received_by": None,
    }
    # with the time the site became aware (Paris wall clock), the clock is exact
    timed = inv.post(path, json=SAE | {"term": "Anemia", "awareness_time": "14:30"})
    assert timed.status_code == 201, timed.text
    assert timed.json()["sae_clock"]["due_by"] == "2025-03-12T13:30:00Z"
    assert timed.json()["sae_clock"]["awareness_time"] == "14:30:00"
    assert _fields(inv.post(path, json=SAE | {"awareness_time": "25:00"})) == {
        "adverse_event.awareness_time"
    }
    mild = SAE | {"term": "Nausea", "grade": 1, "serious": False, "awareness_date": None}
    assert site.client("nurse1").post(path, json=mild).json()["sae_clock"] is None

    listing = site.client("pv").get("/api/v1/adverse-events").json()
    # serious first, the soonest due first
    assert [r["term"] for r in listing] == ["Platelet count decreased", "Anemia", "Nausea"]
    site.clock.advance(days=1)
    late = site.client("pv").get("/api/v1/adverse-events").json()[1]["sae_clock"]
    assert late["overdue"] is True and late["hours_left"] == -19.5

    assert site.client("inv2").get("/api/v1/adverse-events").json() == []
    assert site.client("inv2").post(path, json=SAE).status_code == 404
    assert site.client("mon1").post(path, json=SAE).status_code == 403
    assert site.client("pv").post(path, json=SAE).status_code == 403
    assert site.client("rev").get("/api/v1/adverse-events").status_code == 403


def test_data_queries_raise_answer_close(site: Site) -> None:
    code = _register(site)
    mon, inv = site.client("mon1"), site.client("inv1")
    raise_path = f"/api/v1/patients/{code}/queries"
    assert _fields(mon.post(raise_path, json={"field": "patients sex", "question": "   "})) == {
        "question"
    }
    raised = mon.post(raise_path, json={"field": "patients sex", "question": "Source says F?"})
    assert raised.status_code == 201, raised.text
    query = raised.json()
    assert query["status"] == "open" and query["opened_by"] == "mon1"
    assert query["can_close"] is True and query["can_answer"] is False
    qid = query["id"]
    listing = inv.get("/api/v1/queries").json()
    assert [(q["id"], q["patient_id"], q["can_answer"]) for q in listing] == [(qid, code, True)]

    answer = f"/api/v1/queries/{qid}/answer"
    close = f"/api/v1/queries/{qid}/close"
    assert site.client("inv2").post(answer, json={"answer": "x"}).status_code == 404
    assert site.client("inv2").post(answer, json={"answer": ""}).status_code == 404  # not 422
    assert site.client("inv2").get("/api/v1/queries").json() == []
    assert mon.post(answer, json={"answer": "x"}).status_code == 403
    assert _fields(inv.post(answer, json={"answer": ""})) == {"answer"}
    answered = inv.post(answer, json={"answer": "Checked: female"})
    assert answered.status_code == 200 and answered.json()["status"] == "answered"
    assert answered.json()["answer"] == "Checked: female"
    assert inv.post(close).status_code == 403
    closed = mon.post(close)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert closed.json()["can_close"] is False
    assert mon.post(close).status_code == 409
    assert inv.post(answer, json={"answer": "late"}).status_code == 409
    assert site.client("stat").get("/api/v1/queries").status_code == 403

    reasons = {r["reason"] for r in inv.get(f"/api/v1/patients/{code}/audit").json()}
    assert {f"answer to data query {qid}", f"data query {qid} closed"} <= reasons

    other = _register(site, "inv2", "C02")
    assert mon.post(f"/api/v1/patients/{other}/queries", json=query).status_code == 404


# PF items 1-5 all 1 -> 100; QL items 29, 30 = 7 -> 100; PA items 9 = 2, 19 = 3 -> 50
ANSWERS = {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "29": 7, "30": 7, "9": 2, "19": 3}


def test_qol_score_preview_save_and_list(site: Site) -> None:
    code = included_via_api(site)
    nurse, inv = site.client("nurse1"), site.client("inv1")
    live = nurse.post("/api/v1/qol/score", json={"instrument": "QLQ-C30", "items": ANSWERS})
    assert live.status_code == 200, live.text
    scores = live.json()
    assert scores["scales"]["PF"] == 100 and scores["scales"]["QL"] == 100
    assert scores["scales"]["PA"] == 50 and scores["scales"]["RF"] is None
    assert scores["summary"] is None and scores["answered"]["PF"] == 5
    out_of_range = nurse.post(
        "/api/v1/qol/score", json={"instrument": "QLQ-C30", "items": {"3": 5}}
    )
    assert _fields(out_of_range) == {"items.3"} and "out of range" in out_of_range.text
    assert _fields(
        nurse.post("/api/v1/qol/score", json={"instrument": "QLQ-C30", "items": {"1": 9}})
    ) == {"items.1"}
    assert _fields(nurse.post("/api/v1/qol/score", json={"instrument": "SF-36", "items": {}})) == {
        "instrument"
    }
    module = nurse.post("/api/v1/qol/score", json={"instrument": "QLQ-GINET21", "items": {"1": 1}})
    assert _fields(module) == {"items.1"}  # item 1 belongs to QLQ-C30
    assert site.client("mon1").post("/api/v1/qol/score", json=live.json()).status_code == 403

    path = f"/api/v1/patients/{code}/qol"
    questionnaire = {
        "instrument": "QLQ-C30",
        "timepoint": "QOL-W00",
        "completed_on": "2025-03-10",
        "items": ANSWERS,
    }
    saved = inv.post(path, json=questionnaire)
    assert saved.status_code == 201, saved.text
    assert saved.json()["scales"]["PF"] == 100 and saved.json()["scales"]["PA"] == 50
    assert inv.post(path, json=questionnaire).status_code == 409
    rows = site.client("stat").get(path).json()
    assert [(r["instrument"], r["timepoint"], r["scales"]["QL"]) for r in rows] == [
        ("QLQ-C30", "QOL-W00", 100)
    ]
    assert site.client("pv").get(path).status_code == 403  # pharmacovigilance: no QoL
    assert site.client("mon1").post(path, json=questionnaire).status_code == 403
    assert site.client("inv2").get(path).status_code == 404
    assert site.client("inv2").post(path, json=questionnaire).status_code == 404


def test_audit_history_of_a_patient(site: Site) -> None:
    setup_randomization(site.app)
    code = randomized_via_api(site)
    inv = site.client("inv1")
    lab = inv.post(
        f"/api/v1/patients/{code}/labs",
        json={"test": "alt", "value": "150", "unit": "U/L", "uln": "40", "date": "2025-03-11"},
    ).json()
    fixed = inv.put(
        f"/api/v1/patients/{code}/labs/{lab['id']}",
        json={"value": "45", "reason": "transcription error"},
    )
    assert fixed.status_code == 200, fixed.text
    rows = site.client("mon1").get(f"/api/v1/patients/{code}/audit").json()
    tables = {r["table_name"] for r in rows}
    assert {"patients", "screenings", "inclusions", "administrations", "randomizations"} <= tables
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    change = next(r for r in rows if r["reason"] == "transcription error")
    assert change["action"] == "update" and change["username"] == "inv1"
    assert "150" in (change["old_value"] or "") and "45" in (change["new_value"] or "")
    assert site.client("inv2").get(f"/api/v1/patients/{code}/audit").status_code == 404
    for username in ("rev", "admin", "phys"):
        assert site.client(username).get(f"/api/v1/patients/{code}/audit").status_code == 403


INJECTIONS = ["<script>alert('x')</script>", "'; DROP TABLE data_queries; --", "{{ 7*7 }}"]


def test_text_entered_through_the_api_is_stored_verbatim_and_shown_escaped(site: Site) -> None:
    from markupsafe import escape

    code = included_via_api(site)
    mon, inv = site.client("mon1"), site.client("inv1")
    for payload in INJECTIONS:
        raised = mon.post(
            f"/api/v1/patients/{code}/queries", json={"field": "patients sex", "question": payload}
        )
        assert raised.status_code == 201, raised.text
        event = SAE | {"term": payload, "serious": False, "awareness_date": None}
        assert inv.post(f"/api/v1/patients/{code}/adverse-events", json=event).status_code == 201
    assert {q["question"] for q in inv.get("/api/v1/queries").json()} == set(INJECTIONS)
    assert {a["term"] for a in inv.get("/api/v1/adverse-events").json()} == set(INJECTIONS)
    for page in (inv.get("/queries").text, inv.get("/adverse-events").text):
        assert str(escape(INJECTIONS[0])) in page and "<script>alert" not in page
        assert "{{ 7*7 }}" in page and ">49<" not in page  # not evaluated
