"""The lifecycle at the one write door: every audited flush, whatever called it (a page, the
API, the CLI, an import, the dosimetry service, the demo), passes :func:`check_flush`, which

* refuses (:class:`reluth.errors.Locked`) a change to a row under a lock of its form instance,
  its patient, its centre or the study, and a data change under a freeze (queries, SDV and
  signatures go on during a freeze: ICH E6(R3) 4.2 data lock; 21 CFR 11.10(a));
* records, as rows of their own in the same transaction (hence audit rows), that a change to a
  signed value invalidates its signatures (21 CFR 11.70) and clears its SDV;

and every audited commit passes :func:`recheck_locks`: the locks are read once per transaction
for the flushes, so a lock another transaction committed meanwhile is looked for again, fresh,
over every row this transaction changed. On PostgreSQL the re-check and a new lock serialize on
an advisory lock (shared by writers at commit, exclusive for the locking transaction until it
commits), so no write can commit past a lock committed before it (SQLite has one writer).

The database layer knows no domain; the rows' owners are resolved here: a row's patient is its
``patient_id`` (the patient row itself for ``patients``), or that of its parent form instance
for rows stored under one (:func:`register_owner`, e.g. a lesion under its tumour assessment).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, exists, func, inspect, select
from sqlalchemy.orm import Session

from reluth.db.session import SOLE_WRITER, register_commit_check, register_flush_guard
from reluth.errors import Locked
from reluth.i18n import N_
from reluth.i18n.reasons import Reason, from_english, refusal
from reluth.lifecycle.models import (
    RecordLock,
    SdvClearance,
    SdvMark,
    Signature,
    SignatureInvalidation,
)
from reluth.patients.models import Patient

#: The lifecycle's own control rows: never locked (a lock must stay liftable).
CONTROL_TABLES = frozenset({"record_locks", "principal_investigators"})
#: Review acts on the data: allowed under a freeze, refused under a lock.
REVIEW_TABLES = frozenset({"data_queries", "sdv_marks", "signatures"})
#: Written by this guard itself, as the consequence of a change that passed it.
CONSEQUENCE_TABLES = frozenset({"signature_invalidations", "sdv_clearances"})

Key = tuple[str, str]  # (table_name, record_id)

#: The tables of a patient's casebook (what the investigator enters and signs): a new row in one
#: of them changes a signed casebook. Derived and sponsor-side rows (the RECIST engine's
#: evaluations, SAE receipts, dose results, allocation slots) are not signed by the site.
CASEBOOK_TABLES = frozenset(
    {
        "patients",
        "screenings",
        "inclusions",
        "pre_randomization_assessments",
        "randomizations",
        "administrations",
        "visits",
        "lab_results",
        "adverse_events",
        "qol_questionnaires",
        "tumour_assessments",
        "lesion_measurements",
        "deaths",
        "end_of_study",
    }
)


@dataclass(frozen=True)
class Owner:
    """Whose a row is: its patient (None for a patient not yet flushed), centre, and the form
    instances it belongs to (itself, and its parent record if it is stored under one)."""

    patient_id: int | None
    centre_id: int | None
    records: tuple[Key, ...]


#: How a row that has no ``patient_id`` of its own finds it: ``(patient_id, parent records)``.
ParentResolver = Callable[[Session, Any], tuple[int | None, tuple[Key, ...]]]
_RESOLVERS: dict[str, ParentResolver] = {}


def register_owner(table_name: str, resolver: ParentResolver) -> None:
    """Declare how rows of ``table_name`` find their patient and parent form instance."""
    _RESOLVERS[table_name] = resolver


def record_key(obj: Any) -> Key:
    """The (table, record id) of a mapped row, as the audit trail names it."""
    mapper = inspect(obj).mapper
    ident = mapper.primary_key_from_instance(obj)
    return obj.__tablename__, "/".join("" if v is None else str(v) for v in ident)


def _parent(model: type, fk: str, table: str) -> ParentResolver:
    def resolve(session: Session, obj: Any) -> tuple[int | None, tuple[Key, ...]]:
        parent_id = getattr(obj, fk)
        parent = session.get(model, parent_id) if parent_id is not None else None
        pid = getattr(parent, "patient_id", None)
        return pid, ((table, str(parent_id)),) if parent_id is not None else ()

    return resolve


def _referenced(session: Session, obj: Any) -> tuple[int | None, tuple[Key, ...]]:
    """SDV marks and signatures belong to the record they verify or sign."""
    return obj.patient_id, ((obj.table_name, obj.record_id),)


def _install_resolvers() -> None:
    from reluth.response.models import LesionMeasurement, RecistEvaluation, TumourAssessment
    from reluth.safety.models import AdverseEvent, SaeReceipt

    register_owner(
        LesionMeasurement.__tablename__,
        _parent(TumourAssessment, "assessment_id", "tumour_assessments"),
    )
    register_owner(
        "recist_time_points", _parent(RecistEvaluation, "evaluation_id", "recist_evaluations")
    )
    register_owner(
        SaeReceipt.__tablename__, _parent(AdverseEvent, "adverse_event_id", "adverse_events")
    )
    register_owner(SdvMark.__tablename__, _referenced)
    register_owner(Signature.__tablename__, _referenced)


class _Owners:
    """Owners of this flush's rows, with each patient's centre looked up once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.centres: dict[int, int | None] = {}

    def centre_of(self, patient_id: int) -> int | None:
        if patient_id not in self.centres:
            patient = self.session.get(Patient, patient_id)
            self.centres[patient_id] = None if patient is None else patient.centre_id
        return self.centres[patient_id]

    def of(self, obj: Any) -> Owner | None:
        table = obj.__tablename__
        key = record_key(obj)
        if isinstance(obj, Patient):
            return Owner(obj.id, obj.centre_id, (key,))
        resolver = _RESOLVERS.get(table)
        if resolver is not None:
            pid, parents = resolver(self.session, obj)
        elif hasattr(obj, "patient_id"):
            pid, parents = obj.patient_id, ()
        else:
            return None  # not a patient's data (accounts, centres, the allocation list)
        if pid is None:
            return None
        return Owner(pid, self.centre_of(pid), (key, *parents))


