"""Open, answer and close data queries, each in the caller's audited ``unit_of_work``."""

from __future__ import annotations

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import Conflict, NotFound, ValidationError
from reluth.notify import outbox
from reluth.patients import service as patients
from reluth.queries.models import DataQuery

#: Limits of the free-text fields (the page, the API and this service share them).
FIELD_MAX, TEXT_MAX = 120, 2000


def answer_reason(query_id: int) -> str:
    """The audit reason of an answer (answering changes the saved query row)."""
    return f"answer to data query {query_id}"


def close_reason(query_id: int) -> str:
    return f"data query {query_id} closed"


def _text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, "expected text", f"1-{limit} characters")
    text = value.strip()
    if any(not (ch.isprintable() or ch in "\n\r\t") for ch in text):
        raise ValidationError(field, "contains control characters", "printable text")
    if not text or len(text) > limit:
        raise ValidationError(field, "empty" if not text else "too long", f"1-{limit} characters")
    return text


@service(Action.WRITE, Resource.QUERY)
def open_query(ctx: Ctx, patient_code: str, field: str, question: str) -> DataQuery:
    patient = patients.get_patient(ctx, patient_code)
    row = DataQuery(
        patient_id=patient.id,
        field=_text(field, "field", FIELD_MAX),
        question=_text(question, "question", TEXT_MAX),
        status="open",
        opened_by=ctx.actor.username,
        opened_at=ctx.now(),
    )
    ctx.session.add(row)
    ctx.session.flush()
    outbox.notify(
        ctx,
        "query",
        outbox.site_staff(ctx, patient.centre_id),
        f"Data query {row.id} on {patient.patient_code}",
        f"{ctx.actor.username} raised data query {row.id} on patient {patient.patient_code}, "
        f"field {row.field}.\nRead and answer it: /queries",
    )
    return row


def _query_of(ctx: Ctx, query_id: int) -> DataQuery:
    """The query if its patient is in the actor's centres (else the same NotFound)."""
    row = ctx.session.get(DataQuery, query_id)
    if row is None:
        raise NotFound(f"query {query_id} not found")
    patient = ctx.session.get(patients.Patient, row.patient_id)
    if patient is None or not ctx.sees_centre(patient.centre_id):
        raise NotFound(f"query {query_id} not found")
    return row


@service(Action.READ, Resource.QUERY)
def get_query(ctx: Ctx, query_id: int) -> DataQuery:
    return _query_of(ctx, query_id)


@service(Action.WRITE, Resource.QUERY_ANSWER)
def answer_query(ctx: Ctx, query_id: int, answer: str) -> DataQuery:
    """The site's answer (the audit reason is the answer itself, set by the caller's unit of
    work: answering changes the saved query row)."""
    row = _query_of(ctx, query_id)
    if row.status == "closed":
        raise Conflict(f"query {query_id} is closed")
    row.answer = _text(answer, "answer", TEXT_MAX)
    row.answered_by = ctx.actor.username
    row.answered_at = ctx.now()
    row.status = "answered"
    ctx.session.flush()
    code = ctx.session.get(patients.Patient, row.patient_id).patient_code  # type: ignore[union-attr]
    outbox.notify(
        ctx,
        "answer",
        outbox.user(ctx, row.opened_by),
        f"Answer to data query {row.id} on {code}",
        f"{ctx.actor.username} answered your data query {row.id} on patient {code} "
        f"(field {row.field}).\nReview and close it: /queries",
    )
    return row


@service(Action.WRITE, Resource.QUERY)
def close_query(ctx: Ctx, query_id: int) -> DataQuery:
    row = _query_of(ctx, query_id)
    if row.status == "closed":
        raise Conflict(f"query {query_id} is already closed")
    row.status = "closed"
    row.closed_by = ctx.actor.username
    row.closed_at = ctx.now()
    ctx.session.flush()
    return row
