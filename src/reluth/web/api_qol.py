"""JSON API for EORTC quality-of-life questionnaires: the stored questionnaires of a patient,
entry (validated and scored by the QoL engine inside the audited QoL service), and scoring
without saving for a live preview. Same permission checks as ``qol_pages``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.orm import Session

from reluth.qol import scoring
from reluth.qol import service as qol
from reluth.records import views
from reluth.web.api import ERRORS, ApiIn, one_of
from reluth.web.deps import DB_SESSION, Auth, Visible, audited, calls, visible

router = APIRouter(tags=["api"])

ItemNumber = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]?$")]
Answer = Annotated[int, Field(ge=1, le=7)] | None


class QolItemsIn(ApiIn):
    instrument: str = Field(pattern=one_of(views.QOL_INSTRUMENTS))
    items: dict[ItemNumber, Answer] = Field(
        max_length=60,
        description="item number -> answer (QLQ-C30 items 1-30, QLQ-GINET21 items 31-51); "
        "null or absent = missing. The engine checks each item's range.",
    )


class QolIn(QolItemsIn):
    timepoint: str = Field(
        min_length=1, max_length=32, pattern=r"^\S+$", description="e.g. QOL-W00 (baseline)"
    )
    completed_on: dt.date


class QolScoresOut(BaseModel):
    instrument: str
    scales: dict[str, float | None] = Field(description="0-100; null = not enough items")
    summary: float | None
    summary_code: str | None
    answered: dict[str, int] = Field(description="items answered per scale")
    unverified_scales: list[str] = Field(description="scale definitions flagged not verified")


class QolRowOut(BaseModel):
    instrument: str
    id: int | None = Field(description="the saved questionnaire (PUT .../qol/{id} corrects it)")
    timepoint: str
    completed_on: dt.date
    scales: dict[str, float | None] = Field(description="scores stored at entry")
    summary: float | None


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _row_out(row: views.QolRow) -> QolRowOut:
    return QolRowOut(
        id=row.id,
        instrument=row.instrument,
        timepoint=row.timepoint,
        completed_on=row.completed_on,
        scales={k: _number(v) for k, v in row.scales.items()},
        summary=_number(row.summary),
    )


@router.get("/patients/{code}/qol", response_model=list[QolRowOut], responses=ERRORS)
def qol_list(
    to: Visible = Depends(visible(qol.get_questionnaire)),
    db: Session = DB_SESSION,
) -> list[QolRowOut]:
    patient = to.patient
    return [_row_out(r) for r in views.qol_rows(db, patient.id)]


@router.post("/patients/{code}/qol", response_model=QolRowOut, status_code=201, responses=ERRORS)
def qol_add(
    body: QolIn,
    request: Request,
    to: Visible = Depends(visible(qol.record_questionnaire)),
) -> QolRowOut:
    """Store a questionnaire; the answer carries the scale scores the engine computed."""
    who, patient = to.who, to.patient
    data = {
        "patient_id": patient.patient_code,
        "instrument": body.instrument,
        "timepoint": body.timepoint,
        "completed_on": body.completed_on.isoformat(),
        "items": body.items,
    }
    with audited(request, who) as w:
        row = qol.record_questionnaire(w, data)
        return _row_out(views.qol_row(row))


@router.post("/qol/score", response_model=QolScoresOut, responses=ERRORS)
def qol_score(
    body: QolItemsIn,
    who: Auth = Depends(calls(qol.record_questionnaire)),
) -> QolScoresOut:
    """Score answers without saving anything (the live preview of the entry form)."""
    result = scoring.score(body.instrument, body.items)
    return QolScoresOut(
        instrument=result.instrument,
        scales={k: _number(v) for k, v in result.scales.items()},
        summary=_number(result.summary),
        summary_code=result.summary_code,
        answered=result.answered,
        unverified_scales=list(result.unverified_scales),
    )
