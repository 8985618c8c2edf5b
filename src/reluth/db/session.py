"""The one door for writes: a unit of work whose session audits every change it commits.

    with unit_of_work(engine, actor=Actor("dupont", Role.INVESTIGATOR), reason=None) as uow:
        uow.session.add(thing)          # insert: audited, no reason needed
        other.value = 3                 # update of existing data: needs a reason
        uow.reason = "transcription error, source document p. 4"

Hooks on :class:`AuditedSession` turn each insert, update and delete of every mapped table
(except the audit tables and models marked ``__audit_exempt__ = True``) into audit rows,
and append them to the hash chain at commit, in the same transaction. An update or deletion
of existing data without a reason is refused before anything is written, whatever called it.
Bulk ``UPDATE``/``DELETE``/``INSERT`` statements through the session are refused because they
would bypass the hooks. On SQLite the transaction starts with ``BEGIN IMMEDIATE`` so writers
queue for the lock instead of failing mid-transaction.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event, inspect, select
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, sessionmaker
from sqlalchemy.orm.attributes import NO_VALUE

from reluth.db import audit
from reluth.errors import PermissionDenied, ValidationError

_PENDING = "reluth_audit_pending"
_ACTOR = "reluth_actor"
_REASON = "reluth_reason"
_CLOCK = "reluth_clock"
_INSERTED = "reluth_inserted"


@dataclass(frozen=True)
class Actor:
    """Who is writing: a username and the role they act in (a Role value)."""

    username: str
    role: str

    def __post_init__(self) -> None:
        if not self.username or not str(self.role):
            raise ValidationError("actor", "username and role are required", "a known user")
        object.__setattr__(self, "role", str(self.role))


class AuditedSession(Session):
    """A Session whose flushes are audited and whose commit seals the audit chain."""


class UnitOfWork:
    """One transaction; ``session`` for queries and changes, ``reason`` for corrections."""

    def __init__(self, session: AuditedSession) -> None:
        self.session = session

    @property
    def actor(self) -> Actor:
        actor: Actor = self.session.info[_ACTOR]
        return actor

    @property
    def reason(self) -> str | None:
        value: str | None = self.session.info.get(_REASON)
        return value

    @reason.setter
    def reason(self, value: str | None) -> None:
        self.session.info[_REASON] = _clean_reason(value)

    def flush(self) -> None:
        self.session.flush()

    def record_event(self, action: str, table_name: str, record_id: str, detail: Any) -> None:
        """Put an event that changes no data (an export, a report read) into the audit trail:
        one row sealed into the hash chain at commit, like the rows of a change, with the
        actor, the time and ``detail`` (JSON) as its new value. ``action`` names the event in
        at most 8 characters, e.g. ``export``."""
        if not action or len(action) > 8 or action in ("insert", "update", "delete"):
            raise ValidationError("action", repr(action), "an event name of 1-8 characters")
        pending: list[audit.AuditEntry] = self.session.info.setdefault(_PENDING, [])
        pending.append(
            _entry(self.session, action, table_name, record_id, None, NO_VALUE, detail, self.reason)
        )


def _clean_reason(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    return text or None


def require_reason(session: Session, what: str) -> str:
    """The reason of the open unit of work, for a service about to change ``what`` (saved
    data). Refused up front, naming the field, so no partial change is ever attempted; the
    flush hook would refuse it too, but only once the first changed row is flushed."""
    reason: str | None = session.info.get(_REASON)
    if reason is None:
        raise ValidationError(
            "reason",
            f"a reason is required to change {what}",
            "a non-empty explanation, e.g. 'transcription error corrected from source'",
        )
    return reason


SessionSource = Engine | sessionmaker[Any] | Callable[[], Session]


def _bind_of(source: SessionSource) -> Engine:
    if isinstance(source, Engine):
        return source
    if isinstance(source, sessionmaker):
        bind = source.kw.get("bind")
        if isinstance(bind, Engine):
            return bind
    raise ValidationError("bind", "cannot find the engine", "an Engine or a bound sessionmaker")


@contextmanager
def unit_of_work(
    source: SessionSource,
    actor: Actor,
    reason: str | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> Iterator[UnitOfWork]:
    """Open one audited transaction; commit on normal exit, roll back on any exception."""
    engine = _bind_of(source)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        # SQLite has one writer at a time; queue this process's writers on a lock (fair
        # enough) rather than on SQLite's busy handler (sleep-and-poll, starves some threads).
        _writer_lock(engine).acquire()
    session = AuditedSession(bind=engine, expire_on_commit=False, autoflush=True)
    session.info[_ACTOR] = actor
    session.info[_REASON] = _clean_reason(reason)
    session.info[_CLOCK] = clock or (lambda: dt.datetime.now(dt.UTC))
    try:
        if sqlite:
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        yield UnitOfWork(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        if sqlite:
            _writer_lock(engine).release()


_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> threading.RLock:
    with _LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(engine)
        if lock is None:
            lock = _WRITER_LOCKS[engine] = threading.RLock()
        return lock


@contextmanager
def read_session(source: SessionSource) -> Iterator[Session]:
    """A session for reading only: any attempt to flush changes is refused."""
    engine = _bind_of(source)
    session = Session(bind=engine, expire_on_commit=False, autoflush=False)
    session.info["reluth_read_only"] = True
    try:
        yield session
    finally:
        session.close()  # ends the transaction without expiring what was read


@event.listens_for(Session, "before_flush")
def _refuse_read_only(session: Session, _ctx: Any, _instances: Any) -> None:
    if session.info.get("reluth_read_only") and (session.new or session.dirty or session.deleted):
        raise PermissionDenied("this session is read-only; writes go through unit_of_work")


# ---------------------------------------------------------------------------------- hooks


def _audited(obj: Any) -> bool:
    table = getattr(obj, "__tablename__", None)
    return (
        table is not None
        and table not in audit.AUDIT_TABLES
        and not getattr(obj, "__audit_exempt__", False)
    )


def _record_id(mapper: Mapper[Any], obj: Any) -> str:
    ident = mapper.primary_key_from_instance(obj)
    return "/".join("" if v is None else str(v) for v in ident)


def _entry(
    session: Session,
    action: str,
    table: str,
    record_id: str,
    field: str | None,
    old: Any,
    new: Any,
    reason: str | None,
) -> audit.AuditEntry:
    actor: Actor = session.info[_ACTOR]
    clock: Callable[[], dt.datetime] = session.info[_CLOCK]
    return audit.AuditEntry(
        at_utc=audit.utc_stamp(clock()),
        username=actor.username,
        role=actor.role,
        action=action,
        table_name=table,
        record_id=record_id,
        field=field,
        old_value=None if old is NO_VALUE else audit.json_value(old),
        new_value=None if new is NO_VALUE else audit.json_value(new),
        reason=reason,
    )


def _related_ids(values: Any) -> list[str]:
    out = []
    for v in values or ():
        m = inspect(v).mapper
        out.append(_record_id(m, v))
    return sorted(out)


def _snapshot(mapper: Mapper[Any], obj: Any) -> dict[str, Any]:
    state = inspect(obj)
    data: dict[str, Any] = {}
    for attr in mapper.column_attrs:
        if attr.key in state.dict:
            data[attr.key] = state.dict[attr.key]
    for rel in mapper.relationships:
        if rel.secondary is not None and rel.key in state.dict:
            data[rel.key] = _related_ids(state.dict[rel.key])
    return data


def _committed_value(session: Session, mapper: Mapper[Any], obj: Any, key: str) -> Any:
    """The value in the database of a column attribute that was set without being loaded."""
    column = mapper.columns[key]
    pk_cols = mapper.primary_key
    ident = mapper.primary_key_from_instance(obj)
    stmt = select(column).where(*[c == v for c, v in zip(pk_cols, ident, strict=True)])
    return session.connection().execute(stmt).scalar_one_or_none()


@event.listens_for(AuditedSession, "before_flush")
def _before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    if _ACTOR not in session.info:
        if session.new or session.dirty or session.deleted:
            raise PermissionDenied("writes need an actor: open the session with unit_of_work()")
        return
    reason: str | None = session.info.get(_REASON)
    pending: list[audit.AuditEntry] = session.info.setdefault(_PENDING, [])
    inserted: set[tuple[str, str]] = session.info.setdefault(_INSERTED, set())
    changes: list[tuple[str, str, str | None, Any, Any]] = []
    for obj in list(session.dirty):
        if not _audited(obj) or not session.is_modified(obj):
            continue
        state = inspect(obj)
        mapper = state.mapper
        rid = _record_id(mapper, obj)
        for attr in mapper.column_attrs:
            hist = state.attrs[attr.key].history
            if not hist.has_changes():
                continue
            new = hist.added[0] if hist.added else None
            old = (
                hist.deleted[0]
                if hist.deleted
                else _committed_value(session, mapper, obj, attr.key)
            )
            if old == new:
                continue
            changes.append((obj.__tablename__, rid, attr.key, old, new))
        for rel in mapper.relationships:
            if rel.secondary is None:
                continue
            hist = state.attrs[rel.key].history
            if not hist.has_changes():
                continue
            after = _related_ids(list(hist.unchanged) + list(hist.added))
            before = _related_ids(list(hist.unchanged) + list(hist.deleted))
            changes.append((obj.__tablename__, rid, rel.key, before, after))
    deletions: list[tuple[str, str, dict[str, Any]]] = []
    for obj in list(session.deleted):
        if not _audited(obj):
            continue
        mapper = inspect(obj).mapper
        for attr in mapper.column_attrs:
            getattr(obj, attr.key)  # load expired values so the deletion records them
        deletions.append((obj.__tablename__, _record_id(mapper, obj), _snapshot(mapper, obj)))
    # Existing data needs a reason; rows inserted earlier in this same transaction do not.
    existing = [f"{c[0]}/{c[1]}/{c[2]}" for c in changes if (c[0], c[1]) not in inserted]
    existing += [f"delete {d[0]}/{d[1]}" for d in deletions if (d[0], d[1]) not in inserted]
    if existing and reason is None:
        what = existing[0]
        raise ValidationError(
            "reason",
            f"a reason is required to change or delete existing data ({what})",
            "a non-empty explanation, e.g. 'transcription error corrected from source'",
        )
    for table, rid, field, old, new in changes:
        pending.append(_entry(session, "update", table, rid, field, old, new, reason))
    for table, rid, snap in deletions:
        pending.append(_entry(session, "delete", table, rid, None, snap, NO_VALUE, reason))


@event.listens_for(AuditedSession, "after_flush")
def _after_flush(session: Session, _ctx: Any) -> None:
    if _ACTOR not in session.info:
        return
    pending: list[audit.AuditEntry] = session.info.setdefault(_PENDING, [])
    for obj in list(session.new):
        if not _audited(obj):
            continue
        mapper = inspect(obj).mapper
        rid = _record_id(mapper, obj)
        session.info.setdefault(_INSERTED, set()).add((obj.__tablename__, rid))
        pending.append(
            _entry(
                session,
                "insert",
                obj.__tablename__,
                rid,
                None,
                NO_VALUE,
                _snapshot(mapper, obj),
                session.info.get(_REASON),
            )
        )


@event.listens_for(AuditedSession, "before_commit")
def _before_commit(session: Session) -> None:
    session.flush()
    pending: list[audit.AuditEntry] = session.info.pop(_PENDING, [])
    session.info.pop(_INSERTED, None)
    if pending:
        audit.append(session.connection(), pending)


@event.listens_for(AuditedSession, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_INSERTED, None)


@event.listens_for(AuditedSession, "do_orm_execute")
def _refuse_bulk(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if mapper is not None and getattr(mapper.class_, "__audit_exempt__", False):
        return
    if state.is_update or state.is_delete or (state.is_insert and not state.is_select):
        raise PermissionDenied(
            "bulk INSERT/UPDATE/DELETE statements bypass the audit trail; change objects instead"
        )
