"""Every route × every role: the expected allow/deny, written out literally, and a guard that
no route escapes the matrix. Cross-centre access by ID guessing is in the domain-page tests."""

from __future__ import annotations

from typing import Any

import pytest
from web_support import ROLE_USER, USERS, Site, app_routes, is_json_api

from reluth.auth.roles import Role

ALL = frozenset(Role)
SITE_READERS = frozenset(
    {
        Role.INVESTIGATOR,
        Role.RESEARCH_NURSE,
        Role.MONITOR,
        Role.DATA_MANAGER,
        Role.PHARMACOVIGILANCE,
        Role.STATISTICIAN,
    }
)
ADMIN = frozenset({Role.ADMIN})
CODER = frozenset({Role.CODER})
PATIENT_READERS = SITE_READERS | {Role.MEDICAL_PHYSICIST}
SITE_WRITERS = frozenset({Role.INVESTIGATOR, Role.RESEARCH_NURSE})
INVESTIGATOR = frozenset({Role.INVESTIGATOR})
AUDITORS = SITE_READERS
P = "/patients/{code}"
REVIEWER = frozenset({Role.CENTRAL_REVIEWER})
QUERY_RAISERS = frozenset({Role.MONITOR, Role.DATA_MANAGER, Role.PHARMACOVIGILANCE})
QUERY_READERS = QUERY_RAISERS | SITE_WRITERS
VISIT_READERS = frozenset(
    {Role.INVESTIGATOR, Role.RESEARCH_NURSE, Role.MONITOR, Role.DATA_MANAGER, Role.STATISTICIAN}
)
PHARMACOVIGILANCE = frozenset({Role.PHARMACOVIGILANCE})
QOL_READERS = SITE_READERS - {Role.PHARMACOVIGILANCE}
A = "/api/v1"
AP = A + P

