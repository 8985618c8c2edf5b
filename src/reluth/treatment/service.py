"""Recording visits against the protocol schedule (window status computed at entry), correcting
a recorded visit's date (with a reason), and the schedule of one patient with each visit's
window status."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.db import edits
from reluth.db.session import require_reason
from reluth.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from reluth.patients.models import Patient
from reluth.patients.service import get_patient
from reluth.protocol.definition import Protocol, load_protocol
from reluth.protocol.schedule import PlannedVisit, VisitStatus, classify, planned_visits
from reluth.randomization.models import Randomization
from reluth.treatment.models import Visit


def treatment_visit_codes(protocol: Protocol | None = None) -> frozenset[str]:
    """Codes of treatment-cycle visits in any arm (C3, C4): whether one is planned for a patient
    reveals the arm, so only people who may see treatment may see or record them."""
    proto = protocol or load_protocol()
    return frozenset(
        v.code
        for arm in proto.arm_codes
        for v in planned_visits(dt.date(2000, 1, 1), arm, proto)
        if v.kind == "treatment"
    )


def _schedule(
    session: Session, patient: Patient, proto: Protocol
) -> tuple[dt.date, dict[str, PlannedVisit]]:
    rand = session.scalars(
        select(Randomization).where(Randomization.patient_id == patient.id)
    ).first()
    if rand is None:
        raise PreconditionFailed(
            f"patient {patient.patient_code} is not randomized: no visit schedule"
        )
    randomized_on = rand.randomized_at.date()
    return randomized_on, {v.code: v for v in planned_visits(randomized_on, rand.arm, proto)}


def _checked_date(
    visit_date: dt.date, randomized_on: dt.date, today: dt.date, field: str = "visit_date"
) -> dt.date:
    if visit_date > today:
        raise ValidationError(field, f"date {visit_date} is in the future", f"<= {today}")
    if visit_date < randomized_on:
        raise ValidationError(field, f"{visit_date} is before randomization", "a later date")
    return visit_date


def _planned(planned: dict[str, PlannedVisit], visit_code: str) -> PlannedVisit:
    if visit_code not in planned:
        raise ValidationError("visit_code", f"{visit_code!r} is not planned", ", ".join(planned))
    return planned[visit_code]


def _recorded(session: Session, patient_id: int, visit_code: str) -> Visit | None:
    return session.scalars(
        select(Visit).where(Visit.patient_id == patient_id, Visit.visit_code == visit_code)
    ).first()


def record_visit(
    session: Session,
    patient_code: str,
    visit_code: str,
    visit_date: dt.date,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> tuple[Visit, VisitStatus]:
    """A visit of the post-randomization schedule; returns it with its window status."""
    proto = protocol or load_protocol()
    today = today or dt.date.today()
    if visit_date > today:
        raise ValidationError("visit_date", f"date {visit_date} is in the future", f"<= {today}")
    patient = get_patient(session, patient_code)
    randomized_on, planned = _schedule(session, patient, proto)
    visit = _planned(planned, visit_code)
    _checked_date(visit_date, randomized_on, today)
    if _recorded(session, patient.id, visit_code):
        raise Conflict(f"visit {visit_code} of {patient_code} is already recorded")
    row = Visit(
        patient_id=patient.id,
        visit_code=visit_code,
        visit_date=visit_date,
        protocol_version=proto.label,
    )
    session.add(row)
    session.flush()
    return row, classify(visit, visit_date, today)


#: What a correction of a recorded visit may change (the visit code stays).
VISIT_EDITABLE = ("visit_date",)


def edit_visit(
    session: Session,
    patient_code: str,
    visit_code: str,
    changes: dict[str, Any],
    today: dt.date,
    protocol: Protocol | None = None,
) -> tuple[Visit, VisitStatus]:
    """Correct the date of a recorded visit, checked as at entry (not future, not before
    randomization); returns the new window status. Needs a reason in the unit of work."""
    require_reason(session, "a recorded visit")
    edits.only(changes, VISIT_EDITABLE)
    proto = protocol or load_protocol()
    patient = get_patient(session, patient_code)
    randomized_on, planned = _schedule(session, patient, proto)
    visit = _planned(planned, visit_code)
    row = _recorded(session, patient.id, visit_code)
    if row is None:
        raise NotFound(f"visit {visit_code} of {patient_code} is not recorded")
    day = edits.as_date(changes.get("visit_date", row.visit_date), "visit_date")
    edits.apply(row, {"visit_date": _checked_date(day, randomized_on, today)}, "visit")
    session.flush()
    return row, classify(visit, row.visit_date, today)


def visit_schedule(
    session: Session, patient: Patient, as_of: dt.date, protocol: Protocol | None = None
) -> list[VisitStatus]:
    """Every planned visit of a randomized patient with its actual date and window status
    (in window / early / late when done; missed / due / upcoming when not); empty before
    randomization. Callers decide who may see treatment-cycle visits."""
    proto = protocol or load_protocol()
    try:
        _randomized_on, planned = _schedule(session, patient, proto)
    except PreconditionFailed:
        return []
    done = {
        v.visit_code: v.visit_date
        for v in session.scalars(select(Visit).where(Visit.patient_id == patient.id))
    }
    return [classify(v, done.get(v.code), as_of) for v in planned.values()]


def visit_status(
    session: Session,
    patient_code: str,
    visit_code: str,
    as_of: dt.date,
    protocol: Protocol | None = None,
) -> VisitStatus:
    """One planned visit of a patient with its actual date (if recorded) and window status."""
    proto = protocol or load_protocol()
    patient = get_patient(session, patient_code)
    _randomized_on, planned = _schedule(session, patient, proto)
    visit = _planned(planned, visit_code)
    row = _recorded(session, patient.id, visit_code)
    return classify(visit, None if row is None else row.visit_date, as_of)
