"""Recording tumour assessments and their lesion measurements (RECIST 1.1 shapes)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import validate as v
from reluth.i18n import N_
from reluth.i18n.reasons import invalid, too_long
from reluth.patients import service as patients
from reluth.response.models import LesionMeasurement, TumourAssessment

KINDS = ("target", "non_target", "new")
RESPONSES = ("CR", "PR", "SD", "PD", "NE", "NON_CR_NON_PD")
NON_TARGET_STATES = ("present", "absent", "unequivocal_progression")


@service(Action.WRITE, Resource.LOCAL_ASSESSMENT)
def record_assessment(ctx: Ctx, data: Any) -> TumourAssessment:
    """A site's (local) tumour assessment: ``{"patient_id", "assessment_date", "timepoint",
    "reader": "local", "modality": CT|MRI, "overall_response"?, "lesions": [{lesion_id, kind,
    organ, lymph_node?, diameter_mm?, status?}]}``. Targets need a diameter (at most 5, at most
    2 per organ). Central reads are the blinded reviewer's, through central review only."""
    session, today = ctx.session, ctx.today()
    w = "assessment"
    body = v.obj(data, w)
    if body.get("reader", "local") != "local":
        raise invalid(
            f"{w}.reader",
            "central_read_here",
            N_(
                "central reads are entered through central review, which stores the RECIST "
                "engine's evaluation with each read"
            ),
            N_("local (central: the review page, POST {path})"),
            path="/api/v1/review/{code}",
        )
    patient = patients.get_patient(ctx, str(body.get("patient_id")))
    lesions = []
    seen: set[str] = set()
    per_organ: dict[str, int] = {}
    for i, raw in enumerate(v.items(body.get("lesions"), f"{w}.lesions")):
        lw = f"{w}.lesions[{i}]"
        lesion = v.obj(raw, lw)
        lid = v.text(lesion, "lesion_id", lw)
        assert lid is not None
        if lid in seen:
            raise invalid(
                f"{lw}.lesion_id", "duplicate_lesion", N_("duplicate lesion {id}"), id=repr(lid)
            )
        seen.add(lid)
        kind = v.choice(lesion, "kind", lw, KINDS)
        organ = v.text(lesion, "organ", lw)
        assert organ is not None
        diameter = v.decimal(lesion, "diameter_mm", lw, Decimal(0), Decimal(500), optional=True)
        status = None
        if kind == "target":
            if diameter is None:
                raise invalid(
                    f"{lw}.diameter_mm", "required", N_("a target lesion needs a diameter")
                )
            per_organ[organ] = per_organ.get(organ, 0) + 1
        elif lesion.get("status") is not None:
            status = v.choice(lesion, "status", lw, NON_TARGET_STATES)
        lymph = lesion.get("lymph_node", False)
        if not isinstance(lymph, bool):
            raise invalid(
                f"{lw}.lymph_node",
                "not_a_boolean",
                N_("{value}"),
                N_("true or false"),
                value=repr(lymph),
            )
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
        raise invalid(
            f"{w}.lesions",
            "too_many_targets",
            N_("too many targets"),
            N_("<= {total} in all, <= {per_organ} per organ"),
            total=5,
            per_organ=2,
        )
    response = body.get("overall_response")
    if response is not None:
        response = v.choice(body, "overall_response", w, RESPONSES)
    assessment_date = v.date(body, "assessment_date", w, today)
    assert assessment_date is not None
    patients.check_date(ctx, patient, "tumour_assessment", assessment_date, f"{w}.assessment_date")
    timepoint = v.text(body, "timepoint", w)
    if timepoint is not None and len(timepoint) > 32:
        raise too_long(f"{w}.timepoint", len(timepoint), 32)
    row = TumourAssessment(
        patient_id=patient.id,
        assessment_date=assessment_date,
        timepoint=timepoint,
        reader="local",
        modality=v.choice(body, "modality", w, ("CT", "MRI")),
        overall_response=response,
        target_sum_mm=sum((x.diameter_mm or Decimal(0) for x in targets), Decimal(0)),
        protocol_version=ctx.protocol.label,
    )
    row.lesions = lesions
    session.add(row)
    session.flush()
    return row