# (method, path, roles allowed, json or form body). Allowed → 2xx/3xx or 422 on a bad body;
# denied → 403. Unauthenticated → 401 (API) or redirect to login (pages), for every route.
MATRIX: list[tuple[str, str, frozenset[Role], dict[str, Any] | None]] = [
    ("GET", "/dashboard", SITE_READERS, None),
    ("GET", "/account/tokens", ALL, None),
    ("GET", "/api/v1/docs", ALL, None),
    ("GET", "/api/v1/docs/assets/{name}", ALL, None),
    ("POST", "/account/tokens", ALL, {"name": "t"}),
    ("GET", "/account/password", ALL, None),
    ("POST", "/account/password", ALL, {"current_password": "", "new_password": ""}),
    ("GET", "/admin/users", ADMIN, None),
    ("POST", "/admin/users", ADMIN, {"username": "", "role": "admin", "password": "x"}),
    ("POST", "/admin/users/{username}/{action}", ADMIN, {"reason": "r"}),
    ("GET", "/admin/access-review", ADMIN, None),
    ("GET", "/patients", PATIENT_READERS, None),
    ("POST", "/patients", SITE_WRITERS, {"centre": "C01"}),
    ("GET", P, PATIENT_READERS, None),
    ("GET", P + "/screening", SITE_WRITERS, None),
    ("POST", P + "/screening/check", SITE_WRITERS, {"patient_json": "{}"}),
    ("POST", P + "/screening", SITE_WRITERS, {"patient_json": "[]"}),
    ("POST", P + "/inclusion", SITE_WRITERS, {"consent_date": "2025-01-01"}),
    ("POST", P + "/cycles", SITE_WRITERS, {"cycle": "9"}),
    ("POST", P + "/pre-randomization", SITE_WRITERS, {"overall_response": "XX"}),
    ("GET", P + "/randomize", INVESTIGATOR, None),
    ("POST", P + "/randomize", INVESTIGATOR, {"request_id": "r1"}),
    ("POST", P + "/labs/grade", SITE_WRITERS, {"test": "alt", "value": "10", "unit": "U/L"}),
    ("POST", P + "/labs", SITE_WRITERS, {"test": "alt", "value": "x", "unit": "U/L"}),
    ("GET", P + "/qol", SITE_WRITERS, None),
    ("POST", P + "/qol/scores", SITE_WRITERS, {"instrument": "QLQ-C30", "item_1": "2"}),
    ("POST", P + "/qol", SITE_WRITERS, {"instrument": "QLQ-C30", "item_1": "9"}),
    ("GET", P + "/audit", AUDITORS, None),
    ("GET", "/adverse-events", SITE_READERS | CODER, None),
    ("GET", "/queries", QUERY_READERS, None),
    ("POST", P + "/queries", QUERY_RAISERS, {"field": "", "question": "?"}),
    ("POST", "/queries/{query_id}/answer", SITE_WRITERS, {"answer": ""}),
    ("POST", "/queries/{query_id}/close", QUERY_RAISERS, {}),
    ("POST", P + "/adverse-events", SITE_WRITERS, {"term": "Nausea", "grade": "9"}),
    # corrections of saved data (a reason in the body) and visits; cycle 3 is arm-revealing
    ("GET", P + "/labs/{lab_id}/edit", SITE_WRITERS, None),
    ("POST", P + "/labs/{lab_id}/grade", SITE_WRITERS, {"value": "1"}),
    ("POST", P + "/labs/{lab_id}/edit", SITE_WRITERS, {"value": "1", "reason": "r"}),
    ("GET", P + "/adverse-events/{ae_id}/edit", SITE_WRITERS, None),
    ("POST", P + "/adverse-events/{ae_id}/edit", SITE_WRITERS, {"grade": "9", "reason": "r"}),
    ("GET", P + "/cycles/{cycle}/edit", SITE_WRITERS, None),
    ("POST", P + "/cycles/{cycle}/edit", SITE_WRITERS, {"lot": "", "reason": "r"}),
    ("GET", P + "/visits/{visit_code}", VISIT_READERS, None),
    ("POST", P + "/visits", SITE_WRITERS, {"visit_code": "TA-W08", "visit_date": "x"}),
    ("GET", P + "/visits/{visit_code}/edit", SITE_WRITERS, None),
    ("POST", P + "/visits/{visit_code}/edit", SITE_WRITERS, {"visit_date": "x", "reason": "r"}),
    ("POST", "/adverse-events/{ae_id}/receipt", PHARMACOVIGILANCE, {}),
    ("POST", "/api/v1/adverse-events/{ae_id}/receipt", PHARMACOVIGILANCE, {}),
    ("GET", "/review", REVIEWER, None),
    ("GET", "/review/{code}", REVIEWER, None),
    ("POST", "/review/{code}/evaluate", REVIEWER, {"assessment_date": "x"}),
    ("POST", "/review/{code}", REVIEWER, {"timepoint": "baseline"}),
    ("GET", "/api/v1/patients", PATIENT_READERS, None),
    ("POST", "/api/v1/patients", SITE_WRITERS, {"centre": "C01"}),
    ("GET", "/api/v1/patients/{code}", PATIENT_READERS, None),
    ("POST", "/api/v1/patients/{code}/screening", SITE_WRITERS, {"age": "x"}),
    ("POST", "/api/v1/patients/{code}/randomize", INVESTIGATOR, {"request_id": "r1"}),
    (
        "POST",
        "/api/v1/patients/{code}/labs",
        SITE_WRITERS,
        {"test": "alt", "value": "x", "unit": "U/L", "date": "2025-01-01"},
    ),
    ("PUT", "/api/v1/patients/{code}/labs/{lab_id}", SITE_WRITERS, {"value": "1", "reason": "r"}),
    (
        "PUT",
        "/api/v1/patients/{code}/adverse-events/{ae_id}",
        SITE_WRITERS,
        {"grade": 3, "reason": "r"},
    ),
    ("PUT", "/api/v1/patients/{code}/cycles/{cycle}", SITE_WRITERS, {"lot": "x", "reason": "r"}),
    (
        "POST",
        "/api/v1/patients/{code}/visits",
        SITE_WRITERS,
        {"visit_code": "TA-W08", "visit_date": "2025-01-01"},
    ),
    (
        "PUT",
        "/api/v1/patients/{code}/visits/{visit_code}",
        SITE_WRITERS,
        {"visit_date": "2025-01-01", "reason": "r"},
    ),
    ("POST", AP + "/inclusion", SITE_WRITERS, {"consent_date": "2025-01-01"}),
    ("POST", AP + "/cycles", SITE_WRITERS, {"cycle": 9}),
    ("POST", AP + "/pre-randomization", SITE_WRITERS, {"overall_response": "XX"}),
    ("GET", AP + "/audit", AUDITORS, None),
    ("GET", A + "/adverse-events", SITE_READERS | CODER, None),
    ("POST", AP + "/adverse-events", SITE_WRITERS, {"term": "Nausea", "grade": 9}),
    ("GET", A + "/queries", QUERY_READERS, None),
    ("POST", AP + "/queries", QUERY_RAISERS, {"field": "", "question": "?"}),
    ("POST", A + "/queries/{query_id}/answer", SITE_WRITERS, {"answer": "a"}),
    ("POST", A + "/queries/{query_id}/close", QUERY_RAISERS, None),
    ("GET", AP + "/qol", QOL_READERS, None),
    ("POST", AP + "/qol", SITE_WRITERS, {"instrument": "QLQ-C30", "items": {"1": 9}}),
    ("POST", A + "/qol/score", SITE_WRITERS, {"instrument": "QLQ-C30", "items": {"1": 2}}),
    ("GET", A + "/review", REVIEWER, None),
    ("GET", A + "/review/{code}", REVIEWER, None),
    ("POST", A + "/review/{code}/evaluate", REVIEWER, {"assessment_date": "x"}),
    ("POST", A + "/review/{code}", REVIEWER, {"timepoint": "baseline"}),
    ("GET", "/api/v1/me", ALL, None),
    ("GET", "/api/v1/dashboard", SITE_READERS, None),
    ("GET", "/api/v1/tokens", ALL, None),
    ("POST", "/api/v1/tokens", ALL, {"name": "t"}),
    ("GET", "/api/v1/users", ADMIN, None),
    ("POST", "/api/v1/users", ADMIN, {"username": "u", "role": "x", "password": "x" * 12}),
    ("POST", "/api/v1/users/{username}/{action}", ADMIN, {"reason": "r"}),
    ("GET", "/api/v1/users/review", ADMIN, None),
]
STATISTICIAN = frozenset({Role.STATISTICIAN})
PHYSICIST = frozenset({Role.MEDICAL_PHYSICIST})
DOSIMETRY_READERS = (SITE_READERS - {Role.PHARMACOVIGILANCE}) | PHYSICIST
# Exports (statistician, arm-revealing) and dosimetry (physicist writes; site roles read theirs).
MATRIX += [
    ("GET", "/exports", STATISTICIAN, None),
    ("GET", "/exports/datasets", STATISTICIAN, None),
    ("GET", "/exports/randomization-report", STATISTICIAN, None),
    ("GET", P + "/dosimetry", DOSIMETRY_READERS, None),
    ("POST", P + "/dosimetry", PHYSICIST, {"cycle": "1", "records": "[]"}),
    ("POST", P + "/dosimetry/from-store", PHYSICIST, {"cycle": "1"}),
    ("GET", P + "/dosimetry/jobs/{job}", PHYSICIST, None),
    ("GET", "/api/v1/exports/datasets", STATISTICIAN, None),
    ("GET", "/api/v1/exports/randomization-report", STATISTICIAN, None),
    ("GET", "/api/v1/patients/{code}/dosimetry", DOSIMETRY_READERS, None),
    (
        "POST",
        "/api/v1/patients/{code}/dosimetry",
        PHYSICIST,
        {"cycle": 1, "case_id": "c", "records": []},
    ),
]
LOCAL_ASSESSORS = SITE_WRITERS  # write local assessment
QOL_WRITERS = SITE_WRITERS
# Corrections of the inclusion, the pre-randomization assessment, QoL answers (site writers) and
# central reads (the blinded reviewer only), pages and API, with a reason.
MATRIX += [
    ("GET", P + "/inclusion/edit", SITE_WRITERS, None),
    ("POST", P + "/inclusion/edit", SITE_WRITERS, {"consent_date": "x", "reason": "r"}),
    ("GET", P + "/pre-randomization/edit", LOCAL_ASSESSORS, None),
    (
        "POST",
        P + "/pre-randomization/edit",
        LOCAL_ASSESSORS,
        {"overall_response": "XX", "reason": "r"},
    ),
    ("GET", P + "/qol/{qol_id}/edit", QOL_WRITERS, None),
    ("POST", P + "/qol/{qol_id}/edit", QOL_WRITERS, {"item_1": "9", "reason": "r"}),
    ("GET", "/review/{code}/reads/{read_id}/edit", REVIEWER, None),
    # the generic correction routes of the form registry (here: a lab result)
    ("GET", "/forms/{form_id}/{record}/edit", SITE_WRITERS, None),
    ("POST", "/forms/{form_id}/{record}/edit", SITE_WRITERS, {"value": "1", "reason": "r"}),
    ("POST", "/forms/{form_id}/{record}/preview", SITE_WRITERS, {"value": "1"}),
    ("PUT", A + "/forms/{form_id}/{record_id}", SITE_WRITERS, {"value": "1", "reason": "r"}),
    ("GET", A + "/forms", ALL, None),
    ("GET", "/status", VISIT_READERS, None),
    ("GET", "/forms/{form_id}/{record}", VISIT_READERS, None),
    ("POST", "/forms/{form_id}/{record}/missing", SITE_WRITERS, {"item": "uln", "code": "ND"}),
    ("POST", "/queries/{query_id}/reopen", QUERY_RAISERS, {"reason": "r"}),
    ("POST", A + "/queries/{query_id}/reopen", QUERY_RAISERS, {"reason": "r"}),
    ("POST", AP + "/missing", SITE_WRITERS, {"form": "qol", "code": "XX", "reason": "r"}),
    ("GET", A + "/status", VISIT_READERS, None),
    ("POST", "/review/{code}/reads/{read_id}/edit", REVIEWER, {"diameter_T1": "x", "reason": "r"}),
    ("PUT", AP + "/inclusion", SITE_WRITERS, {"inclusion_date": "2025-01-01", "reason": "r"}),
    ("PUT", AP + "/pre-randomization", LOCAL_ASSESSORS, {"overall_response": "SD", "reason": "r"}),
    ("PUT", AP + "/qol/{qol_id}", QOL_WRITERS, {"items": {"1": 2}, "reason": "r"}),
    ("PUT", A + "/review/{code}/reads/{read_id}", REVIEWER, {"new_lesions": "no", "reason": "r"}),
]
# SAE reports (site writers), the sponsor's assessment and SUSAR submission (pharmacovigilance),
# the SAE page and the CIOMS-like PDF (whoever reads adverse events).
SAE = "/adverse-events/{ae_id}"
SAE_REPORT = {"narrative": "n", "action_taken": "unknown", "outcome": "fatal"}
MATRIX += [
    ("GET", SAE, SITE_READERS | CODER, None),
    ("POST", SAE + "/reports", SITE_WRITERS, SAE_REPORT),
    ("POST", SAE + "/reports/{sequence}/assessment", PHARMACOVIGILANCE, {"causality": "x"}),
    ("POST", SAE + "/reports/{sequence}/submission", PHARMACOVIGILANCE, {"reference": "r"}),
    ("GET", SAE + "/reports/{sequence}/cioms.pdf", SITE_READERS | CODER, None),
    ("GET", A + SAE + "/reports", SITE_READERS | CODER, None),
    ("POST", A + SAE + "/reports", SITE_WRITERS, SAE_REPORT),
    (
        "POST",
        A + SAE + "/reports/{sequence}/assessment",
        PHARMACOVIGILANCE,
        {"causality": "related", "expectedness": "expected"},
    ),
    ("POST", A + SAE + "/reports/{sequence}/submission", PHARMACOVIGILANCE, {"reference": "r"}),
    ("GET", A + SAE + "/reports/{sequence}/cioms.pdf", SITE_READERS | CODER, None),
    # CTCAE v5.0 term search (any login), the coder's worklist and recoding
    ("GET", "/ctcae/terms", ALL, None),
    ("GET", A + "/ctcae/terms", ALL, None),
    ("GET", "/coding", CODER, None),
    ("POST", "/coding/{ae_id}", CODER, {"llt_code": "10028813", "reason": "r"}),
    ("PUT", A + SAE + "/coding", CODER, {"llt_code": "10028813", "reason": "r"}),
]
# The data lifecycle: the data manager locks (bodies without a reason: 422, nothing changes);
# the site, the monitor, the data manager and the statistician see the locks.
LOCKER = frozenset({Role.DATA_MANAGER})
LOCK_READERS = VISIT_READERS
NO_REASON: dict[str, Any] = {"reason": ""}
MATRIX += [
    ("GET", P + "/lifecycle", LOCK_READERS, None),
    ("POST", P + "/lock", LOCKER, NO_REASON),
    ("POST", P + "/unlock", LOCKER, NO_REASON),
    ("GET", "/lifecycle", LOCK_READERS, None),
    ("POST", "/lifecycle/{scope}/{action}", LOCKER, NO_REASON),
    ("POST", AP + "/lock", LOCKER, NO_REASON),
    ("POST", AP + "/unlock", LOCKER, NO_REASON),
    ("POST", A + "/forms/{table}/{record_id}/lock", LOCKER, NO_REASON),
    ("POST", A + "/forms/{table}/{record_id}/unlock", LOCKER, NO_REASON),
    ("POST", A + "/centres/{centre}/lock", LOCKER, NO_REASON),
    ("POST", A + "/centres/{centre}/unlock", LOCKER, NO_REASON),
    ("POST", A + "/study/lock", LOCKER, NO_REASON),
    ("POST", A + "/study/unlock", LOCKER, NO_REASON),
    ("POST", A + "/study/freeze", LOCKER, NO_REASON),
    ("POST", A + "/study/unfreeze", LOCKER, NO_REASON),
    ("GET", A + "/locks", LOCK_READERS, None),
]
# E-signatures: investigators sign (the service then requires the centre's principal
# investigator); administrators designate principal investigators.
SIGNERS = INVESTIGATOR
SIGNATURE_READERS = VISIT_READERS
MATRIX += [
    ("POST", P + "/signatures", SIGNERS, {"scope": "nonsense", "password": "x"}),
    ("POST", AP + "/signatures", SIGNERS, {"scope": "nonsense", "password": "x"}),
    ("GET", AP + "/signatures", SIGNATURE_READERS, None),
    ("GET", A + "/principal-investigators", SIGNATURE_READERS, None),
    ("POST", A + "/principal-investigators", ADMIN, {"username": "", "centre": "C01"}),
    ("POST", A + "/principal-investigators/withdraw", ADMIN, {"username": "", "centre": "C01"}),
]
# Source-data verification: monitors verify; the site, the data manager and the statistician
# read the state and the report.
SDV_WRITERS = frozenset({Role.MONITOR})
SDV_READERS = VISIT_READERS
MATRIX += [
    ("POST", P + "/sdv", SDV_WRITERS, {"table": "nonsense", "record_id": "1"}),
    ("POST", AP + "/sdv", SDV_WRITERS, {"table": "nonsense", "record_id": 1}),
    ("GET", AP + "/sdv", SDV_READERS, None),
    ("GET", "/sdv", SDV_READERS, None),
    ("GET", A + "/sdv/report", SDV_READERS, None),
]
# The casebook PDF (whoever reads the patient; sections as the policy allows).
MATRIX += [
    ("GET", P + "/casebook.pdf", PATIENT_READERS, None),
    ("GET", AP + "/casebook.pdf", PATIENT_READERS, None),
    ("GET", A + "/exports/odm", PATIENT_READERS, None),  # CDISC ODM, as the policy allows
]
# The clinical forms: pages (entry needs the form's write permission) and API (POST: write;
# GET: the listing's read permission).
DEVIATION_WRITERS = SITE_WRITERS | {Role.MONITOR, Role.DATA_MANAGER}
DEVIATION_READERS = DEVIATION_WRITERS | STATISTICIAN
LAB_READERS = SITE_READERS - {Role.PHARMACOVIGILANCE}
FORM_PAGES = {
    "conmed": SITE_WRITERS,
    "medical_history": SITE_WRITERS,
    "deviation": DEVIATION_WRITERS,
    "pregnancy_test": SITE_WRITERS,
    "withdrawal": SITE_WRITERS,
    "death": SITE_WRITERS,
    "end_of_study": SITE_WRITERS,
    "childbearing": SITE_WRITERS,
}
for _form, _writers in FORM_PAGES.items():
    MATRIX += [
        ("GET", f"{P}/forms/{_form}", _writers, None),
        ("POST", f"{P}/forms/{_form}", _writers, {"start_date": "x"}),
    ]
