"""JSON API for adverse events (with the 24-hour SAE clock) and data queries: the same read
models (``trial_views``), services and permission checks as the pages in ``trial_pages``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from reluth.core.context import Ctx
from reluth.errors import ValidationError
from reluth.forms import answers
from reluth.i18n import N_
from reluth.queries import service as queries
from reluth.records import views
from reluth.safety import records as safety_records
from reluth.web.api import ERRORS, ApiIn, one_of
from reluth.web.deps import READ, Auth, RecordId, Visible, audited, calls, visible

router = APIRouter(tags=["api"])


# --- adverse events ---------------------------------------------------------------------------


class AdverseEventIn(ApiIn):
    term: str = Field(min_length=1, max_length=120, pattern=r"\S", description="CTCAE v5.0 term")
    grade: int = Field(ge=1, le=5, description="CTCAE grade; 5 = fatal")
    serious: bool = False
    relatedness: str = Field(pattern=one_of(safety_records.RELATEDNESS))
    outcome: str = Field(pattern=one_of(safety_records.OUTCOMES))
    onset_date: dt.date
    resolution_date: dt.date | None = None
    awareness_date: dt.date | None = Field(
        default=None, description="day the site became aware; starts the SAE clock"
    )
    awareness_time: str | None = Field(
        default=None,
        max_length=8,
        description="HH:MM, the site's wall-clock time of awareness (protocol site_timezone): "
        "makes the clock exact; without it the clock runs from the start (00:00) of the awareness day",
    )
    description: str | None = Field(default=None, max_length=2000)


class SaeClockOut(BaseModel):
    awareness_date: dt.date
    awareness_time: dt.time | None = Field(description="site wall-clock time, if recorded")
    due_by: dt.datetime = Field(
        description="UTC: 24 hours after awareness (from the start of the awareness day at the "
        "site when no time was recorded)"
    )
    hours_left: float = Field(description="at receipt if received, else now; negative if late")
    overdue: bool
    received_at: dt.datetime | None = Field(description="pharmacovigilance's receipt (UTC)")
    received_by: str | None


class AdverseEventOut(BaseModel):
    id: int
    patient_id: str
    centre: str
    term: str
    grade: int
    serious: bool
    relatedness: str
    outcome: str
    onset_date: dt.date
    awareness_date: dt.date | None
    sae_clock: SaeClockOut | None = Field(description="serious events with an awareness date")


def _ae_out(row: views.AeRow) -> AdverseEventOut:
    clock = row.clock
    return AdverseEventOut(
        id=row.id,
        patient_id=row.patient_code,
        centre=row.centre,
        term=row.term,
        grade=row.grade,
        serious=row.serious,
        relatedness=row.relatedness,
        outcome=row.outcome,
        onset_date=row.onset_date,
        awareness_date=row.awareness_date,
        sae_clock=None
        if clock is None
        else SaeClockOut(
            awareness_date=clock.awareness_date,
            awareness_time=clock.awareness_time,
            due_by=clock.due_by,
            hours_left=float(clock.hours_left),
            overdue=clock.late,
            received_at=clock.received_at,
            received_by=row.received_by,
        ),
    )


@router.get("/adverse-events", response_model=list[AdverseEventOut], responses=ERRORS)
def adverse_events_list(ctx: Ctx = READ) -> list[AdverseEventOut]:
    """Adverse events of the centres the caller sees, serious ones first by SAE due time."""
    return [_ae_out(r) for r in views.adverse_events(ctx)]


@router.post(
    "/patients/{code}/adverse-events",
    response_model=AdverseEventOut,
    status_code=201,
    responses=ERRORS,
)
def adverse_events_add(
    body: AdverseEventIn,
    request: Request,
    to: Visible = Depends(visible(safety_records.record_adverse_event)),
) -> AdverseEventOut:
    who, patient = to.who, to.patient
    data = {k: v for k, v in body.model_dump(mode="json").items() if v is not None}
    data["patient_id"] = patient.patient_code
    with audited(request, who) as w:
        row = safety_records.record_adverse_event(w, data)
        return _ae_out(views.ae_row(row, patient, w.now(), None, False, w.protocol))


# --- data queries -----------------------------------------------------------------------------


class QueryIn(ApiIn):
    form: str | None = Field(
        default=None, max_length=40, description="the registered form queried, e.g. 'lab'"
    )
    record_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="its saved record (GET /forms lists forms)"
    )
    visit_code: str | None = Field(
        default=None, max_length=32, description="instead of a record: the form at this visit"
    )
    field: str = Field(
        min_length=1,
        max_length=queries.FIELD_MAX,
        pattern=r"\S",
        description="the field of the form queried (or 'form record_id field': 'lab 12 value')",
    )
    question: str = Field(min_length=1, max_length=queries.TEXT_MAX, pattern=r"\S")


class ReopenIn(ApiIn):
    reason: str = Field(min_length=1, max_length=queries.TEXT_MAX, pattern=r"\S")


class AnswerIn(ApiIn):
    """An answer in words, or (``correct`` + ``reason``) a correction of the queried value
    through the form's correction path, answered in the same transaction."""

    answer: str | None = Field(
        default=None, min_length=1, max_length=queries.TEXT_MAX, pattern=r"\S"
    )
    correct: str | None = Field(
        default=None, max_length=queries.TEXT_MAX, description="the corrected value, as text"
    )
    reason: str | None = Field(
        default=None, min_length=1, max_length=2000, pattern=r"\S",
        description="why the value changes (required with correct; audited)",
    )  # fmt: skip


class QueryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    patient_id: str = Field(validation_alias="patient_code")
    field: str
    status: str = Field(description="open, answered or closed")
    question: str
    opened_by: str
    opened_at: dt.datetime
    answer: str | None
    answered_by: str | None
    can_answer: bool = Field(description="the caller may answer it")
    can_close: bool = Field(description="the caller may close it")
    form_id: str | None = Field(description="the form queried")
    record_id: int | None = Field(description="its record (None: the form at visit_code)")
    item: str | None = Field(description="the field queried")
    visit_code: str | None
    days_open: int = Field(description="days since raised or re-opened, until closed")
    can_reopen: bool = Field(description="the caller may re-open it")
    reopen_reason: str | None


@router.get("/queries", response_model=list[QueryOut], responses=ERRORS)
def queries_list(ctx: Ctx = READ) -> list[QueryOut]:
    """Data queries on patients of the centres the caller sees, open ones first."""
    return [QueryOut.model_validate(r) for r in views.data_queries(ctx)]


@router.post("/patients/{code}/queries", response_model=QueryOut, status_code=201, responses=ERRORS)
def queries_open(
    body: QueryIn,
    request: Request,
    to: Visible = Depends(visible(queries.open_query)),
) -> QueryOut:
    who, patient = to.who, to.patient
    with audited(request, who) as w:
        row = queries.open_query(
            w,
            patient.patient_code,
            body.field,
            body.question,
            form_id=body.form,
            record_id=body.record_id,
            visit_code=body.visit_code,
        )
        return QueryOut.model_validate(views.query_row(row, patient.patient_code, w))


def _query_of(fn: Callable[..., object]) -> Callable[..., Visible]:
    """A dependency for a route that will call ``fn`` on a query: 403 unless the actor may
    call it; 404 for a query on a patient of a centre they do not see, as for an unknown id
    (before the body is read)."""

    def dependency(
        query_id: RecordId,
        who: Auth = Depends(calls(fn)),
        ctx: Ctx = READ,
    ) -> Visible:
        return Visible(who, views.query_patient(ctx, query_id))

    dependency.__name__ = f"visible_query_{getattr(fn, '__name__', 'call')}"
    return dependency


@router.post("/queries/{query_id}/answer", response_model=QueryOut, responses=ERRORS)
def queries_answer(
    query_id: RecordId,
    body: AnswerIn,
    request: Request,
    to: Visible = Depends(_query_of(queries.answer_query)),
) -> QueryOut:
    """Answer a query in words, or correct the queried value (``correct`` and ``reason``)."""
    who, code = to.who, to.patient.patient_code
    if body.correct is not None:
        with audited(request, who) as w:
            row = answers.answer_with_correction(
                w, query_id, body.correct, body.reason or "", body.answer
            )
            return QueryOut.model_validate(views.query_row(row, code, w))
    if body.answer is None:
        raise ValidationError("answer", N_("missing"), N_("an answer, or correct and reason"))
    with audited(request, who, reason=queries.answer_reason(query_id)) as w:
        row = queries.answer_query(w, query_id, body.answer)
        return QueryOut.model_validate(views.query_row(row, code, w))


@router.post("/queries/{query_id}/close", response_model=QueryOut, responses=ERRORS)
def queries_close(
    query_id: RecordId,
    request: Request,
    to: Visible = Depends(_query_of(queries.close_query)),
) -> QueryOut:
    who, code = to.who, to.patient.patient_code
    with audited(request, who, reason=queries.close_reason(query_id)) as w:
        row = queries.close_query(w, query_id)
        return QueryOut.model_validate(views.query_row(row, code, w))


@router.post("/queries/{query_id}/reopen", response_model=QueryOut, responses=ERRORS)
def queries_reopen(
    query_id: RecordId,
    body: ReopenIn,
    request: Request,
    to: Visible = Depends(_query_of(queries.reopen_query)),
) -> QueryOut:
    """Re-open a closed query, with the reason."""
    who, code = to.who, to.patient.patient_code
    with audited(request, who, reason=queries.reopen_reason(query_id, body.reason)) as w:
        row = queries.reopen_query(w, query_id, body.reason)
        return QueryOut.model_validate(views.query_row(row, code, w))
