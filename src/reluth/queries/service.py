"""Open, answer and close data queries, each in the caller's audited ``unit_of_work``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import Conflict, NotFound, ValidationError
from reluth.forms import refs
from reluth.i18n import N_
from reluth.i18n.reasons import Reason, Word, invalid_worded, refusal
from reluth.i18n.vocabulary import QUERY_STATUSES
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


def reopen_reason(query_id: int, reason: str) -> str:
    return f"data query {query_id} re-opened: {reason.strip()}"


def _text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, "expected text", f"1-{limit} characters", code="not_text")
    text = value.strip()
    if any(not (ch.isprintable() or ch in "\n\r\t") for ch in text):
        raise ValidationError(field, N_("contains control characters"), N_("printable text"))
    if not text or len(text) > limit:
        raise ValidationError(
            field,
            "empty" if not text else "too long",
            f"1-{limit} characters",
            code="required" if not text else "text_too_long",
            params={"length": len(text), "limit": limit},
        )
    return text


@dataclass(frozen=True)
class Target:
    """What a query is about: a field of a saved form instance, or a form at a visit."""

    form_id: str
    item: str
    record_id: int | None = None
    visit_code: str | None = None

    @property
    def text(self) -> str:
        where = self.record_id if self.record_id is not None else self.visit_code
        return f"{self.form_id} {where} {self.item}"


def _target(
    ctx: Ctx,
    patient_code: str,
    field: str,
    form_id: str | None,
    record_id: int | None,
    visit_code: str | None,
) -> Target:
    """The form instance and field queried, checked against the registry and the patient's
    records: an unknown form, record or field is refused naming it (never stored as text)."""
    registry = ctx.trial.forms
    item = _text(field, "field", FIELD_MAX)
    patient_id = patients.get_patient(ctx, patient_code).id
    parts: list[str] = []
    if form_id is None:  # "lab 12 value" (a form id or a table name, a record id, a field)
        parts = item.split()
        if len(parts) == 2:  # "inclusion consent_date": a form the patient has once
            single = [f for f in registry.forms if parts[0] in (f.id, f.table) and f.single]
            if single:
                form_id, item = single[0].id, parts[1]
                parts = []
        if parts and (len(parts) != 3 or not parts[1].isdigit()):
            raise ValidationError(
                "field",
                f"{item!r} does not name a form instance and field",
                "form, record_id and field (e.g. 'lab 12 value')",
                code="not_a_form_item",
                params={"value": item},
            )
    if parts:
        name, rid, item = parts[0], int(parts[1]), parts[2]
        if name in registry.form_ids:
            form_id = name
        else:
            try:
                form_id = refs.ref_of_table(ctx.session, registry, name, rid).form
            except NotFound:
                raise _not_a_form("field", name, registry.form_ids) from None
        record_id = rid
    assert form_id is not None
    if form_id not in registry.form_ids:
        raise _not_a_form("form", form_id, registry.form_ids)
    form = registry.form(form_id)
    if item not in form.field_names:
        raise form.not_a_field(item)
    if record_id is not None:
        try:
            ref = refs.ref_of(ctx.session, registry, form.id, record_id)
        except NotFound:
            ref = None
        if ref is None or ref.patient_code != patient_code:
            raise invalid_worded(
                "record_id",
                "no_such_record",
                N_("{field}: no {form} {record} of {patient} — a saved record"),
                f"no {form.id} {record_id} of {patient_code}",
                "a saved record",
                form=form.named(),
                record=str(record_id),
                patient=patient_code,
            )
        return Target(form.id, item, record_id=record_id)
    if form.single and (visit_code is None or not visit_code.strip()):
        try:
            ref = refs.ref_of_patient(ctx.session, registry, form.id, patient_id)
        except NotFound:
            raise invalid_worded(
                "record_id",
                "no_such_record",
                N_("{field}: no {form} of {patient} is saved — a saved record"),
                f"no {form.id} of {patient_code} is saved",
                "a saved record",
                form=form.named(),
                patient=patient_code,
            ) from None
        return Target(form.id, item, record_id=ref.record_id)
    if visit_code is None or not visit_code.strip():
        raise ValidationError("record_id", N_("missing"), N_("a saved record, or a visit code"))
    return Target(form.id, item, visit_code=_text(visit_code, "visit_code", 32))


@service(Action.WRITE, Resource.QUERY)
def open_query(
    ctx: Ctx,
    patient_code: str,
    field: str,
    question: str,
    *,
    form_id: str | None = None,
    record_id: int | None = None,
    visit_code: str | None = None,
) -> DataQuery:
    """Raise a query on a field of a saved form instance (``form_id`` + ``record_id`` +
    ``field``) or of a form at a visit (``visit_code``); ``field`` alone may name all three
    (``lab 12 value``)."""
    patient = patients.get_patient(ctx, patient_code)
    target = _target(ctx, patient.patient_code, field, form_id, record_id, visit_code)
    row = DataQuery(
        patient_id=patient.id,
        field=target.text,
        form_id=target.form_id,
        record_id=target.record_id,
        item=target.item,
        visit_code=target.visit_code,
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
        Reason(
            "mail.query_subject",
            N_("Data query {query} on {patient}"),
            {"query": str(row.id), "patient": patient.patient_code},
        ),
        Reason(
            "mail.query",
            N_(
                "{user} raised data query {query} on patient {patient}, field {field}.\n"
                "Read and answer it: /queries"
            ),
            {
                "user": ctx.actor.username,
                "query": str(row.id),
                "patient": patient.patient_code,
                "field": row.field,
            },
        ),
    )
    return row


def _query_of(ctx: Ctx, query_id: int) -> DataQuery:
    """The query if its patient is in the actor's centres (else the same NotFound)."""
    row = ctx.session.get(DataQuery, query_id)
    patient = None if row is None else ctx.session.get(patients.Patient, row.patient_id)
    if row is None or patient is None or not ctx.sees_centre(patient.centre_id):
        raise query_not_found(query_id)
    return row