# ------------------------------------------------------------------------ session state

_FLAGS = "reluth_lifecycle_flags"
_LOCKS = "reluth_lifecycle_locks"
_SPENT = "reluth_lifecycle_spent"  # signature / SDV ids already invalidated in this session
_WRITTEN = "reluth_lifecycle_written"  # (action, row) of this transaction, for the commit check
#: The PostgreSQL advisory lock key the commit re-check and a new lock serialize on.
LOCK_ADVISORY_KEY = 0x52454C4C  # "RELL"


_SCHEMA_READY: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _schema_ready(session: Session) -> bool:
    """Whether the database has the lifecycle tables (a database at an older revision, being
    migrated, has none, and nothing of it can be locked yet). Remembered once true."""
    bind = session.get_bind()
    if _SCHEMA_READY.get(bind):
        return True
    ready = inspect(session.connection()).has_table("record_locks")
    if ready:
        _SCHEMA_READY[bind] = True
    return ready


#: Built once (building it cost more CPU than running it); Core: no entity to load.
_ANY_FLAGS = select(
    exists().where(RecordLock.unlocked_at.is_(None)),
    exists().where(Signature.id.is_not(None)),
    exists().where(SdvMark.id.is_not(None)),
)
_ACTIVE_LOCKS = select(RecordLock).where(RecordLock.unlocked_at.is_(None))
#: The commit's fresh read of the active locks: Core rows (the columns by name, as the
#: entity's), no entity to load (the write's own flushes read them as entities, once).
_FRESH_LOCKS = select(*RecordLock.__table__.c).where(RecordLock.unlocked_at.is_(None))
_SHARED_ADVISORY = select(func.pg_advisory_xact_lock_shared(LOCK_ADVISORY_KEY))


