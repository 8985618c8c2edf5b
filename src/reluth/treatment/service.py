"""Recording visits against the protocol schedule (window status computed at entry)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.errors import Conflict, PreconditionFailed, ValidationError
from reluth.patients.service import get_patient
from reluth.protocol.definition import Protocol, load_protocol
from reluth.protocol.schedule import VisitStatus, classify, planned_visits
from reluth.randomization.models import Randomization
from reluth.treatment.models import Visit


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
    rand = session.scalars(
        select(Randomization).where(Randomization.patient_id == patient.id)
    ).first()
    if rand is None:
        raise PreconditionFailed(f"patient {patient_code} is not randomized: no visit schedule")
    randomized_on = rand.randomized_at.date()
    planned = {v.code: v for v in planned_visits(randomized_on, rand.arm, proto)}
    if visit_code not in planned:
        raise ValidationError("visit_code", f"{visit_code!r} is not planned", ", ".join(planned))
    if visit_date < randomized_on:
        raise ValidationError("visit_date", f"{visit_date} is before randomization", "a later date")
    if session.scalars(
        select(Visit).where(Visit.patient_id == patient.id, Visit.visit_code == visit_code)
    ).first():
        raise Conflict(f"visit {visit_code} of {patient_code} is already recorded")
    row = Visit(
        patient_id=patient.id,
        visit_code=visit_code,
        visit_date=visit_date,
        protocol_version=proto.label,
    )
    session.add(row)
    session.flush()
    return row, classify(planned[visit_code], visit_date, today)
