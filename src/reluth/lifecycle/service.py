"""Lifecycle use cases: lock, freeze and unlock a form instance, a patient, a centre or the study
(the data manager; ICH E6(R3) 4.2, data lock before analysis). The refusal of locked changes
is not here but at the write door (:mod:`reluth.lifecycle.guard`), so no path can forget it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from reluth.auth.actor import Actor
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx, writing
from reluth.core.service import service
from reluth.core.trial import Trial
from reluth.db.base import Base
from reluth.db.session import too_long
from reluth.errors import Conflict, NotFound, ValidationError
from reluth.forms import refs
from reluth.i18n import N_
from reluth.i18n.reasons import Word, invalid_worded, refusal
from reluth.lifecycle.guard import (
    CONSEQUENCE_TABLES,
    CONTROL_TABLES,
    Owner,
    _Owners,
    covers,
    lock_named,
)
from reluth.lifecycle.models import RecordLock
from reluth.patients import service as patients
from reluth.patients.models import Patient
from reluth.sites import service as sites

SCOPES = ("study", "centre", "patient", "form")
KINDS = ("lock", "freeze")
REASON_MAX = 2000


@dataclass(frozen=True)
class Target:
    """What a lock applies to, resolved and checked against the actor's centres."""

    scope: str
    label: str
    centre_id: int | None = None
    patient_id: int | None = None
    table_name: str | None = None
    record_id: str | None = None


def _reason(reason: str | None) -> str:
    text = (reason or "").strip() if isinstance(reason, str | None) else ""
    if not text:
        raise ValidationError(
            "reason", N_("a reason is required"), N_("why, e.g. 'database lock v1'")
        )
    if len(text) > REASON_MAX:
        raise too_long("reason", len(text), REASON_MAX)
    return text


