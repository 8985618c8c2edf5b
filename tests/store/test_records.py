"""Data entry services validate with the engines and refuse bad input naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from storekit import INVESTIGATOR, NURSE, STAT, TODAY, ready_patients, work

from reluth.db.session import read_session
from reluth.errors import Conflict, PreconditionFailed, ValidationError
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
    with work(engine, NURSE, today=TODAY.replace(year=2026)) as ctx:
        return fn(ctx, data)


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
        ("assessment", {"modality": "PET"}, "assessment.modality"),
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


def test_a_site_assessment_cannot_pose_as_a_central_read(engine: Engine, code: str) -> None:
    """Central reads are the blinded reviewer's: the site's assessment path refuses them."""
    with pytest.raises(ValidationError, match="central review"):
        _record(engine, record_assessment, _example("assessment", code, reader="central"))


def test_labs_of_a_patient_not_included_are_refused_on_the_file_path(engine: Engine) -> None:
    """The CLI/import path holds the same inclusion rule as the per-result service."""
    from reluth.patients import service as patients

    ready_patients(engine, 0)
    with work(engine, NURSE) as ctx:
        new = patients.register_patient(ctx, "C01").patient_code
    with pytest.raises(PreconditionFailed, match="not included"):
        _record(engine, record_labs, _example("labs", new))


def test_visits_are_checked_against_the_schedule(engine: Engine, code: str) -> None:
    import datetime as dt

    from storekit import at

    from reluth.randomization import service as rnd
    from reluth.treatment.service import record_visit

    def visit(visit_code: str, day: dt.date) -> str:
        with work(engine, NURSE, today=dt.date(2025, 12, 1)) as ctx:
            return record_visit(ctx, code, visit_code, day)[1].status

    with pytest.raises(PreconditionFailed, match="not randomized"):
        visit("TA-W08", dt.date(2025, 5, 5))
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    moment = dt.datetime(2025, 3, 10, 9, tzinfo=dt.UTC)
    with work(engine, INVESTIGATOR, trial=at(moment)) as ctx:
        rnd.randomize(ctx, code, "v")
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

    day = dt.date(2025, 2, 24)
    new, other = ready_patients(engine, 2, start=10, assessed=False)
    with work(engine, NURSE) as ctx:
        row = patients.record_pre_randomization(ctx, new, day, None, "PD")
        assert row.radiological_progression is True  # PD means progression
    missing = pytest.raises(ValidationError, match="overall_response: missing")
    with missing, work(engine, NURSE) as ctx:
        patients.record_pre_randomization(ctx, other, day, None, None)
    contradiction = pytest.raises(ValidationError, match="contradicts")
    with contradiction, work(engine, NURSE) as ctx:
        patients.record_pre_randomization(ctx, other, day, False, "PD")
