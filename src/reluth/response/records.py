"""Recording tumour assessments and their lesion measurements (RECIST 1.1 shapes)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from reluth.db import validate as v
from reluth.errors import ValidationError
from reluth.patients.service import get_patient
from reluth.protocol.definition import Protocol, load_protocol
from reluth.response.models import LesionMeasurement, TumourAssessment

KINDS = ("target", "non_target", "new")
RESPONSES = ("CR", "PR", "SD", "PD", "NE", "NON_CR_NON_PD")
NON_TARGET_STATES = ("present", "absent", "unequivocal_progression")


def record_assessment(
    session: Session,
    data: Any,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> TumourAssessment:
    """``{"patient_id", "assessment_date", "timepoint", "reader": local|central, "modality":
    CT|MRI, "overall_response"?, "lesions": [{lesion_id, kind, organ, lymph_node?,
    diameter_mm?, status?}]}``. Targets need a diameter (at most 5, at most 2 per organ)."""
    today = today or dt.date.today()
    w = "assessment"
    body = v.obj(data, w)
    patient = get_patient(session, str(body.get("patient_id")))
    lesions = []
    seen: set[str] = set()
    per_organ: dict[str, int] = {}
    for i, raw in enumerate(v.items(body.get("lesions"), f"{w}.lesions")):
        lw = f"{w}.lesions[{i}]"
        lesion = v.obj(raw, lw)
        lid = v.text(lesion, "lesion_id", lw)
        assert lid is not None
        if lid in seen:
            raise ValidationError(f"{lw}.lesion_id", f"duplicate lesion {lid!r}")
        seen.add(lid)
        kind = v.choice(lesion, "kind", lw, KINDS)
        organ = v.text(lesion, "organ", lw)
        assert organ is not None
        diameter = v.decimal(lesion, "diameter_mm", lw, Decimal(0), Decimal(500), optional=True)
        status = None
        if kind == "target":
            if diameter is None:
                raise ValidationError(f"{lw}.diameter_mm", "a target lesion needs a diameter")
            per_organ[organ] = per_organ.get(organ, 0) + 1
        elif lesion.get("status") is not None:
            status = v.choice(lesion, "status", lw, NON_TARGET_STATES)
        lymph = lesion.get("lymph_node", False)
        if not isinstance(lymph, bool):
            raise ValidationError(f"{lw}.lymph_node", f"{lymph!r}", "true or false")
        lesions.append(
            LesionMeasurement(
                lesion_id=lid,
                kind=kind,
                organ=organ,
                lymph_node=lymph,
                diameter_mm=diameter,
                status=status,
            )
        )
    targets = [x for x in lesions if x.kind == "target"]
    if len(targets) > 5 or any(n > 2 for n in per_organ.values()):
        raise ValidationError(f"{w}.lesions", "too many targets", "<= 5 in all, <= 2 per organ")
    response = body.get("overall_response")
    if response is not None:
        response = v.choice(body, "overall_response", w, RESPONSES)
    assessment_date = v.date(body, "assessment_date", w, today)
    assert assessment_date is not None
    row = TumourAssessment(
        patient_id=patient.id,
        assessment_date=assessment_date,
        timepoint=v.text(body, "timepoint", w),
        reader=v.choice(body, "reader", w, ("local", "central")),
        modality=v.choice(body, "modality", w, ("CT", "MRI")),
        overall_response=response,
        target_sum_mm=sum((x.diameter_mm or Decimal(0) for x in targets), Decimal(0)),
        protocol_version=(protocol or load_protocol()).label,
    )
    row.lesions = lesions
    session.add(row)
    session.flush()
    return row
