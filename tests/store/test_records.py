"""Data entry services validate with the engines and refuse bad input naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from storekit import ADMIN, INVESTIGATOR, NURSE, TODAY, ready_patients

from reluth.auth.models import User
from reluth.auth.roles import Role
from reluth.db.actors import resolve_actor
from reluth.db.session import read_session, unit_of_work
from reluth.errors import Conflict, PermissionDenied, ValidationError
from reluth.qol.service import record_questionnaire
from reluth.response.records import record_assessment
from reluth.safety.models import LabResult
from reluth.safety.records import record_adverse_event, record_labs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "store"


def _example(kind: str, code: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((EXAMPLES / f"{kind}.json").read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    data["patient_id"] = code
    data.update(changes)
    return data


@pytest.fixture
def code(engine: Engine) -> str:
    return ready_patients(engine, 1)[0]


def _record(engine: Engine, fn: Any, data: Any) -> Any:
    with unit_of_work(engine, NURSE) as uow:
        return fn(uow.session, data, today=TODAY.replace(year=2026))


def test_labs_are_converted_and_graded_by_ctcae(engine: Engine, code: str) -> None:
    _record(engine, record_labs, _example("labs", code))
    with read_session(engine) as s:
        rows = {r.analyte: r for r in s.scalars(select(LabResult))}
    assert rows["platelets"].ctcae_grade == 2  # 72 000/mm3: grade 2 is < 75 and >= 50 x10^9/L
    assert rows["platelets"].value_canonical == 72 and rows["platelets"].canonical_unit == "10^9/L"
    assert rows["hemoglobin"].ctcae_grade == 1


@pytest.mark.parametrize(
    ("kind", "changes", "field"),
    [
        ("labs", {"results": [{"test": "platelets", "value": 90, "unit": "furlongs"}]}, "unit"),
        ("labs", {"date": "2999-01-01"}, "labs.date"),
        ("ae", {"grade": 0}, "adverse_event.grade"),
        ("ae", {"grade": 5}, "adverse_event.outcome"),
        ("ae", {"relatedness": "maybe"}, "adverse_event.relatedness"),
        ("ae", {"resolution_date": "2025-04-01"}, "adverse_event.resolution_date"),
        ("ae", {"serious": "no"}, "adverse_event.serious"),
        ("assessment", {"reader": "ai"}, "assessment.reader"),
        (
            "assessment",
            {"lesions": [{"lesion_id": "T1", "kind": "target", "organ": "liver"}]},
            "diameter_mm",
        ),
        ("qol", {"items": {"1": 9}}, "items.1"),
        ("qol", {"instrument": "SF-36"}, "instrument"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    engine: Engine, code: str, kind: str, changes: dict[str, Any], field: str
) -> None:
    fn = {
        "labs": record_labs,
        "ae": record_adverse_event,
        "assessment": record_assessment,
        "qol": record_questionnaire,
    }[kind]
    with pytest.raises(ValidationError, match=field):
        _record(engine, fn, _example(kind, code, **changes))


def test_assessment_and_questionnaire_are_stored_once(engine: Engine, code: str) -> None:
    ta = _record(engine, record_assessment, _example("assessment", code))
    assert ta.target_sum_mm == 63 and len(ta.lesions) == 4
    q = _record(engine, record_questionnaire, _example("qol", code))
    assert json.loads(q.scores_json)["scales"]["QL"] == 66.67
    with pytest.raises(Conflict):
        _record(engine, record_questionnaire, _example("qol", code))


def test_cli_actor_is_a_known_user_or_the_operator_at_bootstrap(engine: Engine) -> None:
    assert resolve_actor(engine, "someone").role == Role.ADMIN  # no account yet
    with unit_of_work(engine, ADMIN) as uow:
        uow.session.add(User(username="inv1", role=Role.INVESTIGATOR, password_hash="x"))
        uow.session.add(User(username="gone", role=Role.MONITOR, password_hash="x", active=False))
    assert resolve_actor(engine, "inv1").role == Role.INVESTIGATOR
    with pytest.raises(PermissionDenied, match="unknown user"):
        resolve_actor(engine, "someone")
    with pytest.raises(PermissionDenied, match="deactivated"):
        resolve_actor(engine, "gone")


def test_visits_are_checked_against_the_schedule(engine: Engine, code: str) -> None:
    import datetime as dt

    from storekit import STAT, add_users

    from reluth.errors import PreconditionFailed
    from reluth.randomization import service as rnd
    from reluth.treatment.service import record_visit

    def visit(visit_code: str, day: dt.date) -> str:
        with unit_of_work(engine, NURSE) as uow:
            return record_visit(uow.session, code, visit_code, day)[1].status

    with pytest.raises(PreconditionFailed, match="not randomized"):
        visit("TA-W08", dt.date(2025, 5, 5))
    add_users(engine)
    with unit_of_work(engine, STAT) as uow:
        rnd.configure(uow.session, STAT, "minimization")
    with unit_of_work(engine, INVESTIGATOR) as uow:
        rnd.randomize(
            uow.session, INVESTIGATOR, code, "v", now=dt.datetime(2025, 3, 10, tzinfo=dt.UTC)
        )
    assert visit("TA-W08", dt.date(2025, 5, 5)) == "in_window"  # day 56
    assert visit("TA-W16", dt.date(2025, 8, 20)) == "late"
    with pytest.raises(ValidationError, match="visit_code"):
        visit("W99", dt.date(2025, 5, 5))
    with pytest.raises(Conflict):
        visit("TA-W08", dt.date(2025, 5, 6))


def test_pre_randomization_progression_follows_the_response_unless_given(
    engine: Engine, code: str
) -> None:
    import datetime as dt

    from reluth.patients import service as patients

    day = dt.date(2025, 3, 1)
    with unit_of_work(engine, NURSE) as uow:
        new = patients.register_patient(uow.session, "C01", today=TODAY).patient_code
        row = patients.record_pre_randomization(uow.session, new, day, None, "PD", today=TODAY)
        assert row.radiological_progression is True  # PD means progression
    missing = pytest.raises(ValidationError, match="overall_response: missing")
    with missing, unit_of_work(engine, NURSE) as uow:
        patients.record_pre_randomization(uow.session, code, day, None, None, today=TODAY)
    contradiction = pytest.raises(ValidationError, match="contradicts")
    with contradiction, unit_of_work(engine, NURSE) as uow:
        patients.record_pre_randomization(uow.session, new, day, False, "PD", today=TODAY)