for _path_part, _writers, _readers in (
    ("conmeds", SITE_WRITERS, SITE_READERS),
    ("medical-history", SITE_WRITERS, SITE_READERS),
    ("deviations", DEVIATION_WRITERS, DEVIATION_READERS),
    ("pregnancy-tests", SITE_WRITERS, LAB_READERS),
    ("childbearing", SITE_WRITERS, PATIENT_READERS),
):
    MATRIX += [
        ("GET", f"{AP}/{_path_part}", _readers, None),
        ("POST", f"{AP}/{_path_part}", _writers, {"start_date": "x"}),
    ]
MATRIX += [
    ("POST", AP + "/withdrawals", SITE_WRITERS, {"kind": "x"}),
    ("POST", AP + "/death", SITE_WRITERS, {"cause": "x"}),
    ("POST", AP + "/end-of-study", SITE_WRITERS, {"reason": "x"}),
    ("GET", AP + "/disposition", PATIENT_READERS, None),
]
# The site investigator's local tumour assessment (the blinded central reviewer: none).
LOCAL_READERS = frozenset(
    {Role.INVESTIGATOR, Role.RESEARCH_NURSE, Role.MONITOR, Role.DATA_MANAGER, Role.STATISTICIAN}
)
MATRIX += [
    ("GET", P + "/local-assessment", LOCAL_READERS, None),
    ("POST", P + "/local-assessment", SITE_WRITERS, {"timepoint": "baseline"}),
    ("POST", P + "/local-assessment/evaluate", SITE_WRITERS, {"assessment_date": "x"}),
    ("GET", AP + "/local-assessments", LOCAL_READERS, None),
    ("POST", AP + "/local-assessments", SITE_WRITERS, {"timepoint": "baseline"}),
    # the blank annotated CRF: no patient data, any trial staff
    ("GET", "/forms/blank-crf.pdf", SITE_READERS, None),
    ("GET", A + "/forms/blank-crf.pdf", SITE_READERS, None),
]
# Routes outside the matrix on purpose: public, or with their own tests.
UNGUARDED = {
    "/login",
    "/language",  # the header's language switch, also on the login page (tests/web/test_web_i18n.py)
    "/logout",
    "/",
    "/account/tokens/{token_id}/revoke",
    "/api/v1/tokens/{token_id}",
}