def query_not_found(query_id: object) -> NotFound:
    return refusal(NotFound, "query_not_found", N_("query {query} not found"), query=str(query_id))


def _not_a_form(field: str, name: str, form_ids: tuple[str, ...]) -> ValidationError:
    accepted = ", ".join(form_ids)
    return ValidationError(
        field,
        f"{name!r} is not a registered form",
        accepted,
        code="not_a_registered_form",
        params={"value": name, "accepted": accepted},
    )


@service(Action.READ, Resource.QUERY)
def get_query(ctx: Ctx, query_id: int) -> DataQuery:
    return _query_of(ctx, query_id)


@service(Action.WRITE, Resource.QUERY_ANSWER)
def answer_query(ctx: Ctx, query_id: int, answer: str) -> DataQuery:
    """The site's answer (the audit reason is the answer itself, set by the caller's unit of
    work: answering changes the saved query row)."""
    row = _query_of(ctx, query_id)
    if row.status == "closed":
        raise refusal(Conflict, "query_closed", N_("query {query} is closed"), query=str(query_id))
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
        Reason(
            "mail.answer_subject",
            N_("Answer to data query {query} on {patient}"),
            {"query": str(row.id), "patient": code},
        ),
        Reason(
            "mail.answer",
            N_(
                "{user} answered your data query {query} on patient {patient} (field {field}).\n"
                "Review and close it: /queries"
            ),
            {"user": ctx.actor.username, "query": str(row.id), "patient": code, "field": row.field},
        ),
    )
    return row


@service(Action.WRITE, Resource.QUERY)
def close_query(ctx: Ctx, query_id: int) -> DataQuery:
    row = _query_of(ctx, query_id)
    if row.status == "closed":
        raise refusal(
            Conflict, "query_closed", N_("query {query} is already closed"), query=str(query_id)
        )
    row.status = "closed"
    row.closed_by = ctx.actor.username
    row.closed_at = ctx.now()
    ctx.session.flush()
    return row


@service(Action.WRITE, Resource.QUERY)
def reopen_query(ctx: Ctx, query_id: int, reason: str) -> DataQuery:
    """Re-open a closed query, with the reason (the answer did not resolve it after all)."""
    row = _query_of(ctx, query_id)
    if row.status != "closed":
        raise refusal(
            Conflict,
            "query_not_closed",
            N_("query {query} is {status}: only a closed query is re-opened"),
            query=str(query_id),
            status=Word(QUERY_STATUSES.get(row.status, row.status)),
        )
    row.reopen_reason = _text(reason, "reason", TEXT_MAX)
    row.reopened_by = ctx.actor.username
    row.reopened_at = ctx.now()
    row.status = "open"
    ctx.session.flush()
    return row


def days_open(row: DataQuery, now: dt.datetime) -> int:
    """Days since the query was raised (or last re-opened), until it was closed."""
    start = row.reopened_at or row.opened_at
    end = row.closed_at if row.status == "closed" and row.closed_at else now
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=dt.UTC)
    return max(0, (end - start).days)