def _choice(value: str, field: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise invalid_worded(
            field,
            "not_accepted",
            N_("{field}: “{value}” is not one of the accepted answers ({accepted})"),
            f"{value!r} is not known",
            ", ".join(accepted),
            field=Word(_LABELS[field]),
            value=str(value),
            accepted=", ".join(accepted),
        )
    return value


#: The inputs of a lock by their label ("kind" is a lesion's type elsewhere).
_LABELS = {"kind": N_("Lock or freeze"), "scope": N_("Scope")}


def record_not_found(table: str, record_id: object, patient: str | None = None) -> NotFound:
    """No row ``record_id`` of ``table`` (of ``patient``) the actor may see."""
    return refs.record_not_found(table, record_id, patient)


def data_tables() -> dict[str, Any]:
    """The mapped tables whose rows are form instances of a patient (what a form lock, an SDV
    mark or a signature can name), by table name."""
    out: dict[str, Any] = {}
    for mapper in Base.registry.mappers:
        cls = mapper.class_
        table = getattr(cls, "__tablename__", None)
        if table is None or getattr(cls, "__audit_exempt__", False):
            continue
        if table in CONTROL_TABLES or table in CONSEQUENCE_TABLES:
            continue
        if table in ("signatures", "sdv_marks", "data_queries", "allocation_slots"):
            continue  # review rows, and the concealed allocation list (not a form)
        if "patient_id" in mapper.columns or table in ("lesion_measurements", "patients"):
            out[table] = cls
    return out


def form_row(ctx: Ctx, table: str, record_id: str | int) -> tuple[Any, Owner]:
    """The row ``table``/``record_id`` of a patient the actor may see (NotFound otherwise, the
    same for another centre's), with its owner."""
    tables = data_tables()
    if table not in tables:
        raise ValidationError(
            "table",
            f"{table!r} is not a form table",
            ", ".join(sorted(tables)),
            code="not_a_form_table",
            params={"value": str(table), "accepted": ", ".join(sorted(tables))},
        )
    try:
        ident = int(str(record_id))
    except ValueError:
        raise ValidationError(
            "record_id",
            f"{record_id!r} is not a record id",
            "an integer",
            code="not_a_record_id",
            params={"value": str(record_id)[:40]},
        ) from None
    row = ctx.session.get(tables[table], ident) if 1 <= ident < 2**31 else None
    owner = _Owners(ctx.session).of(row) if row is not None else None
    if row is None or owner is None or not ctx.sees_centre(owner.centre_id):
        raise record_not_found(table, record_id)
    return row, owner


def _resolve(ctx: Ctx, scope: str, ident: str | None) -> Target:
    """The target ``scope`` (study, centre, patient, form) named by ``ident`` (none, a centre
    code, a patient code, ``table/record_id``)."""
    _choice(scope, "scope", SCOPES)
    if scope == "study":
        ctx.require_centre(None)
        return Target("study", "the study")
    if not ident:
        raise invalid_worded(
            "target",
            "target_required",
            N_("{field}: a {scope} is required ({accepted})"),
            f"a {scope} is required",
            _IDENT[scope],
            scope=Word(SCOPE_NAMES[scope]),
            accepted=Word(_IDENT[scope]),
        )
    if scope == "centre":
        centre = sites.centre_by_code(ctx.session, ident)
        ctx.require_centre(centre.id)
        return Target("centre", f"centre {centre.code}", centre_id=centre.id)
    if scope == "patient":
        patient = patients.get_patient(ctx, ident)
        return Target(
            "patient",
            f"patient {patient.patient_code}",
            centre_id=patient.centre_id,
            patient_id=patient.id,
        )
    table, _, rid = ident.partition("/")
    _row, owner = form_row(ctx, table, rid)
    code = ctx.session.get(Patient, owner.patient_id)
    return Target(
        "form",
        f"form {table}/{rid} of patient {code.patient_code if code else '?'}",
        centre_id=owner.centre_id,
        patient_id=owner.patient_id,
        table_name=table,
        record_id=str(int(rid)),
    )


_IDENT = {
    "centre": N_("a centre code, e.g. C01"),
    "patient": N_("a patient ID, e.g. C01-0001"),
    "form": N_("TABLE/RECORD_ID, e.g. lab_results/17"),
}
#: What a lock's scope names (a refusal's word).
SCOPE_NAMES = {
    "study": N_("study"),
    "centre": N_("centre"),
    "patient": N_("patient"),
    "form": N_("form"),
}


def _active(session: Session, target: Target, kind: str) -> RecordLock | None:
    stmt = select(RecordLock).where(
        RecordLock.unlocked_at.is_(None),
        RecordLock.scope == target.scope,
        RecordLock.kind == kind,
    )
    if target.scope == "centre":
        stmt = stmt.where(RecordLock.centre_id == target.centre_id)
    elif target.scope == "patient":
        stmt = stmt.where(RecordLock.patient_id == target.patient_id)
    elif target.scope == "form":
        stmt = stmt.where(
            RecordLock.table_name == target.table_name, RecordLock.record_id == target.record_id
        )
    return session.scalars(stmt).first()


@service(Action.WRITE, Resource.LOCK)
def lock(
    ctx: Ctx, scope: str, ident: str | None, reason: str | None, kind: str = "lock"
) -> RecordLock:
    """Lock (nothing changes) or freeze (no data entry; queries, SDV, signatures go on) the
    target, with the reason; an audit row like every other."""
    _choice(kind, "kind", KINDS)
    why = _reason(reason)
    target = _resolve(ctx, scope, ident)
    if kind == "freeze" and scope != "study":
        raise invalid_worded(
            "kind",
            "only_study_frozen",
            N_("{field}: only the study is frozen (lock the {scope} instead)"),
            "only the study is frozen",
            "lock, for a " + scope,
            field=Word(_LABELS["kind"]),
            scope=Word(SCOPE_NAMES[scope]),
        )
    if _active(ctx.session, target, kind) is not None:
        raise refusal(
            Conflict,
            "already_locked",
            N_("{target} is already locked")
            if kind == "lock"
            else N_("{target} is already frozen"),
            target=lock_named(target.label),
        )
    row = RecordLock(
        scope=target.scope,
        kind=kind,
        centre_id=target.centre_id if target.scope == "centre" else None,
        patient_id=target.patient_id if target.scope in ("patient", "form") else None,
        table_name=target.table_name,
        record_id=target.record_id,
        label=target.label,
        reason=why,
        locked_by=ctx.actor.username,
        locked_at=ctx.now(),
    )
    ctx.session.add(row)
    ctx.session.flush()
    if scope == "study" and kind == "lock":
        _anchor_after_commit(ctx, row)
    return row


#: The checkpoint written after each database lock, by lock id (read by :func:`lock_database`).
CHECKPOINTS: dict[int, Path] = {}


def _anchor_after_commit(ctx: Ctx, row: RecordLock) -> None:
    """A database lock is anchored by a signed audit checkpoint of the locked database, written
    once the lock is committed, whichever path locked it. The signing key is loaded first, so
    without it nothing is locked (NotConfigured)."""
    from sqlalchemy import event

    from reluth.core import integrity
    from reluth.db import checkpoint

    settings = ctx.trial.settings
    checkpoint.load_signing_key(settings.checkpoint_key_path)
    engine = ctx.session.get_bind()
    lock_id, trial = row.id, ctx.trial

    def anchor(_session: Session) -> None:
        # Runs after the lock's commit, where the session may emit no SQL: a failure here must
        # not turn a committed lock into an error (the next `reluth audit checkpoint` or the
        # daily job anchors the head); it is logged and no checkpoint path is reported.
        assert isinstance(engine, Engine)
        try:
            CHECKPOINTS[lock_id] = integrity.after_database_lock(engine, settings, trial.now())
        except Exception:
            logging.getLogger(__name__).exception("checkpoint after database lock %s", lock_id)

    event.listen(ctx.session, "after_commit", anchor, once=True)


@service(Action.WRITE, Resource.LOCK)
def unlock(
    ctx: Ctx, scope: str, ident: str | None, reason: str | None, kind: str = "lock"
) -> RecordLock:
    """Lift the active lock (or freeze) of the target, with the reason (an audited update)."""
    _choice(kind, "kind", KINDS)
    why = _reason(reason)
    target = _resolve(ctx, scope, ident)
    row = _active(ctx.session, target, kind)
    if row is None:
        raise refusal(
            Conflict,
            "not_locked",
            N_("{target} is not locked") if kind == "lock" else N_("{target} is not frozen"),
            target=lock_named(target.label),
        )
    if ctx.writing.reason is None:
        ctx.writing.reason = why
    row.unlocked_by = ctx.actor.username
    row.unlocked_at = ctx.now()
    row.unlock_reason = why
    ctx.session.flush()
    return row


@dataclass(frozen=True)
class LockView:
    id: int
    scope: str
    kind: str
    label: str
    reason: str
    locked_by: str
    locked_at: dt.datetime
    table_name: str | None
    record_id: str | None


def lock_view(row: RecordLock) -> LockView:
    return LockView(
        row.id,
        row.scope,
        row.kind,
        row.label,
        row.reason,
        row.locked_by,
        row.locked_at,
        row.table_name,
        row.record_id,
    )


@service(Action.READ, Resource.LOCK)
def active_locks(ctx: Ctx, patient_code: str | None = None) -> list[LockView]:
    """The active locks and freezes the actor may see; with ``patient_code``, those covering
    that patient or one of its forms."""
    rows = list(
        ctx.session.scalars(
            select(RecordLock).where(RecordLock.unlocked_at.is_(None)).order_by(RecordLock.id)
        )
    )
    if patient_code is None:
        return [
            lock_view(r)
            for r in rows
            if r.scope == "study"
            or ctx.sees_centre(r.centre_id if r.scope == "centre" else _centre_of(ctx, r))
        ]
    patient = patients.get_patient(ctx, patient_code)
    owner = Owner(patient.id, patient.centre_id, (("patients", str(patient.id)),))
    return [
        lock_view(r)
        for r in rows
        if covers(r, owner, review=False) or (r.scope == "form" and r.patient_id == patient.id)
    ]


def _centre_of(ctx: Ctx, row: RecordLock) -> int | None:
    patient = ctx.session.get(Patient, row.patient_id) if row.patient_id else None
    return None if patient is None else patient.centre_id


# ------------------------------------------------------------------ the database lock


def lock_database(
    engine: Engine, actor: Actor, trial: Trial, reason: str | None, kind: str = "lock"
) -> tuple[RecordLock, Path | None]:
    """Lock (or freeze) the study in its own transaction; a lock returns the signed audit
    checkpoint written once it was committed."""
    with writing(engine, actor, trial, reason=reason) as ctx:
        row = lock(ctx, "study", None, reason, kind)
    return row, CHECKPOINTS.pop(row.id, None)
