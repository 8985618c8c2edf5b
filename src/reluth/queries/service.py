"""Open, answer and close data queries, each in the caller's audited ``unit_of_work``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from reluth.errors import Conflict, NotFound, ValidationError
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
    text = value.strip()
    if not text or len(text) > limit:
        raise ValidationError(field, "empty" if not text else "too long", f"1-{limit} characters")
    return text


def open_query(
    session: Session,
    username: str,
    patient_code: str,
    field: str,
    question: str,
    now: dt.datetime,
) -> DataQuery:
    patient = patients.get_patient(session, patient_code)
    row = DataQuery(
        patient_id=patient.id,
        field=_text(field, "field", FIELD_MAX),
        question=_text(question, "question", TEXT_MAX),
        status="open",
        opened_by=username,
        opened_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_query(session: Session, query_id: int) -> DataQuery:
    row = session.get(DataQuery, query_id)
    if row is None:
        raise NotFound(f"query {query_id} not found")
    return row


def answer_query(
    session: Session, username: str, query_id: int, answer: str, now: dt.datetime
) -> DataQuery:
    row = get_query(session, query_id)
    if row.status == "closed":
        raise Conflict(f"query {query_id} is closed")
    row.answer = _text(answer, "answer", TEXT_MAX)
    row.answered_by = username
    row.answered_at = now
    row.status = "answered"
    session.flush()
    return row


def close_query(session: Session, username: str, query_id: int, now: dt.datetime) -> DataQuery:
    row = get_query(session, query_id)
    if row.status == "closed":
        raise Conflict(f"query {query_id} is already closed")
    row.status = "closed"
    row.closed_by = username
    row.closed_at = now
    session.flush()
    return row
