"""Laboratory results: validated and graded by the CTCAE v5.0 engine, stored in one audited
transaction (the caller's ``unit_of_work`` session).

Thin service written for the web eCRF; the store owner may extend it (adverse events, SAE
clock) — keep ``preview_lab`` pure so pages can grade a value as it is typed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.errors import NotFound, PreconditionFailed, ValidationError
from reluth.patients import service as patients
from reluth.patients.models import Inclusion
from reluth.protocol.definition import load_protocol
from reluth.safety import ctcae
from reluth.safety.models import LabResult
from reluth.units import canonical_unit, convert


def preview_lab(raw: dict[str, Any]) -> ctcae.GradedResult:
    """Parse and grade one result without storing it (pure: no I/O, no clock)."""
    return ctcae.grade(ctcae.parse_result(raw, "lab"))


def record_lab(
    session: Session,
    patient_code: str,
    raw: dict[str, Any],
    today: dt.date,
) -> LabResult:
    """Store one laboratory result with its CTCAE grade; the sample date may not be future."""
    parsed = ctcae.parse_result(raw, "lab")
    if parsed.date is None:
        raise ValidationError("lab.date", "missing", "YYYY-MM-DD")
    if parsed.date > today:
        raise ValidationError("lab.date", f"{parsed.date} is in the future", f"<= {today}")
    graded = ctcae.grade(parsed)
    patient = patients.get_patient(session, patient_code)
    if session.scalars(select(Inclusion).where(Inclusion.patient_id == patient.id)).first() is None:
        raise PreconditionFailed(f"patient {patient_code} is not included")
    unit = canonical_unit(parsed.test) if parsed.test in _CANONICAL else parsed.unit
    value_canonical = _canonical(parsed.test, parsed.value, parsed.unit, unit)
    uln = None
    if parsed.uln is not None:
        uln = _canonical(parsed.test, parsed.uln.value, parsed.uln.unit, unit)
    row = LabResult(
        patient_id=patient.id,
        sample_date=parsed.date,
        analyte=parsed.test,
        value=parsed.value,
        unit=parsed.unit,
        value_canonical=value_canonical,
        canonical_unit=unit,
        uln=uln,
        ctcae_grade=graded.grade,
        protocol_version=load_protocol().label,
    )
    session.add(row)
    session.flush()
    return row


def _canonical(test: str, value: Decimal, from_unit: str, to_unit: str) -> Decimal:
    if from_unit == to_unit:
        return value
    return convert(test, value, from_unit, to_unit, "lab.unit")


def _known(test: str) -> bool:
    try:
        canonical_unit(test)
    except Exception:
        return False
    return True


_CANONICAL = frozenset(t for t in ctcae.definitions() if _known(t))


def correct_lab_value(session: Session, patient_code: str, lab_id: int, value: str) -> LabResult:
    """Correct the value of a saved result (same test and unit) and re-grade it. The unit of
    work must carry a reason: the audit trail keeps the old value and the reason."""
    patient = patients.get_patient(session, patient_code)
    row = session.get(LabResult, lab_id)
    if row is None or row.patient_id != patient.id:
        raise NotFound(f"laboratory result {lab_id} of {patient_code} not found")
    raw: dict[str, Any] = {"test": row.analyte, "value": value, "unit": row.unit}
    if row.uln is not None:
        raw["uln"] = {"value": str(row.uln), "unit": row.canonical_unit}
    parsed = ctcae.parse_result(raw, "lab")
    graded = ctcae.grade(parsed)
    row.value = parsed.value
    row.value_canonical = _canonical(parsed.test, parsed.value, parsed.unit, row.canonical_unit)
    row.ctcae_grade = graded.grade
    session.flush()
    return row


#: Serious adverse events go to pharmacovigilance within 24 hours of the site becoming aware.
SAE_REPORTING = dt.timedelta(hours=24)


@dataclass(frozen=True)
class SaeClock:
    awareness_date: dt.date
    due_by: dt.datetime  # UTC; awareness is recorded as a date, so counted from its end
    hours_left: Decimal  # at receipt if received, else now; negative when late
    late: bool
    received_at: dt.datetime | None = None  # pharmacovigilance's receipt stops the clock


def sae_clock(
    awareness_date: dt.date, now: dt.datetime, received_at: dt.datetime | None = None
) -> SaeClock:
    """The 24-hour SAE reporting clock (pure). Awareness is a calendar date, so the clock is
    counted from the end of that day (the most lenient reading; the reference of the day is
    the site's, not recorded in hours). Once pharmacovigilance has acknowledged receipt the
    clock stops there: on time if received by the due time, late otherwise."""
    end_of_day = dt.datetime.combine(awareness_date + dt.timedelta(days=1), dt.time(), dt.UTC)
    due = end_of_day + SAE_REPORTING
    stop = now if received_at is None else received_at
    left = Decimal((due - stop).total_seconds()) / Decimal(3600)
    return SaeClock(awareness_date, due, left.quantize(Decimal("0.1")), stop > due, received_at)