def _path(template: str, code: str) -> str:
    """A route with its ids filled in (records that do not exist: allowed roles get 404/409/422,
    never 403; cycle 3 and the C3 visit would reveal the arm; an account change of an unknown
    account changes nothing)."""
    return template.format(
        username="ghost",
        name="swagger-ui.css",
        action="unlock",
        code=code,
        job="no-such-job",
        lab_id=1,
        query_id=999999,
        ae_id=1,
        cycle=3,
        visit_code="TA-W08",
        qol_id=1,
        read_id=1,
        form_id="lab",
        record=1,
        record_id=1,
        sequence=0,
        scope="centre",
        table="lab_results",
        centre="C01",
    )


def _call(client: Any, method: str, path: str, body: dict[str, Any] | None) -> int:
    if method == "GET":
        return int(client.get(path).status_code)
    if path.startswith("/api/"):
        return int(client.request(method, path, json=body).status_code)
    return int(client.request(method, path, data=body).status_code)


@pytest.fixture(scope="module")
def patients(shared_site: Site) -> dict[str, str]:
    """One registered patient at C01 and one at C02 (through the service, audited)."""
    from reluth.patients import service

    out = {}
    for centre, user in (("C01", "inv1"), ("C02", "inv2")):
        with shared_site.as_user(user) as ctx:
            out[centre] = service.register_patient(ctx, centre).patient_code
    return out


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_matrix(shared_site: Site, patients: dict[str, str], role: Role) -> None:
    client = shared_site.client(ROLE_USER[role])
    failures = []
    for method, template, allowed, body in MATRIX:
        path = _path(template, patients["C01"])
        status = _call(client, method, path, body)
        ok = status != 403 and status < 500 if role in allowed else status == 403
        if not ok:
            failures.append(
                f"{method} {path}: {status} (expected {'allow' if role in allowed else 403})"
            )
    assert not failures, failures


