"""JSON API for corrections of saved data and for visits (mounted under ``/api/v1``).

Every correction is a ``PUT`` whose body carries a ``reason`` and only the fields to change
(fields left out keep their saved value; ``null`` clears an optional one). The domain service
checks what may change and the rules of entry again; the audited unit of work keeps old value,
new value, who and why. Same permission layer and centre scoping as the pages.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from reluth.auth.policy import Action
from reluth.core.context import Ctx
from reluth.patients import service as patients
from reluth.protocol.schedule import VisitStatus
from reluth.qol import service as qol
from reluth.records import views
from reluth.response import recist
from reluth.response import service as review
from reluth.safety import service as safety
from reluth.treatment import service as treatment
from reluth.values import parse_date, to_jsonable
from reluth.web.api import ApiIn, one_of
from reluth.web.deps import READ, WHO, Auth, RecordId, Visible, audited, visible

router = APIRouter(tags=["api"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Not allowed for this role or centre"},
    404: {"description": "Not found"},
    409: {"description": "Contradicts the stored state (e.g. visit already recorded)"},
    422: {"description": "Invalid input (names the field and what is accepted)"},
}

PatientCode = Annotated[str, Path(pattern=r"^C\d{2}-\d{4}$", max_length=8)]
CycleNumber = Annotated[
    int, Path(ge=1, le=99, description="cycle number (the protocol says which)")
]
VisitCode = Annotated[str, Path(pattern=r"^[A-Z0-9-]{1,16}$", description="e.g. TA-W08")]
Reason = Annotated[
    str, Field(min_length=1, max_length=500, description="why the saved data change")
]
DateText = Annotated[str, Field(max_length=10, description="YYYY-MM-DD")]


class _Edit(ApiIn):
    model_config = ConfigDict(extra="forbid")
    reason: Reason

    def changes(self) -> dict[str, Any]:
        """The fields given in the body (not the reason): only these change."""
        return {k: getattr(self, k) for k in self.model_fields_set if k != "reason"}


class AdverseEventEdit(_Edit):
    term: str | None = Field(default=None, max_length=120)
    grade: int | None = Field(default=None, description="1-5")
    serious: bool | None = None
    relatedness: str | None = Field(default=None, max_length=24)
    outcome: str | None = Field(default=None, max_length=32)
    onset_date: DateText | None = None
    resolution_date: DateText | None = None
    awareness_date: DateText | None = None
    awareness_time: str | None = Field(
        default=None, max_length=8, description="HH:MM, site wall-clock time; blank clears it"
    )
    description: str | None = Field(default=None, max_length=4000)


class CycleEdit(_Edit):
    administered_on: DateText | None = None
    activity_gbq: str | None = Field(default=None, max_length=16, description="decimal, GBq")
    lot: str | None = Field(default=None, max_length=40)


class InclusionEdit(_Edit):
    consent_date: DateText | None = None
    inclusion_date: DateText | None = None


class PreRandomizationEdit(_Edit):
    assessment_date: DateText | None = None
    overall_response: str | None = Field(
        default=None,
        pattern=one_of(patients.RESPONSES),
        description="progression follows it (PD); PD is refused once randomized",
    )
    comment: str | None = Field(default=None, max_length=patients.COMMENT_MAX)


ItemNumber = Annotated[str, Field(pattern=r"^\d{1,2}$", description="item number")]
ItemAnswer = Annotated[int, Field(ge=0, le=99)]


class QolEdit(_Edit):
    completed_on: DateText | None = None
    items: dict[ItemNumber, ItemAnswer | None] | None = Field(
        default=None,
        max_length=60,
        description="answers to change: {item: answer}; null makes the item missing",
    )

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in super().changes().items() if k != "items" or v is not None}


LesionId = Annotated[str, Field(pattern=r"^\S+$", max_length=review.LESION_ID_MAX)]


class LesionMeasurementEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    diameter_mm: Decimal | None = Field(
        default=None, ge=0, le=review.DIAMETER_MAX_MM, max_digits=4, decimal_places=1
    )
    status: str | None = Field(
        default=None, pattern=one_of(recist.LesionStatus), description="instead of a diameter"
    )


class CentralReadEdit(_Edit):
    lesions: dict[LesionId, LesionMeasurementEdit] | None = Field(
        default=None, max_length=30, description="lesion id -> its corrected measurement"
    )
    new_lesions: str | None = Field(default=None, pattern=one_of(recist.NewLesions))

    def changes(self) -> dict[str, Any]:
        out = super().changes()
        if self.lesions is not None:
            out["lesions"] = {k: m.model_dump() for k, m in self.lesions.items()}
        return out


class VisitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visit_code: str = Field(pattern=r"^[A-Z0-9-]{1,16}$", description="e.g. TA-W08")
    visit_date: DateText


class VisitEdit(_Edit):
    visit_date: DateText


class VisitOut(BaseModel):
    visit_code: str
    visit_date: str | None
    target_date: str
    window_start: str
    window_end: str
    status: str
    days_from_target: int | None


def _visit_out(status: VisitStatus) -> VisitOut:
    v = status.visit
    return VisitOut(
        visit_code=v.code,
        visit_date=None if status.actual_date is None else status.actual_date.isoformat(),
        target_date=v.target_date.isoformat(),
        window_start=v.window_start.isoformat(),
        window_end=v.window_end.isoformat(),
        status=status.status,
        days_from_target=status.days_from_target,
    )


@router.put("/patients/{code}/adverse-events/{ae_id}", responses=ERRORS)
def adverse_event_edit(
    ae_id: RecordId,
    body: AdverseEventEdit,
    request: Request,
    to: Visible = Depends(visible(safety.edit_adverse_event)),
) -> dict[str, Any]:
    """Correct a saved adverse event; the whole event is checked again (grade 5 = fatal, dates,
    awareness date of a serious event)."""
    patient = to.patient
    with audited(request, to.who, reason=body.reason) as w:
        row = safety.edit_adverse_event(w, patient.patient_code, ae_id, body.changes())
        result: dict[str, Any] = to_jsonable({"id": row.id, **safety.adverse_event_form(row)})
    return result


@router.put("/patients/{code}/cycles/{cycle}", responses=ERRORS)
def cycle_edit(
    cycle: CycleNumber,
    body: CycleEdit,
    request: Request,
    to: Visible = Depends(visible(treatment.edit_cycle)),
) -> dict[str, Any]:
    """Correct a saved Lutathera administration (date, activity, lot)."""
    patient = to.patient
    with audited(request, to.who, reason=body.reason) as w:
        row = treatment.edit_cycle(w, patient.patient_code, cycle, body.changes())
        return {"cycle": row.cycle, **treatment.cycle_edit_form(row)}


@router.post("/patients/{code}/visits", status_code=201, response_model=VisitOut, responses=ERRORS)
def visit_record(
    code: PatientCode,
    body: VisitIn,
    request: Request,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> VisitOut:
    """Record the actual date of a planned visit; answers with its window status."""
    patient, _visit = views.visible_visit(ctx, code, body.visit_code, Action.WRITE)
    day = parse_date(body.visit_date, "visit_date")
    with audited(request, who) as w:
        _row, status = treatment.record_visit(w, patient.patient_code, body.visit_code, day)
    return _visit_out(status)


@router.put("/patients/{code}/visits/{visit_code}", response_model=VisitOut, responses=ERRORS)
def visit_edit(
    code: PatientCode,
    visit_code: VisitCode,
    body: VisitEdit,
    request: Request,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> VisitOut:
    """Correct the date of a recorded visit; answers with the new window status."""
    patient, _visit = views.visible_visit(ctx, code, visit_code, Action.WRITE)
    with audited(request, who, reason=body.reason) as w:
        _row, status = treatment.edit_visit(w, patient.patient_code, visit_code, body.changes())
    return _visit_out(status)


@router.put("/patients/{code}/inclusion", responses=ERRORS)
def inclusion_edit(
    body: InclusionEdit,
    request: Request,
    to: Visible = Depends(visible(patients.edit_inclusion)),
) -> dict[str, str]:
    """Correct the consent and inclusion dates (entry rules; inclusion before the first cycle
    and the randomization)."""
    patient = to.patient
    with audited(request, to.who, reason=body.reason) as w:
        row = patients.edit_inclusion(w, patient.patient_code, body.changes())
        return patients.inclusion_edit_form(row)


@router.put("/patients/{code}/pre-randomization", responses=ERRORS)
def pre_randomization_edit(
    body: PreRandomizationEdit,
    request: Request,
    to: Visible = Depends(visible(patients.edit_pre_randomization)),
) -> dict[str, Any]:
    """Correct the pre-randomization assessment; 409 naming ``overall_response`` when the
    correction would make an existing randomization invalid (progression)."""
    patient = to.patient
    with audited(request, to.who, reason=body.reason) as w:
        row = patients.edit_pre_randomization(w, patient.patient_code, body.changes())
        return {
            **patients.pre_randomization_edit_form(row),
            "radiological_progression": row.radiological_progression,
        }


@router.put("/patients/{code}/qol/{qol_id}", responses=ERRORS)
def qol_edit(
    qol_id: RecordId,
    body: QolEdit,
    request: Request,
    to: Visible = Depends(visible(qol.edit_questionnaire)),
) -> dict[str, Any]:
    """Correct item answers or the completion date of a saved questionnaire; answers with the
    scores the QoL engine gives the corrected answers."""
    patient = to.patient
    with audited(request, to.who, reason=body.reason) as w:
        row = qol.edit_questionnaire(w, patient.patient_code, qol_id, body.changes())
        shown = views.qol_row(row)
        result: dict[str, Any] = to_jsonable(
            {
                "id": row.id,
                **qol.questionnaire_edit_form(row),
                "scales": shown.scales,
                "summary": shown.summary,
            }
        )
    return result


@router.put("/review/{code}/reads/{read_id}", responses=ERRORS)
def central_read_edit(
    read_id: RecordId,
    body: CentralReadEdit,
    request: Request,
    to: Visible = Depends(visible(review.edit_central_read)),
) -> dict[str, Any]:
    """Correct lesion measurements of a saved central read (blinded); every central read of
    the patient is evaluated again by the RECIST 1.1 engine. Answers with the reads' stored
    responses (no arm, no treatment)."""
    patient = to.patient
    with audited(request, to.who, reason=body.reason) as w:
        read = review.edit_central_read(w, patient.patient_code, read_id, body.changes())
        reads = review.central_reads(w.session, patient)
        result: dict[str, Any] = to_jsonable(
            {
                "id": read.id,
                **review.read_edit_form(read),
                "reads": [
                    {
                        "id": r.id,
                        "timepoint": r.timepoint,
                        "overall_response": r.overall_response,
                        "target_sum_mm": r.target_sum_mm,
                    }
                    for r in reads
                ],
            }
        )
    return result
