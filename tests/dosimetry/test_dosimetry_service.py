"""The dosimetry service: storing a computed case's records for one administered cycle of a
patient (each refusal, both sides), the audit rows, replacement with a reason, and the
per-patient read with cumulative kidney BED against the limits. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from tests.store.storekit import ready_patients

from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.core.context import reading, writing
from reluth.core.trial import Trial
from reluth.db import audit
from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.dosimetry import service
from reluth.dosimetry.bed import bed_gy
from reluth.dosimetry.case_dir import load_case
from reluth.dosimetry.models import DoseResult
from reluth.dosimetry.pipeline import compute_case, dose_records
from reluth.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from reluth.protocol.definition import load_protocol

PHYSICIST = Actor("phys1", Role.MEDICAL_PHYSICIST)
NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
TRIAL = Trial(load_protocol()).at(NOW)
EXAMPLE_CASE = Path(__file__).resolve().parents[2] / "examples" / "dosimetry" / "phantom-case"


def _records(kidney_gy: float = 2.5, teff_h: float = 50.0, marrow_gy: float = 0.3) -> list[Any]:
    return [
        {"region": "kidneys", "quantity": "absorbed_dose", "value": kidney_gy, "sd": 0.2,
         "unit": "Gy", "method": "S-value"},
        {"region": "kidneys", "quantity": "effective_half_life", "value": teff_h, "unit": "h",
         "method": "AICc fit"},
        {"region": "kidneys", "quantity": "voxel_mean_dose", "value": 9.9, "unit": "Gy",
         "method": "voxel kernel"},
        {"region": "tumour1", "kind": "tumour", "quantity": "absorbed_dose", "value": 20.0,
         "unit": "Gy", "method": "sphere model"},
        {"region": "red_marrow", "kind": "marrow", "quantity": "absorbed_dose",
         "value": marrow_gy, "unit": "Gy", "method": "blood-based"},
    ]  # fmt: skip


@pytest.fixture
def patient(engine: Engine) -> Iterator[str]:
    """A patient with cycles 1 and 2 administered (cycle 3 not)."""
    yield ready_patients(engine, 1)[0]


def _store(engine: Engine, code: str, cycle: int, records: list[Any], **kw: Any) -> int:
    reason = kw.pop("reason", None)
    with writing(engine, PHYSICIST, TRIAL, reason=reason) as ctx:
        rows = service.store_cycle(ctx, code, cycle, records, case_id="CASE-1", **kw)
        return len(rows)


def _count(engine: Engine) -> int:
    with read_session(engine) as s:
        return len(list(s.scalars(select(DoseResult))))


def test_store_writes_rows_linked_to_the_administration_and_audits_them(
    engine: Engine, patient: str
) -> None:
    before = _audit_rows(engine)
    assert _store(engine, patient, 2, _records()) == 5
    with read_session(engine) as s:
        rows = list(s.scalars(select(DoseResult).order_by(DoseResult.id)))
        assert {r.cycle for r in rows} == {2}
        assert {r.case_id for r in rows} == {"CASE-1"}
        assert rows[0].administration_id is not None and rows[0].protocol_version
        inserted = list(
            s.scalars(
                select(AuditLog).where(AuditLog.table_name == "dose_results", AuditLog.seq > before)
            )
        )
    assert len(inserted) == 5
    assert {r.action for r in inserted} == {"insert"}
    assert {r.username for r in inserted} == {"phys1"}
    assert json.loads(inserted[0].new_value or "{}")["quantity"] == "absorbed_dose"
    with engine.connect() as conn:
        assert audit.verify(conn).ok


def _audit_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return audit.count(conn)


def test_unknown_patient_is_refused(engine: Engine, patient: str) -> None:
    with pytest.raises(NotFound):
        _store(engine, "C01-0999", 1, _records())
    assert _store(engine, patient, 1, _records()) == 5  # the known one is accepted


def test_cycle_not_administered_is_refused_and_writes_nothing(engine: Engine, patient: str) -> None:
    with pytest.raises(PreconditionFailed, match=r"cycle 3 .* not administered .*1, 2"):
        _store(engine, patient, 3, _records())
    assert _count(engine) == 0
    assert _store(engine, patient, 1, _records()) == 5


def test_second_store_of_a_cycle_is_a_conflict_unless_replaced_with_a_reason(
    engine: Engine, patient: str
) -> None:
    _store(engine, patient, 1, _records(kidney_gy=2.0))
    with pytest.raises(Conflict, match="already has 5 dose results"):
        _store(engine, patient, 1, _records(kidney_gy=3.0))
    with pytest.raises(ValidationError, match="reason"):
        _store(engine, patient, 1, _records(kidney_gy=3.0), replace=True)
    assert _store(engine, patient, 1, _records(kidney_gy=3.0), replace=True, reason="re-fit") == 5
    with read_session(engine) as s:
        kidney = s.scalars(
            select(DoseResult).where(
                DoseResult.region == "kidneys", DoseResult.quantity == "absorbed_dose"
            )
        ).one()
        deleted = list(
            s.scalars(
                select(AuditLog).where(
                    AuditLog.table_name == "dose_results", AuditLog.action == "delete"
                )
            )
        )
    assert kidney.value == 3.0
    assert len(deleted) == 5 and {d.reason for d in deleted} == {"re-fit"}
    assert any(json.loads(d.old_value or "{}").get("value") == 2.0 for d in deleted)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": "dose"}, "records[0].quantity"),
        ({"unit": "mGy"}, "records[0].unit"),
        ({"value": float("nan")}, "records[0].value"),
        ({"value": "abc"}, "records[0].value"),
        ({"value": -1}, "records[0].value"),
        ({"region": ""}, "records[0].region"),
        ({"kind": "bone"}, "records[0].kind"),
        ({"method": "x" * 65}, "records[0].method"),
    ],
)
def test_invalid_records_are_refused_by_name(
    engine: Engine, patient: str, change: dict[str, Any], field: str
) -> None:
    records = _records()
    records[0] = {**records[0], **change}
    with pytest.raises(ValidationError) as err:
        _store(engine, patient, 1, records)
    assert err.value.field == field
    assert _count(engine) == 0


def test_duplicate_records_within_one_cycle_are_refused(engine: Engine, patient: str) -> None:
    records = _records()
    with pytest.raises(ValidationError, match="given twice"):
        _store(engine, patient, 1, [*records, records[0]])
    with pytest.raises(ValidationError, match="at least one"):
        _store(engine, patient, 1, [])


def test_patient_read_gives_cycles_and_cumulative_kidney_bed_against_the_limits(
    engine: Engine, patient: str
) -> None:
    _store(engine, patient, 1, _records(kidney_gy=2.0, teff_h=40.0, marrow_gy=0.5))
    _store(engine, patient, 2, _records(kidney_gy=3.0, teff_h=60.0, marrow_gy=1.6))
    with reading(engine, PHYSICIST, TRIAL) as ctx:
        d = service.patient_dosimetry(ctx, patient)
    assert d.administered_cycles == [1, 2]
    assert [c.cycle for c in d.cycles] == [1, 2]
    assert [r.kind for r in d.cycles[0].rows][:2] == ["organ", "organ"]
    assert d.cumulative is not None
    kidneys = d.cumulative.organs["kidneys"]
    assert kidneys.cumulative_absorbed_dose_gy == pytest.approx(5.0)  # S-value, not voxel
    assert kidneys.cumulative_bed_gy == pytest.approx(bed_gy(2.0, 40.0) + bed_gy(3.0, 60.0))
    assert "tumour1" not in d.cumulative.organs
    marrow = {(c.organ, c.quantity): c for c in d.limits}[("red_marrow", "absorbed_dose_gy")]
    assert marrow.value_gy == pytest.approx(2.1) and marrow.reached  # 2 Gy limit
    bed40 = [c for c in d.limits if c.quantity == "bed_gy" and c.applies_to == "no_risk_factors"]
    assert bed40[0].limit_gy == 40 and not bed40[0].reached


def test_records_of_a_computed_case_store_as_they_are(engine: Engine, patient: str) -> None:
    """The pipeline's records of the shipped phantom case, and the same read from the
    results.json document, are accepted by the service."""
    result = compute_case(load_case(EXAMPLE_CASE))
    records = dose_records(result)
    assert {r.kind for r in records} >= {"organ", "tumour", "marrow"}
    assert _store(engine, patient, 1, list(records)) == len(records)
    doc = json.loads(json.dumps(result.summary, default=float))
    again = service.records_from_document(doc)
    assert [r.value for r in again] == [r.value for r in records]
    with pytest.raises(ValidationError, match="records"):
        service.records_from_document({"not": "a case"})
