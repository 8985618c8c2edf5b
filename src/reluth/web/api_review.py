"""JSON API for the blinded central review: the worklist, a patient's central reads, the RECIST
1.1 evaluation of a proposed read (nothing stored) and saving a read. Built only from inclusion
and central reads (``reluth.response.service``), like ``review_pages``: no arm, treatment,
cycle or dosimetry field exists in these models, so none can reach the reviewer."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from reluth.core.context import Ctx
from reluth.response import recist
from reluth.response import service as review
from reluth.response.models import TumourAssessment
from reluth.web.api import ERRORS, ApiIn, one_of
from reluth.web.deps import DB_SESSION, READ, Visible, audited, visible

router = APIRouter(tags=["api"])


class LesionIn(ApiIn):
    id: str = Field(pattern=r"^\S+$", max_length=review.LESION_ID_MAX, description="e.g. T1, NT2")
    organ: str | None = Field(
        default=None, min_length=1, max_length=review.ORGAN_MAX, description="baseline only"
    )
    kind: str | None = Field(
        default=None, pattern=one_of(recist.LesionKind), description="baseline only"
    )
    nodal: bool | None = Field(default=None, description="baseline only")
    diameter_mm: Decimal | None = Field(
        default=None, ge=0, le=1000, max_digits=5, decimal_places=1, description="mm"
    )
    status: str | None = Field(
        default=None,
        pattern=one_of(recist.LesionStatus),
        description="instead of a diameter (non-target lesions, or target absent/too small)",
    )


class ReadIn(ApiIn):
    assessment_date: dt.date
    new_lesions: str = Field(default="no", pattern=one_of(recist.NewLesions))
    lesions: list[LesionIn] = Field(max_length=30)


class ReadSave(ReadIn):
    timepoint: str = Field(
        max_length=32, pattern=r"\S", description="baseline first, then e.g. week8"
    )
    modality: str = Field(pattern=one_of(review.MODALITIES))


class LesionOut(BaseModel):
    id: str
    kind: str
    organ: str
    nodal: bool
    diameter_mm: float | None
    status: str | None


class ReadOut(BaseModel):
    id: int = Field(description="the saved read (PUT .../reads/{id} corrects it)")
    timepoint: str
    assessment_date: dt.date
    modality: str
    new_lesions: str
    overall_response: str | None
    target_sum_mm: float | None
    lesions: list[LesionOut]


class ReviewPatientOut(BaseModel):
    patient_id: str
    baseline_pending: bool = Field(description="no central read yet: the next read is baseline")
    baseline_lesions: list[str] = Field(description="lesions each follow-up measures again")
    reads: list[ReadOut]


class WorkItemOut(BaseModel):
    patient_id: str
    reads: int
    last_timepoint: str | None
    last_date: dt.date | None


class TimePointOut(BaseModel):
    date: dt.date
    days_from_baseline: int
    sum_mm: float | None
    partial_sum_mm: float | None
    nadir_mm: float | None
    change_from_baseline_pct: float | None
    change_from_nadir_pct: float | None
    target: str
    non_target: str
    new_lesions: str
    overall: str
    notes: list[str]


class EvaluationOut(BaseModel):
    baseline: bool = Field(description="the proposed read is the baseline read")
    baseline_sum_mm: float | None
    time_points: list[TimePointOut]


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _read_out(read: TumourAssessment) -> ReadOut:
    return ReadOut(
        id=read.id,
        timepoint=read.timepoint,
        assessment_date=read.assessment_date,
        modality=read.modality,
        new_lesions="no" if read.timepoint == "baseline" else review.new_lesions_of(read),
        overall_response=read.overall_response,
        target_sum_mm=_number(read.target_sum_mm),
        lesions=[
            LesionOut(
                id=m.lesion_id,
                kind=m.kind,
                organ=m.organ,
                nodal=m.lymph_node,
                diameter_mm=_number(m.diameter_mm),
                status=m.status,
            )
            for m in read.lesions
            if m.kind != "new"
        ],
    )


def _lesions(body: ReadIn) -> list[dict[str, Any]]:
    out = []
    for lesion in body.lesions:
        raw = lesion.model_dump(exclude_none=True)
        if lesion.diameter_mm is not None:
            raw["diameter_mm"] = str(lesion.diameter_mm)
        out.append(raw)
    return out


@router.get("/review", response_model=list[WorkItemOut], responses=ERRORS)
def review_worklist(ctx: Ctx = READ) -> list[WorkItemOut]:
    """Included patients with their number of central reads (blinded)."""
    return [
        WorkItemOut(
            patient_id=w.patient_code,
            reads=w.reads,
            last_timepoint=w.last_timepoint,
            last_date=w.last_date,
        )
        for w in review.worklist(ctx)
    ]


@router.get("/review/{code}", response_model=ReviewPatientOut, responses=ERRORS)
def review_patient(
    to: Visible = Depends(visible(review.get_central_read)),
    db: Session = DB_SESSION,
) -> ReviewPatientOut:
    patient = to.patient
    reads = review.central_reads(db, patient)
    return ReviewPatientOut(
        patient_id=patient.patient_code,
        baseline_pending=not reads,
        baseline_lesions=review.baseline_lesion_ids(reads),
        reads=[_read_out(r) for r in reads],
    )


@router.post("/review/{code}/evaluate", response_model=EvaluationOut, responses=ERRORS)
def review_evaluate(
    body: ReadIn,
    to: Visible = Depends(visible(review.preview_read)),
    ctx: Ctx = READ,
) -> EvaluationOut:
    """RECIST 1.1 for the stored reads plus this one, as typed; nothing is stored."""
    evaluation = review.preview_read(
        ctx, to.patient.patient_code, body.assessment_date, body.new_lesions, _lesions(body)
    )
    return EvaluationOut(
        baseline=not evaluation.results,  # the proposed read is the only one
        baseline_sum_mm=_number(evaluation.baseline_sum_mm),
        time_points=[
            TimePointOut(
                date=t.date,
                days_from_baseline=t.day,
                sum_mm=_number(t.sum_mm),
                partial_sum_mm=_number(t.partial_sum_mm),
                nadir_mm=_number(t.nadir_mm),
                change_from_baseline_pct=_number(t.change_from_baseline_pct),
                change_from_nadir_pct=_number(t.change_from_nadir_pct),
                target=t.target.value,
                non_target=t.non_target.value,
                new_lesions=t.new_lesions.value,
                overall=t.overall.value,
                notes=list(t.notes),
            )
            for t in evaluation.results
        ],
    )


@router.post("/review/{code}", response_model=ReadOut, status_code=201, responses=ERRORS)
def review_save(
    body: ReadSave,
    request: Request,
    to: Visible = Depends(visible(review.record_central_read)),
) -> ReadOut:
    """Store one central read (baseline first), evaluated with all earlier reads."""
    return _save(request, to, body, review.record_central_read)


def _save(request: Request, to: Visible, body: ReadSave, record: Any) -> ReadOut:
    """One read stored by ``record`` (central review's or the site's service)."""
    with audited(request, to.who) as w:
        read = record(
            w,
            to.patient.patient_code,
            body.timepoint,
            body.assessment_date,
            body.modality,
            _lesions(body),
            body.new_lesions,
        )
        w.session.refresh(read)
        return _read_out(read)


# --- the site investigator's local assessment (kept apart from central review) --------------


class LocalOutcomeOut(BaseModel):
    best_overall_response: str
    best_overall_response_date: dt.date | None
    first_pd_date: dt.date | None
    disease_control_month6: bool


class LocalAssessmentsOut(BaseModel):
    patient_id: str
    reader: str = Field(description="always local: the site investigator's reads")
    baseline_lesions: list[str]
    reads: list[ReadOut]
    outcome: LocalOutcomeOut | None = Field(description="None before randomization")


@router.get(
    "/patients/{code}/local-assessments", response_model=LocalAssessmentsOut, responses=ERRORS
)
def local_assessments(
    to: Visible = Depends(visible(review.local_assessments)), ctx: Ctx = READ
) -> LocalAssessmentsOut:
    """The site's local tumour assessments of a patient and their RECIST 1.1 evaluation by the
    same engine as central review (never the central reads)."""
    reads, evaluation = review.local_assessments(ctx, to.patient.patient_code)
    outcome = None if evaluation is None else evaluation.outcome
    return LocalAssessmentsOut(
        patient_id=to.patient.patient_code,
        reader=review.LOCAL,
        baseline_lesions=review.baseline_lesion_ids(reads),
        reads=[_read_out(r) for r in reads],
        outcome=None
        if outcome is None
        else LocalOutcomeOut(
            best_overall_response=outcome.best_overall_response.value,
            best_overall_response_date=outcome.best_overall_response_date,
            first_pd_date=outcome.first_pd_date,
            disease_control_month6=outcome.disease_control_month6,
        ),
    )


@router.post(
    "/patients/{code}/local-assessments",
    response_model=ReadOut,
    status_code=201,
    responses=ERRORS,
)
def local_assessment_save(
    body: ReadSave,
    request: Request,
    to: Visible = Depends(visible(review.record_local_assessment)),
) -> ReadOut:
    """Store one local tumour assessment (baseline first), evaluated by the RECIST engine with
    the site's earlier local assessments."""
    return _save(request, to, body, review.record_local_assessment)
