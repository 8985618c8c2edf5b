"""The blinded central review through the JSON API (worklist, reads, live RECIST, saving), and
a walk over every API route as the central reviewer that finds no arm, treatment or cycle 3/4
information in any response."""

from __future__ import annotations

import re
from typing import Any

from web_support import Site, app_routes, is_json_api, randomized_via_api, setup_randomization

from reluth.protocol.definition import load_protocol

# PF items 1-5 all 1 -> PF 100
ANSWERS = {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1}

BASELINE = {
    "timepoint": "baseline",
    "assessment_date": "2025-03-01",
    "modality": "CT",
    "lesions": [
        {"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": 40},
        {"id": "T2", "organ": "liver", "kind": "target", "diameter_mm": "20"},
        {"id": "NT1", "organ": "peritoneum", "kind": "non_target", "status": "present"},
    ],
}
WEEK8 = {
    "timepoint": "week8",
    "assessment_date": "2025-03-11",
    "modality": "CT",
    "new_lesions": "no",
    "lesions": [
        {"id": "T1", "diameter_mm": 25},
        {"id": "T2", "diameter_mm": 15},
        {"id": "NT1", "status": "present"},
    ],
}


def test_worklist_reads_live_recist_and_save(site: Site) -> None:
    setup_randomization(site.app)
    code = randomized_via_api(site)
    rev = site.client("rev")
    worklist = rev.get("/api/v1/review").json()
    assert worklist == [{"patient_id": code, "reads": 0, "last_timepoint": None, "last_date": None}]
    page = f"/api/v1/review/{code}"
    assert rev.get(page).json() == {
        "patient_id": code,
        "baseline_pending": True,
        "baseline_lesions": [],
        "reads": [],
    }
    live = rev.post(f"{page}/evaluate", json=BASELINE)
    assert live.status_code == 200, live.text
    assert live.json() == {"baseline": True, "baseline_sum_mm": 60, "time_points": []}
    too_many = BASELINE | {
        "lesions": [
            {"id": f"T{i}", "organ": f"o{i}", "kind": "target", "diameter_mm": 20} for i in range(6)
        ]
    }
    assert rev.post(f"{page}/evaluate", json=too_many).status_code == 422  # > 5 targets
    saved = rev.post(page, json=BASELINE)
    assert saved.status_code == 201, saved.text
    assert saved.json()["target_sum_mm"] == 60 and saved.json()["overall_response"] is None

    follow = rev.post(f"{page}/evaluate", json=WEEK8)
    assert follow.status_code == 200, follow.text
    point = follow.json()["time_points"][0]
    assert point["overall"] == "PR" and point["sum_mm"] == 40  # -33.3 % from 60 mm
    assert point["change_from_baseline_pct"] == -33.33 and point["days_from_baseline"] == 10
    organ_again = WEEK8 | {"lesions": [{"id": "T1", "organ": "liver", "diameter_mm": 25}]}
    bad = rev.post(f"{page}/evaluate", json=organ_again)
    assert bad.status_code == 422 and bad.json()["field"] == "lesions[0].organ"
    bad_status = WEEK8 | {"lesions": [{"id": "NT1", "status": "gone"}]}
    assert rev.post(f"{page}/evaluate", json=bad_status).json()["problems"][0]["field"] == (
        "lesions.0.status"
    )
    unknown = WEEK8 | {"lesions": [{"id": "T9", "diameter_mm": 3}]}
    assert rev.post(f"{page}/evaluate", json=unknown).status_code == 422
    assert rev.post(page, json=WEEK8 | {"timepoint": "baseline"}).status_code == 409
    read = rev.post(page, json=WEEK8)
    assert read.status_code == 201, read.text
    assert read.json()["overall_response"] == "PR"
    assert [m["id"] for m in read.json()["lesions"]] == ["T1", "T2", "NT1"]
    reads = rev.get(page).json()
    assert reads["baseline_pending"] is False and reads["baseline_lesions"] == ["T1", "T2", "NT1"]
    assert [r["timepoint"] for r in reads["reads"]] == ["baseline", "week8"]
    assert rev.get("/api/v1/review").json()[0]["reads"] == 2

    assert rev.get("/api/v1/review/C01-9999").status_code == 404
    # the page's live evaluation goes through the same service check
    long_id = {"assessment_date": "2025-05-06", "id_0": "T" * 17, "diameter_0": "20"}
    assert "lesions[0].id: too long" in rev.post(f"/review/{code}/evaluate", data=long_id).text
    for username in ("inv1", "dm", "stat", "admin"):
        client = site.client(username)
        assert client.get("/api/v1/review").status_code == 403
        assert client.get(page).status_code == 403
        assert client.post(f"{page}/evaluate", json=WEEK8).status_code == 403
        assert client.post(page, json=WEEK8).status_code == 403


