"""Property-based fuzzing of the JSON API from its OpenAPI document (Schemathesis): no generated
request, authenticated as any role, may produce a 5xx. Each generated case is sent as generated
and again with its path ids replaced by real ones (a randomized patient of C01 with a lab and a
data query), so that generated bodies reach the services, not only the 404 of an unknown id.
Example counts kept small for CI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from web_support import (
    ROLE_USER,
    Site,
    make_site,
    randomized_via_api,
    ready_patients,
    setup_randomization,
)

from reluth.auth.roles import Role

pytestmark = pytest.mark.slow  # a whole demo / every API operation fuzzed: minutes

#: Seconds a fuzzed call may take: a casebook PDF on a loaded two-core CI machine can pass
#: requests' default 10 s; this checks status codes, never speed (benchmarks/ measure that).
TIMEOUT = 120


@pytest.fixture(scope="module")
def fuzz_site(module_db_url: str) -> Iterator[Site]:
    """On SQLite, and on PostgreSQL when set up (which refuses what SQLite stores, e.g. NUL)."""
    s = make_site(module_db_url)
    yield s
    s.app.state.engine.dispose()


@pytest.fixture(scope="module")
def real_ids(fuzz_site: Site) -> dict[str, Any]:
    """Path ids of real records, made through the API."""
    setup_randomization(fuzz_site.app)
    code = randomized_via_api(fuzz_site)
    lab = fuzz_site.client("inv1").post(
        f"/api/v1/patients/{code}/labs",
        json={"test": "alt", "value": "50", "unit": "U/L", "uln": "40", "date": "2025-03-11"},
    )
    query = fuzz_site.client("mon1").post(
        f"/api/v1/patients/{code}/queries", json={"field": "patients sex", "question": "?"}
    )
    return {"code": code, "lab_id": lab.json()["id"], "query_id": query.json()["id"]}


@pytest.fixture(scope="module")
def api_schema(fuzz_site: Site) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzz_site.app)


@pytest.fixture(scope="module")
def tokens(fuzz_site: Site) -> dict[Role, str]:
    return {role: fuzz_site.token(username, "fuzz") for role, username in ROLE_USER.items()}


def _operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


NEW_OPERATIONS = {
    ("POST", "/api/v1/patients/{code}/inclusion"),
    ("POST", "/api/v1/patients/{code}/cycles"),
    ("POST", "/api/v1/patients/{code}/pre-randomization"),
    ("GET", "/api/v1/patients/{code}/audit"),
    ("GET", "/api/v1/adverse-events"),
    ("POST", "/api/v1/patients/{code}/adverse-events"),
    ("GET", "/api/v1/queries"),
    ("POST", "/api/v1/patients/{code}/queries"),
    ("POST", "/api/v1/queries/{query_id}/answer"),
    ("POST", "/api/v1/queries/{query_id}/close"),
    ("GET", "/api/v1/patients/{code}/qol"),
    ("POST", "/api/v1/patients/{code}/qol"),
    ("POST", "/api/v1/qol/score"),
    ("GET", "/api/v1/review"),
    ("GET", "/api/v1/review/{code}"),
    ("POST", "/api/v1/review/{code}/evaluate"),
    ("POST", "/api/v1/review/{code}"),
}
GENERATED_AS = (Role.ADMIN, Role.INVESTIGATOR, Role.CENTRAL_REVIEWER)
REAL_IDS_AS = (Role.INVESTIGATOR, Role.MONITOR, Role.CENTRAL_REVIEWER)


def test_no_server_error(
    api_schema: Any, tokens: dict[Role, str], real_ids: dict[str, Any]
) -> None:
    """Every operation, 10 generated cases each: as generated (three roles and anonymously),
    then with real path ids (three roles that can reach the records)."""
    operations = _operations(api_schema)
    fuzzed = {(op.method.upper(), op.path) for op in operations}
    missing = NEW_OPERATIONS - fuzzed
    assert not missing, missing
    reached: set[str] = set()  # operations whose real-id calls got past the record lookup

    for operation in operations:

        @settings(
            max_examples=10,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            for role in GENERATED_AS:
                response = case.call(
                    timeout=TIMEOUT, headers={"Authorization": f"Bearer {tokens[role]}"}
                )
                assert response.status_code < 500, (role, case.method, case.path, response.text)
            anonymous = case.call(timeout=TIMEOUT)
            assert anonymous.status_code < 500, (case.method, case.path, anonymous.text)
            if not case.path_parameters:
                return
            for name in case.path_parameters:
                if name in real_ids:
                    case.path_parameters[name] = real_ids[name]
            for role in REAL_IDS_AS:
                response = case.call(
                    timeout=TIMEOUT, headers={"Authorization": f"Bearer {tokens[role]}"}
                )
                assert response.status_code < 500, (role, case.method, case.path, response.text)
                if response.status_code != 404:
                    reached.add(f"{case.method.upper()} {case.path}")

        fuzz()

    with_real_ids = {
        f"{op.method.upper()} {op.path}"
        for op in operations
        if "{" in op.path and set(re.findall(r"\{(\w+)\}", op.path)) <= set(real_ids)
    }
    assert len(with_real_ids) >= 15 and with_real_ids - reached == set()


#: The corrections and visit routes, fuzzed again on real records (above, every generated id
#: misses and the request stops at 404 before the service sees the body).
EDIT_OPERATIONS = {
    ("PUT", "/api/v1/patients/{code}/adverse-events/{ae_id}"),
    ("PUT", "/api/v1/patients/{code}/cycles/{cycle}"),
    ("POST", "/api/v1/patients/{code}/visits"),
    ("PUT", "/api/v1/patients/{code}/visits/{visit_code}"),
    ("PUT", "/api/v1/patients/{code}/inclusion"),
    ("PUT", "/api/v1/patients/{code}/pre-randomization"),
    ("PUT", "/api/v1/patients/{code}/qol/{qol_id}"),
    ("PUT", "/api/v1/review/{code}/reads/{read_id}"),
}


def test_corrections_on_real_records_no_server_error(
    fuzz_site: Site, api_schema: Any, real_ids: dict[str, Any]
) -> None:
    """Generated bodies against an existing adverse event, cycle, recorded visit, inclusion,
    pre-randomization assessment and questionnaire of a randomized patient, as the
    investigator, and against its central reads as the central reviewer: refusals (or valid
    corrections) only, never a 5xx."""
    code = randomized_via_api(fuzz_site)  # (real_ids set the randomization up)
    inv = fuzz_site.client("inv1")
    ae = inv.post(
        f"/api/v1/patients/{code}/adverse-events",
        json={
            "term": "Nausea",
            "grade": 2,
            "relatedness": "possible",
            "outcome": "recovering",
            "onset_date": "2025-03-10",
        },
    )
    assert ae.status_code == 201, ae.text
    visit = inv.post(
        f"/api/v1/patients/{code}/visits",
        json={"visit_code": "LAB-W00", "visit_date": "2025-03-12"},
    )
    assert visit.status_code == 201, visit.text
    questionnaire = inv.post(
        f"/api/v1/patients/{code}/qol",
        json={
            "instrument": "QLQ-C30",
            "timepoint": "QOL-W00",
            "completed_on": "2025-03-11",
            "items": {str(n): 2 for n in range(1, 31)},
        },
    )
    assert questionnaire.status_code == 201, questionnaire.text
    rev = fuzz_site.client("rev")
    reads = [
        rev.post(
            f"/api/v1/review/{code}",
            json={
                "timepoint": timepoint,
                "assessment_date": day,
                "modality": "CT",
                "lesions": lesions,
            },
        )
        for timepoint, day, lesions in (
            (
                "baseline",
                "2025-03-01",
                [
                    {"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": 40},
                    {"id": "NT1", "organ": "bone", "kind": "non_target", "status": "present"},
                ],
            ),
            (
                "week8",
                "2025-03-11",
                [{"id": "T1", "diameter_mm": 30}, {"id": "NT1", "status": "present"}],
            ),
        )
    ]
    assert [r.status_code for r in reads] == [201, 201], [r.text for r in reads]
    ids = {
        "code": code,
        "ae_id": ae.json()["id"],
        "cycle": 2,
        "visit_code": "LAB-W00",
        "qol_id": questionnaire.json()["id"],
        "read_id": reads[1].json()["id"],
    }
    # tokens of their own: the fuzzing above may have revoked the fixture's (DELETE /tokens/{id})
    token = inv.post("/api/v1/tokens", json={"name": "fuzz-edits"}).json()["token"]
    rev_token = rev.post("/api/v1/tokens", json={"name": "fuzz-edits"}).json()["token"]
    operations = [
        op for op in _operations(api_schema) if (op.method.upper(), op.path) in EDIT_OPERATIONS
    ]
    assert len(operations) == len(EDIT_OPERATIONS)
    statuses: set[int] = set()
    refused_by_service: set[str] = set()  # fields named by a domain service (not the schema)
    for operation in operations:

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            case.path_parameters = {k: v for k, v in ids.items() if k in case.path_parameters}
            who = rev_token if case.path.startswith("/api/v1/review/") else token
            response = case.call(timeout=TIMEOUT, headers={"Authorization": f"Bearer {who}"})
            assert response.status_code < 500, (case.method, case.path, case.body, response.text)
            statuses.add(response.status_code)
            if response.status_code == 422 and "field" in response.json():
                refused_by_service.add(response.json()["field"])

        fuzz()
    assert refused_by_service  # generated bodies reached the services' validation


def test_openapi_document_lists_the_api(
    fuzz_site: Site, real_ids: dict[str, Any], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    doc = TestClient(fuzz_site.app).get("/api/v1/openapi.json").json()
    assert "/api/v1/me" in doc["paths"]
    # the corrections (a reason in the body) and visits are fuzzed like every listed operation
    assert doc["paths"]["/api/v1/patients/{code}/adverse-events/{ae_id}"].keys() == {"put"}
    assert doc["paths"]["/api/v1/patients/{code}/cycles/{cycle}"].keys() == {"put"}
    assert doc["paths"]["/api/v1/patients/{code}/visits"].keys() == {"post"}
    assert doc["paths"]["/api/v1/patients/{code}/visits/{visit_code}"].keys() == {"put"}
    assert doc["paths"]["/api/v1/patients/{code}/inclusion"].keys() == {"post", "put"}
    assert doc["paths"]["/api/v1/patients/{code}/qol/{qol_id}"].keys() == {"put"}
    assert doc["paths"]["/api/v1/review/{code}/reads/{read_id}"].keys() == {"put"}
    # one correction body for every form (the registry says which fields each may change)
    assert "reason" in doc["components"]["schemas"]["CorrectionIn"]["required"]
    assert doc["paths"]["/api/v1/forms/{form_id}/{record_id}"].keys() == {"put"}
    listed = {(m.upper(), path) for path, item in doc["paths"].items() for m in item}
    missing = NEW_OPERATIONS - listed
    assert not missing, missing
    # bounds reach the document; they cover the protocol's cycles, which the service checks
    # (the trial's protocol says which cycles exist: 422 naming "cycle" for any other)
    cycle = doc["components"]["schemas"]["CycleIn"]["properties"]["cycle"]
    cycles = fuzz_site.app.state.trial.protocol.all_cycles
    assert cycle["minimum"] == min(cycles) == 1 and cycle["maximum"] >= max(cycles)
    beyond = TestClient(fuzz_site.app).put(
        f"/api/v1/patients/{real_ids['code']}/cycles/{max(cycles) + 1}",
        json={"lot": "L", "reason": "r"},
        headers={"Authorization": f"Bearer {fuzz_site.token('inv1')}"},
    )
    assert beyond.status_code == 422 and beyond.json()["field"] == "cycle", beyond.text
    assert not any(p.startswith("/login") for p in doc["paths"])  # pages are not API


def test_no_server_error_on_exports_and_dosimetry(
    fuzz_site: Site, api_schema: Any, tokens: dict[Role, str]
) -> None:
    """The export and dosimetry operations, fuzzed as the roles that may use them, against a
    real patient (included, cycles 1-2 administered) as well as generated patient IDs."""
    # (numbered far from the patients the other tests register through the API)
    code = ready_patients(fuzz_site, 1, centres=("C01",), start=900)[0]
    operations = [
        op
        for op in _operations(api_schema)
        if "/exports/" in op.path or op.path.endswith("/dosimetry")
    ]
    assert len(operations) == 5  # datasets, randomization report, ODM, dosimetry GET/POST

    for operation in operations:

        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            for real in (False, True):
                if real and case.path_parameters and "code" in case.path_parameters:
                    case.path_parameters["code"] = code
                for role in (Role.STATISTICIAN, Role.MEDICAL_PHYSICIST):
                    response = case.call(
                        timeout=TIMEOUT, headers={"Authorization": f"Bearer {tokens[role]}"}
                    )
                    assert response.status_code < 500, (role, case.path, response.text)

        fuzz()
