"""Recording laboratory results (graded with the CTCAE v5.0 engine) and adverse events from
JSON files (the CLI path; the web eCRF has its own per-result service in safety/service.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from reluth.db import validate as v
from reluth.errors import ValidationError
from reluth.patients.service import get_patient
from reluth.protocol.definition import Protocol, load_protocol
from reluth.safety import ctcae
from reluth.safety.models import AdverseEvent, LabResult
from reluth.units import canonical_unit, to_canonical

RELATEDNESS = ("not_related", "unlikely", "possible", "probable", "definite")
OUTCOMES = (
    "recovered",
    "recovering",
    "not_recovered",
    "recovered_with_sequelae",
    "fatal",
    "unknown",
)


def record_labs(
    session: Session,
    data: Any,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> list[LabResult]:
    """``{"patient_id", "date", "results": [{test, value, unit, uln?, lln?}]}``; each result is
    converted to its canonical unit and graded by CTCAE v5.0."""
    today = today or dt.date.today()
    body = v.obj(data, "labs")
    patient = get_patient(session, str(body.get("patient_id")))
    sample_date = v.date(body, "date", "labs", today)
    assert sample_date is not None
    parsed = ctcae.parse_results({"results": v.items(body.get("results"), "results")})
    version = (protocol or load_protocol()).label
    rows = []
    for i, result in enumerate(parsed):
        graded = ctcae.grade(result)
        canonical = to_canonical(result.test, result.value, result.unit, f"results[{i}].unit")
        uln = None
        if result.uln is not None:
            uln = to_canonical(result.test, result.uln.value, result.uln.unit, f"results[{i}].uln")
        row = LabResult(
            patient_id=patient.id,
            sample_date=result.date or sample_date,
            analyte=result.test,
            value=result.value,
            unit=result.unit,
            value_canonical=canonical,
            canonical_unit=canonical_unit(result.test),
            uln=uln,
            ctcae_grade=graded.grade,
            protocol_version=version,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def record_adverse_event(
    session: Session,
    data: Any,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> AdverseEvent:
    """``{"patient_id", "term", "grade" 1-5, "serious", "relatedness", "outcome",
    "onset_date", "resolution_date"?, "awareness_date"?, "description"?}``."""
    today = today or dt.date.today()
    ae = v.obj(data, "adverse_event")
    w = "adverse_event"
    patient = get_patient(session, str(ae.get("patient_id")))
    grade = v.integer(ae, "grade", w, 1, 5)
    outcome = v.choice(ae, "outcome", w, OUTCOMES)
    onset = v.date(ae, "onset_date", w, today)
    resolved = v.date(ae, "resolution_date", w, today, optional=True)
    assert onset is not None
    if resolved is not None and resolved < onset:
        raise ValidationError(f"{w}.resolution_date", f"{resolved} is before onset {onset}")
    if (grade == 5) != (outcome == "fatal"):
        raise ValidationError(f"{w}.outcome", f"{outcome} with grade {grade}", "grade 5 = fatal")
    row = AdverseEvent(
        patient_id=patient.id,
        term=v.text(ae, "term", w),
        grade=grade,
        serious=v.boolean(ae, "serious", w),
        relatedness=v.choice(ae, "relatedness", w, RELATEDNESS),
        outcome=outcome,
        onset_date=onset,
        resolution_date=resolved,
        awareness_date=v.date(ae, "awareness_date", w, today, optional=True),
        description=v.text(ae, "description", w, optional=True),
        protocol_version=(protocol or load_protocol()).label,
    )
    session.add(row)
    session.flush()
    return row
