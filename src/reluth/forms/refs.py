"""Form instances as record references: a registered form id + record id <-> (table, record
id, patient, centre), the key every lifecycle feature (corrections, queries, missing-data
codes, SDV, signatures, locks, status) shares with the audit trail (table name + record id).

Reads only: the caller scopes the patient to the actor's centres (a reference of a centre the
actor does not see is answered with the same NotFound as an unknown one by the services).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.db.base import Base
from reluth.errors import NotFound, ValidationError
from reluth.forms.registry import FormDef, Registry, table_named
from reluth.i18n import N_
from reluth.i18n.reasons import refusal


@dataclass(frozen=True)
class RecordRef:
    """One saved form instance: the form, the row that holds it, its patient and centre."""

    form: str
    table: str
    record_id: int
    patient_id: int
    patient_code: str
    centre_id: int

    @property
    def key(self) -> str:
        """``lab/17``: how pages, the API and the CLI name a form instance."""
        return f"{self.form}/{self.record_id}"


@functools.cache
def _models() -> dict[str, type[Any]]:
    from reluth.db.registry import load_all_models

    load_all_models()
    out: dict[str, type[Any]] = {}
    for mapper in Base.registry.mappers:
        table = getattr(mapper.class_, "__tablename__", None)
        if isinstance(table, str):
            out[table] = mapper.class_
    return out


def model_of(form: FormDef) -> type[Any]:
    """The ORM class of the form's table."""
    return _models()[form.table]


def _belongs(form: FormDef, row: Any) -> bool:
    return all(str(getattr(row, col)) == value for col, value in form.where.items())


def _patient(session: Session, patient_id: int) -> tuple[str, int]:
    from reluth.patients.models import Patient

    found = session.execute(
        select(Patient.patient_code, Patient.centre_id).where(Patient.id == patient_id)
    ).one_or_none()
    if found is None:  # a row always has its patient (foreign key); defensive
        raise refusal(
            NotFound,
            "patient_not_found",
            N_("patient {patient} not found"),
            patient=str(patient_id),
        )
    return str(found[0]), int(found[1])


def record_id(text: Any, field: str = "record_id") -> int:
    """A record id given as text (a URL, the CLI): a positive integer, else a ValidationError."""
    value = str(text).strip()
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 2**31:
        raise ValidationError(
            field,
            f"{text!r} is not a record id",
            "a positive integer",
            code="not_a_record_id",
            params={"value": str(text)[:40]},
        )
    return int(value)


def record_not_found(form: FormDef | str, rid: Any, patient: str | None = None) -> NotFound:
    """No saved instance ``rid`` of ``form`` (a form, or a table named by its form's label)
    of ``patient`` (when given), or none the reader may see."""
    named = form.named() if isinstance(form, FormDef) else table_named(form)
    if patient is None:
        template = N_("{form} {record} not found")
    else:
        template = N_("{form} {record} not found for patient {patient}")
    return refusal(
        NotFound, "record_not_found", template, form=named, record=str(rid), patient=patient
    )


def ref_of(session: Session, registry: Registry, form_id: str, rid: int) -> RecordRef:
    """The saved instance ``rid`` of form ``form_id`` (NotFound if there is none)."""
    form = registry.form(form_id)
    row = session.get(model_of(form), rid)
    if row is None or not _belongs(form, row):
        raise record_not_found(form, rid)
    return ref_of_row(session, form, row)


def _patient_id(form: FormDef, row: Any) -> int:
    return int(row.id if form.table == "patients" else row.patient_id)


def ref_of_row(session: Session, form: FormDef, row: Any) -> RecordRef:
    pid = _patient_id(form, row)
    code, centre = _patient(session, pid)
    return RecordRef(form.id, form.table, int(row.id), pid, code, centre)


def ref_of_patient(
    session: Session, registry: Registry, form_id: str, patient_id: int
) -> RecordRef:
    """The one instance of a single-instance form (registration, inclusion...) of a patient."""
    form = registry.form(form_id)
    model = model_of(form)
    key = model.id if form.table == "patients" else model.patient_id
    row = session.scalars(select(model).where(key == patient_id)).first()
    if row is None or not form.single or not _belongs(form, row):
        raise refusal(
            NotFound,
            "record_not_found",
            N_("{form} of patient {patient} not found"),
            form=form.named(),
            patient=str(patient_id),
        )
    return ref_of_row(session, form, row)


def ref_of_table(session: Session, registry: Registry, table: str, rid: int) -> RecordRef:
    """The form instance stored as row ``rid`` of ``table`` (the audit trail's reference);
    NotFound for a row that is no form's (e.g. a derived table)."""
    candidates = registry.forms_of_table(table)
    if not candidates:
        raise refusal(
            NotFound, "not_a_form_table", N_("{table} holds no case report form"), table=table
        )
    row = session.get(model_of(candidates[0]), rid)
    if row is not None:
        for form in candidates:
            if _belongs(form, row):
                return ref_of_row(session, form, row)
    raise record_not_found(table, rid)


def load_row(session: Session, registry: Registry, ref: RecordRef) -> Any:
    """The row of a reference (as the session holds it)."""
    return session.get(model_of(registry.form(ref.form)), ref.record_id)