ARM_KEY_WORDS = {
    "arm",
    "arms",
    "treatment",
    "treatments",
    "cycle",
    "cycles",
    "administration",
    "administrations",
    "administered",
    "activity",
    "lot",
    "dosimetry",
    "randomization",
    "randomized",
    "allocation",
    "stratum",
}
ARM_TEXT = re.compile(
    r"\b(arms?|experimental|control|surveillance|lutathera|dotatate)\b|\bcycles?\s*[34]\b", re.I
)


def _blinding_leaks(value: Any, where: str, labels: set[str]) -> list[str]:
    """Keys naming the arm or treatment, arm codes or labels as values, text about the arm or
    cycles 3/4, anywhere in a JSON document."""
    leaks = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if ARM_KEY_WORDS & set(re.split(r"[_\W]+", str(key).lower())):
                leaks.append(f"{where}: key {key!r}")
            leaks += _blinding_leaks(inner, f"{where}.{key}", labels)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            leaks += _blinding_leaks(inner, f"{where}[{i}]", labels)
    elif isinstance(value, str) and (value in labels or ARM_TEXT.search(value)):
        leaks.append(f"{where}: {value!r}")
    return leaks


def test_no_api_response_reveals_the_arm_to_the_central_reviewer(site: Site) -> None:
    """An experimental-arm patient with cycles 3 and 4, an SAE, a query, QoL and a lab; the
    reviewer reads it centrally, then calls every API route of the app with real ids."""
    setup_randomization(site.app)
    inv = site.client("inv1")
    for _ in range(8):  # blocks of at most 8: an experimental patient comes within 8
        code = randomized_via_api(site)
        if inv.get(f"/api/v1/patients/{code}").json()["arm"] == "experimental":
            break
    else:
        raise AssertionError("no experimental patient in a block")
    p = f"/api/v1/patients/{code}"
    site.clock.advance(days=120)
    inv = site.client("inv1")  # a new session: the first one timed out
    for n, day in ((3, "2025-05-01"), (4, "2025-06-26")):
        cycle = {"cycle": n, "administered_on": day, "activity_gbq": "7.4", "lot": f"L{n}"}
        assert inv.post(f"{p}/cycles", json=cycle).status_code == 201
    lab = {"test": "alt", "value": "150", "unit": "U/L", "uln": "40", "date": "2025-05-02"}
    lab_id = inv.post(f"{p}/labs", json=lab).json()["id"]
    assert inv.post(f"{p}/adverse-events", json={**_sae()}).status_code == 201
    query = site.client("mon1").post(
        f"{p}/queries", json={"field": "patients sex", "question": "?"}
    )
    qol = {"instrument": "QLQ-C30", "timepoint": "QOL-W08", "completed_on": "2025-05-02"}
    assert inv.post(f"{p}/qol", json=qol | {"items": {"1": 2}}).status_code == 201
    rev = site.client("rev")
    assert rev.post(f"/api/v1/review/{code}", json=BASELINE).status_code == 201
    token_id = rev.post("/api/v1/tokens", json={"name": "walk"}).json()["id"]

    protocol = load_protocol()
    labels = {a.code for a in protocol.arms} | {a.label for a in protocol.arms} | {"A", "B"}
    ids = {"code": code, "query_id": query.json()["id"], "lab_id": lab_id, "token_id": token_id}
    bodies: dict[str, Any] = {
        "/api/v1/review/{code}/evaluate": WEEK8 | {"assessment_date": "2025-05-06"},
        "/api/v1/review/{code}": WEEK8,
    }
    leaks: list[str] = []
    reached: set[str] = set()
    api_routes = [(m, path) for m, path in app_routes(site.app) if is_json_api(path)]
    assert len(api_routes) >= 30
    for method, route in api_routes:
        path = re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), 1)), route)
        body = None if method == "GET" else bodies.get(route, {})
        response = rev.request(method, path, json=body)
        assert response.status_code < 500, (method, path, response.text)
        if response.status_code < 300:
            reached.add(route)
        leaks += _blinding_leaks(response.json(), f"{method} {route}", labels)
    assert not leaks, leaks
    # the detector does see the arm where it is shown: the investigator's timeline
    unblinded = _blinding_leaks(inv.get(p).json(), "timeline", labels)
    assert any("key 'arm'" in x for x in unblinded) and any("'cycles'" in x for x in unblinded)
    assert any("'experimental'" in x for x in unblinded)
    assert {
        "/api/v1/review",
        "/api/v1/review/{code}",
        "/api/v1/review/{code}/evaluate",
        "/api/v1/me",
    } <= reached
    # /forms: the forms registry, only the forms the reviewer may read (the central read)
    allowed = ("/api/v1/review", "/api/v1/me", "/api/v1/tokens", "/api/v1/forms")
    assert all(path.startswith(allowed) for path in reached), reached