def _flags(session: Session, new: Iterable[Any], dirty: Iterable[Any]) -> dict[str, bool]:
    """Whether any lock, signature or SDV mark exists (asked once per unit of work, and again
    when this unit of work writes one): a trial without them pays one query per transaction."""
    flags: dict[str, bool] | None = session.info.get(_FLAGS)
    touched = {getattr(o, "__tablename__", "") for o in (*new, *dirty)}
    if flags is None and not _schema_ready(session):
        flags = {"locks": False, "signatures": False, "sdv": False}
        session.info[_FLAGS] = flags
        return flags
    if flags is None or "record_locks" in touched:
        row = session.connection().execute(_ANY_FLAGS).one()
        flags = {"locks": bool(row[0]), "signatures": bool(row[1]), "sdv": bool(row[2])}
        session.info[_FLAGS] = flags
        session.info.pop(_LOCKS, None)
    if "record_locks" in touched:
        flags["locks"] = True
    if "signatures" in touched:
        flags["signatures"] = True
    if "sdv_marks" in touched:
        flags["sdv"] = True
    return flags


def _active_locks(session: Session) -> list[RecordLock]:
    locks: list[RecordLock] | None = session.info.get(_LOCKS)
    if locks is None:
        locks = list(session.scalars(_ACTIVE_LOCKS))
        locks += [o for o in session.new if isinstance(o, RecordLock)]
        session.info[_LOCKS] = locks
    return [lk for lk in locks if lk.unlocked_at is None]


def covers(lock: RecordLock | Row[Any], owner: Owner, review: bool) -> bool:
    """Whether ``lock`` refuses a change to a row of ``owner`` (``review``: a query, an SDV
    mark or a signature, which a freeze allows)."""
    if lock.kind == "freeze" and review:
        return False
    if lock.scope == "study":
        return True
    if lock.scope == "centre":
        return owner.centre_id is not None and owner.centre_id == lock.centre_id
    if lock.scope == "patient":
        return owner.patient_id is not None and owner.patient_id == lock.patient_id
    return (lock.table_name or "", lock.record_id or "") in owner.records


#: What a lock applies to, as its ``label`` is stored (English; shown in the reader's language).
LOCK_LABELS: tuple[tuple[str, str], ...] = (
    ("lock.study", N_("the study")),
    ("lock.centre", N_("centre {centre}")),
    ("lock.patient", N_("patient {patient}")),
    ("lock.form", N_("form {table}/{record} of patient {patient}")),
)


def lock_named(label: str) -> Reason | str:
    """A lock's stored label in the reader's language (the stored English if it is another)."""
    return from_english(label, LOCK_LABELS) or label


def lock_refusal(lock: RecordLock | Row[Any], table: str, rid: str, new: bool) -> Locked:
    """The write to ``table``/``rid`` (``new``: a row added) is under ``lock``: who set it,
    when and why, in the reader's language."""
    from reluth.forms.registry import table_named  # the registry only once a write is refused

    at = lock.locked_at.strftime("%Y-%m-%d %H:%M UTC") if lock.locked_at else "now"
    what = (
        Reason("lock.new_row", N_("a new {form} record"), {"form": table_named(table)})
        if new
        else Reason("lock.row", N_("{form} {record}"), {"form": table_named(table), "record": rid})
    )
    return refusal(
        Locked,
        "locked",
        N_(
            "{target} is locked (by {user} on {at}: {reason}); {what} cannot change until "
            "it is unlocked"
        )
        if lock.kind == "lock"
        else N_(
            "{target} is frozen (by {user} on {at}: {reason}); {what} cannot change until "
            "it is unfrozen"
        ),
        target=lock_named(lock.label),
        user=lock.locked_by,
        at=at,
        reason=lock.reason,
        what=what,
    )


# ------------------------------------------------------------------------------- the guard