@pytest.mark.parametrize("username", ["inv1", "nurse1", "mon1"])
def test_cross_centre_id_guessing_on_every_patient_route(
    shared_site: Site, patients: dict[str, str], username: str
) -> None:
    """Site roles of C01 get 403/404 on every route of a C02 patient, and 404 (not 403) where
    the role could act on its own centre's patients, so the ID's existence does not leak."""
    client = shared_site.client(username)
    role = USERS[username][0]
    for method, template, allowed, body in MATRIX:
        if "{code}" not in template or template.startswith(("/review", "/api/v1/review")):
            continue
        status = _call(client, method, _path(template, patients["C02"]), body)
        assert status == (404 if role in allowed else 403), (method, template, status)
    for guess in ("C02-0001", "C02-0002", "C01-9999"):
        assert client.get(f"/patients/{guess}").status_code == 404


def test_anonymous_is_sent_to_login_everywhere(shared_site: Site, patients: dict[str, str]) -> None:
    client = shared_site.client()
    for method, template, _allowed, body in MATRIX:
        path = _path(template, patients["C01"])
        status = _call(client, method, path, body)
        assert status == (401 if is_json_api(path) else 303), (method, path, status)


def test_every_route_is_in_the_matrix(shared_site: Site) -> None:
    """Every route of the app (pages and API, every method) is in the matrix or listed as
    deliberately unguarded."""
    covered = {(m, path) for m, path, _a, _b in MATRIX}
    missing = {
        (m, path) for m, path in app_routes(shared_site.app) if path not in UNGUARDED
    } - covered
    assert missing == set()


#: Bodies no route accepts: the wrong JSON shape, and a form with every field missing.
MALFORMED: tuple[Any, ...] = ([1, 2], "not an object", {"?": None})


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_a_denied_role_is_refused_before_its_body_is_read(
    shared_site: Site, patients: dict[str, str], role: Role
) -> None:
    """The policy answers first: a role that may not use a route gets 403 whatever its body
    (a 422 would tell it the route's rules and, for a blinded role, that the route exists for
    others); an allowed role gets 422 or its answer, never 403 for the shape of its body."""
    client = shared_site.client(ROLE_USER[role])
    failures = []
    for method, template, allowed, body in MATRIX:
        if method == "GET" or body is None:
            continue
        path = _path(template, patients["C01"])
        for bad in MALFORMED:
            if path.startswith("/api/"):
                status = int(client.request(method, path, json=bad).status_code)
            else:
                status = int(client.request(method, path, content=str(bad)).status_code)
            if role not in allowed and status != 403:
                failures.append(f"{method} {path} {bad!r}: {status} (expected 403)")
            elif role in allowed and (status == 403 or status >= 500):
                failures.append(f"{method} {path} {bad!r}: {status} (allowed)")
    assert not failures, "\n".join(failures)