def _sae() -> dict[str, Any]:
    return {
        "term": "Platelet count decreased",
        "grade": 4,
        "serious": True,
        "relatedness": "probable",
        "outcome": "recovering",
        "onset_date": "2025-05-03",
        "awareness_date": "2025-05-03",
    }


def test_api_records_on_each_backend(db_url: str) -> None:
    """The API flow on SQLite and PostgreSQL (the db_url fixture gives both)."""
    from web_support import make_site

    site = make_site(db_url)
    try:
        setup_randomization(site.app)
        code = randomized_via_api(site)
        inv = site.client("inv1")
        sae = _sae() | {"onset_date": "2025-03-10", "awareness_date": "2025-03-11"}
        assert inv.post(f"/api/v1/patients/{code}/adverse-events", json=sae).status_code == 201
        raised = site.client("mon1").post(
            f"/api/v1/patients/{code}/queries", json={"field": "patients sex", "question": "?"}
        )
        assert raised.status_code == 201
        # PostgreSQL cannot store NUL: refused at the boundary, naming the field
        nul = site.client("mon1").post(
            f"/api/v1/patients/{code}/queries", json={"field": "patients sex\x00", "question": "?"}
        )
        assert nul.status_code == 422 and nul.json()["problems"][0]["field"] == "field"
        search = inv.get("/api/v1/patients", params={"q": "C01\x00"})
        assert search.status_code == 422 and search.json()["problems"][0]["field"] == "q"
        assert [r["code"] for r in inv.get("/api/v1/patients", params={"q": "c01-0"}).json()] == [
            code
        ]
        qol = {"instrument": "QLQ-C30", "timepoint": "QOL-W00", "completed_on": "2025-03-10"}
        saved = inv.post(f"/api/v1/patients/{code}/qol", json=qol | {"items": ANSWERS})
        assert saved.json()["scales"]["PF"] == 100
        rev = site.client("rev")
        assert rev.post(f"/api/v1/review/{code}", json=BASELINE).status_code == 201
        read = rev.post(f"/api/v1/review/{code}", json=WEEK8)
        assert read.status_code == 201 and read.json()["overall_response"] == "PR"
        rows = site.client("dm").get(f"/api/v1/patients/{code}/audit").json()
        tables = {r["table_name"] for r in rows}
        assert {"adverse_events", "data_queries", "qol_questionnaires", "randomizations"} <= tables
    finally:
        site.app.state.engine.dispose()


def test_read_of_non_target_disease_only(db_url: str) -> None:
    """A follow-up of non-target disease only is NON-CR/NON-PD (13 characters): stored on both
    backends (PostgreSQL enforces the column width, migration 0007 widened it from 8)."""
    from web_support import make_site

    site = make_site(db_url)
    try:
        setup_randomization(site.app)
        code = randomized_via_api(site)
        rev = site.client("rev")
        baseline = BASELINE | {"lesions": [BASELINE["lesions"][2]]}  # NT1 only
        assert rev.post(f"/api/v1/review/{code}", json=baseline).status_code == 201
        week8 = WEEK8 | {"lesions": [{"id": "NT1", "status": "present"}]}
        read = rev.post(f"/api/v1/review/{code}", json=week8)
        assert read.status_code == 201, read.text
        assert read.json()["overall_response"] == "NON-CR/NON-PD"
    finally:
        site.app.state.engine.dispose()