@dataclass(frozen=True)
class _Change:
    action: str  # insert | update | delete
    owner: Owner
    key: Key
    fields: frozenset[str]  # changed columns (all of them for an insert or delete)
    casebook: bool = False  # a row of the site's casebook (what a casebook signature covers)


def in_casebook(session: Session, obj: Any) -> bool:
    """Whether ``obj`` is part of the site's casebook: a row of :data:`CASEBOOK_TABLES`, except
    the blinded central reads (and their lesions), which the central reviewer enters."""
    from reluth.response.models import LesionMeasurement, TumourAssessment

    if obj.__tablename__ not in CASEBOOK_TABLES:
        return False
    if isinstance(obj, LesionMeasurement):
        obj = session.get(TumourAssessment, obj.assessment_id) if obj.assessment_id else None
    return not (isinstance(obj, TumourAssessment) and obj.reader == "central")


def _changed_fields(obj: Any) -> frozenset[str]:
    state = inspect(obj)
    return frozenset(
        a.key for a in state.mapper.column_attrs if state.attrs[a.key].history.has_changes()
    )


def _all_fields(obj: Any) -> frozenset[str]:
    return frozenset(a.key for a in inspect(obj).mapper.column_attrs)


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def check_flush(session: Session, new: list[Any], dirty: list[Any], deleted: list[Any]) -> None:
    """The lifecycle's check of one flush (registered with the unit of work)."""
    written: list[tuple[str, Any]] = session.info.setdefault(_WRITTEN, [])
    for action, objs in (("insert", new), ("update", dirty), ("delete", deleted)):
        for obj in objs:
            if obj.__tablename__ not in CONTROL_TABLES | CONSEQUENCE_TABLES:
                written.append((action, obj))
    if _postgres(session) and any(isinstance(o, RecordLock) for o in (*new, *dirty)):
        # held until this transaction ends: writers' commit re-checks wait for the lock
        session.execute(select(func.pg_advisory_xact_lock(LOCK_ADVISORY_KEY)))
    flags = _flags(session, new, dirty)
    if not any(flags.values()):
        return
    owners = _Owners(session)
    changes: list[_Change] = []
    for action, objs in (("insert", new), ("update", dirty), ("delete", deleted)):
        for obj in objs:
            table = obj.__tablename__
            if table in CONTROL_TABLES or table in CONSEQUENCE_TABLES:
                continue
            owner = owners.of(obj)
            if owner is None:
                continue
            fields = _changed_fields(obj) if action == "update" else _all_fields(obj)
            changes.append(
                _Change(action, owner, record_key(obj), fields, in_casebook(session, obj))
            )
    if not changes:
        return
    if flags["locks"]:
        locks = _active_locks(session)
        for change in changes:
            review = change.key[0] in REVIEW_TABLES
            for lock in locks:
                if covers(lock, change.owner, review):
                    table, rid = change.key
                    raise lock_refusal(lock, table, rid, change.action == "insert")
    data = [c for c in changes if c.key[0] not in REVIEW_TABLES]
    if not data:
        return
    actor = session.info["reluth_actor"]
    now = session.info["reluth_clock"]()
    spent: set[tuple[str, int]] = session.info.setdefault(_SPENT, set())
    if flags["signatures"]:
        _invalidate_signatures(session, data, actor.username, now, spent)
    if flags["sdv"]:
        _clear_sdv(session, data, actor.username, now, spent)


def _describe(change: _Change, field: str | None = None) -> str:
    table, rid = change.key
    text = f"{change.action} {table}/{rid}" if rid else f"{change.action} {table}"
    if field:
        text += f" {field}"
    return text[:200]


def _invalidate_signatures(
    session: Session, data: list[_Change], username: str, now: Any, spent: set[tuple[str, int]]
) -> None:
    pids = {c.owner.patient_id for c in data if c.owner.patient_id is not None}
    if not pids:
        return
    signatures = session.scalars(
        select(Signature)
        .outerjoin(SignatureInvalidation, SignatureInvalidation.signature_id == Signature.id)
        .where(SignatureInvalidation.id.is_(None), Signature.patient_id.in_(pids))
    ).all()
    for sig in signatures:
        if sig.id is None or ("sig", sig.id) in spent:
            continue
        covered = set(json.loads(sig.covered))
        for change in data:
            if change.owner.patient_id != sig.patient_id:
                continue
            hit = any(f"{t}/{r}" in covered for t, r in change.owner.records) or (
                sig.scope == "patient" and change.action == "insert" and change.casebook
            )
            if hit:
                spent.add(("sig", sig.id))
                session.add(
                    SignatureInvalidation(
                        signature_id=sig.id, at=now, username=username, change=_describe(change)
                    )
                )
                break


def _clear_sdv(
    session: Session, data: list[_Change], username: str, now: Any, spent: set[tuple[str, int]]
) -> None:
    pids = {c.owner.patient_id for c in data if c.owner.patient_id is not None}
    if not pids:
        return
    marks = session.scalars(
        select(SdvMark)
        .outerjoin(SdvClearance, SdvClearance.sdv_id == SdvMark.id)
        .where(SdvClearance.id.is_(None), SdvMark.patient_id.in_(pids))
    ).all()
    for mark in marks:
        if mark.id is None or ("sdv", mark.id) in spent:
            continue
        target = (mark.table_name, mark.record_id)
        for change in data:
            if target not in change.owner.records:
                continue
            own_row = change.key == target
            if mark.field is not None and not (own_row and mark.field in change.fields):
                continue
            spent.add(("sdv", mark.id))
            session.add(
                SdvClearance(
                    sdv_id=mark.id,
                    at=now,
                    username=username,
                    change=_describe(change, mark.field if own_row else None),
                )
            )
            break


def _may_have_owner(obj: Any) -> bool:
    """Whether a row may belong to a patient (cheap: resolves nothing)."""
    return isinstance(obj, Patient) or obj.__tablename__ in _RESOLVERS or hasattr(obj, "patient_id")


def recheck_locks(session: Session) -> None:
    """Commit check: look for the active locks again, fresh from the database (another
    transaction may have committed one since this one read them), over every row this
    transaction inserted, changed or deleted; refuse the commit naming the lock.

    When the transaction has been the database's sole writer since its first statement
    (SQLite's ``BEGIN IMMEDIATE``) no other transaction can have committed a lock since its
    flushes read them: the locks it read (and wrote) are still all there are, so they are
    checked without reading them again, and not at all when there were none. The rows' owners
    (their patient's centre) are resolved only when a lock is active."""
    written: list[tuple[str, Any]] = session.info.pop(_WRITTEN, [])
    written = [(action, obj) for action, obj in written if _may_have_owner(obj)]
    if not written or not _schema_ready(session):
        return
    locks: Sequence[RecordLock | Row[Any]]
    if session.info.get(SOLE_WRITER):
        if not session.info.get(_FLAGS, {}).get("locks", True):
            return
        locks = _active_locks(session)
    else:
        if _postgres(session):  # waits for a locking transaction to commit, then sees its lock
            session.connection().execute(_SHARED_ADVISORY)
        locks = session.connection().execute(_FRESH_LOCKS).all()
    if not locks:
        return
    owners = _Owners(session)
    for action, obj in written:
        owner = owners.of(obj)
        if owner is None:
            continue
        review = obj.__tablename__ in REVIEW_TABLES
        for lock in locks:
            if lock.unlocked_at is None and covers(lock, owner, review):
                table, rid = record_key(obj)
                raise lock_refusal(lock, table, rid, action == "insert")


_installed = False


def install() -> None:
    """Register the guard with the unit of work (idempotent; done when the core's writing
    context is imported, so every service transaction passes it)."""
    global _installed
    if not _installed:
        _install_resolvers()
        register_flush_guard(check_flush)
        register_commit_check(recheck_locks)
        _installed = True


install()
