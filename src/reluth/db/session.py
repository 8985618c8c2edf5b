"""The one door for writes: a unit of work whose session audits every change it commits.

    with unit_of_work(engine, actor=actor, reason=None) as uow:   # actor: an authenticated Actor
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
import hashlib
import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Engine, Float, Integer, Numeric, String, Text, event, inspect, select
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, sessionmaker
from sqlalchemy.orm.attributes import NO_VALUE

from reluth.db import audit
from reluth.errors import PermissionDenied, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import refusal

_PENDING = "reluth_audit_pending"
_ACTOR = "reluth_actor"
_REASON = "reluth_reason"
_CLOCK = "reluth_clock"
_INSERTED = "reluth_inserted"
_ON_ROLLBACK = "reluth_on_rollback"
#: Set in ``session.info`` when the transaction holds the database's only writer lock from its
#: first statement (SQLite's ``BEGIN IMMEDIATE``): no other transaction can commit anything
#: while it runs, so what it read stays what is committed until its own commit.
SOLE_WRITER = "reluth_sole_writer"


class AuditActor(Protocol):
    """What the audit trail records of whoever writes: the database layer knows no more of the
    authenticated :class:`reluth.auth.actor.Actor` than this (it imports no domain code)."""

    @property
    def username(self) -> str: ...

    @property
    def role(self) -> Any: ...

    @property
    def via(self) -> Any: ...


class AuditedSession(Session):
    """A Session whose flushes are audited and whose commit seals the audit chain."""


class UnitOfWork:
    """One transaction; ``session`` for queries and changes, ``reason`` for corrections."""

    def __init__(self, session: AuditedSession) -> None:
        self.session = session

    @property
    def actor(self) -> AuditActor:
        actor: AuditActor = self.session.info[_ACTOR]
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


#: The longest reason kept (it is copied into every audit row of the change).
REASON_MAX = 2000


def _clean_reason(value: str | None) -> str | None:
    """A reason as stored: trimmed, at most REASON_MAX characters of printable text (new lines
    and tabs allowed); refused naming the field otherwise, on every path alike."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            "reason", f"expected text, got {type(value).__name__}", "text", code="not_text"
        )
    text = value.strip()
    if len(text) > REASON_MAX:
        raise too_long("reason", len(text), REASON_MAX)
    if any(not (ch.isprintable() or ch in "\n\t") for ch in text):
        raise ValidationError("reason", N_("contains control characters"), N_("printable text"))
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
            code="reason_required",
            params={"what": what},
        )
    return reason


def too_long(field: str, length: int, limit: int) -> ValidationError:
    """A text longer than its column (or its rule) allows, naming the field and the limit."""
    return ValidationError(
        field,
        f"{length} characters",
        f"at most {limit}",
        code="text_too_long",
        params={"length": length, "limit": limit},
    )


SessionSource = Engine | sessionmaker[Any] | Callable[[], Session]


def _bind_of(source: SessionSource) -> Engine:
    if isinstance(source, Engine):
        return source
    if isinstance(source, sessionmaker):
        bind = source.kw.get("bind")
        if isinstance(bind, Engine):
            return bind
    raise ValidationError(
        "bind", N_("cannot find the engine"), N_("an Engine or a bound sessionmaker")
    )


@contextmanager
def unit_of_work(
    source: SessionSource,
    actor: AuditActor,
    reason: str | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> Iterator[UnitOfWork]:
    """Open one audited transaction; commit on normal exit, roll back on any exception."""
    if not getattr(actor, "username", None) or not str(getattr(actor, "role", "")):
        raise refusal(
            PermissionDenied,
            "actor_required",
            N_("writes need an authenticated actor (username and role)"),
        )
    engine = _bind_of(source)
    cleaned = _clean_reason(reason)  # refused before the writer lock is taken, never holding it
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        # SQLite has one writer at a time; queue this process's writers on a lock (fair
        # enough) rather than on SQLite's busy handler (sleep-and-poll, starves some threads).
        _writer_lock(engine).acquire()
    session = AuditedSession(bind=engine, expire_on_commit=False, autoflush=True)
    session.info[_ACTOR] = actor
    session.info[_REASON] = cleaned
    session.info[_CLOCK] = clock or (lambda: dt.datetime.now(dt.UTC))
    try:
        if sqlite:
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            session.info[SOLE_WRITER] = True
        yield UnitOfWork(session)
        session.commit()
    except BaseException:
        session.rollback()
        _run_after_rollback(engine, session.info.pop(_ON_ROLLBACK, []))
        raise
    finally:
        session.close()
        if sqlite:
            _writer_lock(engine).release()


def after_rollback(session: Session, write: Callable[[Engine], None]) -> None:
    """Run ``write(engine)`` if this unit of work rolls back, after the rollback and before its
    error reaches the caller: what a refused write must still leave behind (a failed signing
    password counted for throttling) goes in its own transaction, not in the one undone."""
    session.info.setdefault(_ON_ROLLBACK, []).append(write)


def session_now(session: Session) -> dt.datetime:
    """The unit of work's clock (the trial's, in tests and the demo), else the wall clock."""
    clock: Callable[[], dt.datetime] | None = session.info.get(_CLOCK)
    return clock() if clock is not None else dt.datetime.now(dt.UTC)


def _run_after_rollback(engine: Engine, writes: list[Callable[[Engine], None]]) -> None:
    for write in writes:
        try:
            write(engine)
        except Exception:  # the caller gets the original error; this one is logged
            logging.getLogger(__name__).exception("a write after rollback failed")


_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> threading.RLock:
    with _LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(engine)
        if lock is None:
            lock = _WRITER_LOCKS[engine] = threading.RLock()
        return lock


class ExemptSession(Session):
    """A session that may write only tables marked ``__audit_exempt__`` (browser sessions,
    login throttling, counters): everything else goes through :func:`unit_of_work`."""


@event.listens_for(ExemptSession, "before_flush")
def _only_exempt(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not getattr(obj, "__audit_exempt__", False):
            raise refusal(
                PermissionDenied,
                "audited_write",
                N_("{record} is audited: write it through unit_of_work, not here"),
                record=type(obj).__name__,
            )


@contextmanager
def exempt_transaction(source: SessionSource) -> Iterator[Session]:
    """A short unaudited write transaction for audit-exempt tables only (committed on success,
    rolled back on error). On SQLite it queues on the same writer lock as units of work."""
    engine = _bind_of(source)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        _writer_lock(engine).acquire()
    session = ExemptSession(bind=engine, expire_on_commit=False, autoflush=True)
    try:
        if sqlite:
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        if sqlite:
            _writer_lock(engine).release()


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
        raise refusal(
            PermissionDenied,
            "read_only_session",
            N_("this session is read-only; writes go through unit_of_work"),
        )


# ---------------------------------------------------------------------------- flush guards

#: A check every audited flush passes before anything is written: called with the session and
#: the audited rows about to be inserted, updated (really modified) and deleted. It may refuse
#: (raise a ReluthError) or add rows of its own (recorded in the same flush and audited). The
#: database layer knows no domain: the domain registers its guards (the lifecycle's locks,
#: signatures and SDV, :mod:`reluth.lifecycle.guard`).
FlushGuard = Callable[[Session, list[Any], list[Any], list[Any]], None]
_FLUSH_GUARDS: list[FlushGuard] = []


def register_flush_guard(guard: FlushGuard) -> None:
    """Add ``guard`` to the checks of every audited flush (once; idempotent)."""
    if guard not in _FLUSH_GUARDS:
        _FLUSH_GUARDS.append(guard)


def flush_guards() -> tuple[FlushGuard, ...]:
    return tuple(_FLUSH_GUARDS)


#: A check every audited commit passes once its changes are flushed, before the audit chain is
#: sealed: called with the session, it may refuse (raise a ReluthError: the transaction rolls
#: back) or add rows of its own (flushed and audited in the same transaction). The domain
#: registers them (the lifecycle's lock re-check, the registry's edit checks).
CommitCheck = Callable[[Session], None]
_COMMIT_CHECKS: list[CommitCheck] = []


def register_commit_check(check: CommitCheck) -> None:
    """Add ``check`` to the checks of every audited commit (once; idempotent)."""
    if check not in _COMMIT_CHECKS:
        _COMMIT_CHECKS.append(check)


def _run_guards(session: Session) -> None:
    if not _FLUSH_GUARDS:
        return
    new = [o for o in session.new if _audited(o)]
    dirty = [o for o in session.dirty if _audited(o) and session.is_modified(o)]
    deleted = [o for o in session.deleted if _audited(o)]
    if not (new or dirty or deleted):
        return
    with session.no_autoflush:
        for guard in _FLUSH_GUARDS:
            guard(session, new, dirty, deleted)


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
    actor: AuditActor = session.info[_ACTOR]
    clock: Callable[[], dt.datetime] = session.info[_CLOCK]
    return audit.AuditEntry(
        at_utc=audit.utc_stamp(clock()),
        username=actor.username,
        role=str(actor.role),
        auth_method=str(actor.via),
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


def _audited_value(attr: Any, value: Any) -> Any:
    """A column value as the audit trail keeps it: secrets such as password hashes (columns
    with ``info={"audit": "digest"}``) only as their SHA-256, so the trail can prove a change
    without holding the secret."""
    column = attr.columns[0] if getattr(attr, "columns", None) else None
    if column is not None and column.info.get("audit") == "digest" and value is not None:
        return "sha256:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()
    return value


def _snapshot(mapper: Mapper[Any], obj: Any) -> dict[str, Any]:
    state = inspect(obj)
    data: dict[str, Any] = {}
    for attr in mapper.column_attrs:
        if attr.key in state.dict:
            data[attr.key] = _audited_value(attr, state.dict[attr.key])
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


#: Free text without a declared length: the most a column holds (``info={"max_length": n}``
#: overrides it); longer input is refused by name before it reaches the database.
TEXT_MAX = 200_000
_INT_RANGE = {"Integer": (-(2**31), 2**31 - 1), "BigInteger": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class _Storable:
    """What :func:`check_storable` checks of one column, derived once per mapped class."""

    key: str
    limit: int | None  # the most characters a text holds (None: not text)
    multiline: bool  # free text: new lines and tabs allowed
    digits: int | None  # a fixed-point number's digits before the point (None: unchecked)
    numeric: bool  # a fixed-point (not float) column
    integer: tuple[int, int] | None  # an integer column's range


_STORABLE: dict[Mapper[Any], tuple[_Storable, ...]] = {}


def _storable(mapper: Mapper[Any]) -> tuple[_Storable, ...]:
    found = _STORABLE.get(mapper)
    if found is not None:
        return found
    out = []
    for attr in mapper.column_attrs:
        if not getattr(attr, "columns", None):
            continue
        column = attr.columns[0]
        kind = column.type
        limit = column.info.get("max_length") or getattr(kind, "length", None)
        if limit is None and isinstance(kind, Text | String):
            limit = TEXT_MAX
        numeric = isinstance(kind, Numeric) and not isinstance(kind, Float)
        precision, scale = getattr(kind, "precision", None), getattr(kind, "scale", None) or 0
        out.append(
            _Storable(
                key=attr.key,
                limit=limit,
                multiline=isinstance(kind, Text) or getattr(kind, "length", None) is None,
                digits=precision - scale if numeric and precision is not None else None,
                numeric=numeric,
                integer=(
                    _INT_RANGE.get(type(kind).__name__, _INT_RANGE["Integer"])
                    if isinstance(kind, Integer)
                    else None
                ),
            )
        )
    _STORABLE[mapper] = found = tuple(out)
    return found


def check_storable(obj: Any) -> None:
    """Every value of a row the database can store and every export can read back, checked on
    every path at the one write door: text within its column's length without control
    characters (new lines and tabs allowed in free text), numbers finite and within the
    column's precision or range. Refused naming the column (a ValidationError, never a
    database error). What each column allows is derived once per mapped class."""
    state = inspect(obj)
    values = state.dict
    for col in _storable(state.mapper):
        value = values.get(col.key)
        if value is None:
            continue
        field = col.key
        if isinstance(value, str):
            limit = col.limit
            if limit is not None and len(value) > limit:
                raise too_long(field, len(value), limit)
            if value.isprintable():  # the common case, checked in C: no control character
                continue
            for ch in value:
                if ch == "\x00" or (
                    not ch.isprintable() and not (col.multiline and ch in "\n\r\t")
                ):
                    raise ValidationError(
                        field,
                        f"contains the control character {ch!r}",
                        "printable text",
                        code="control_character",
                        params={"character": repr(ch)},
                    )
        elif isinstance(value, bool):
            continue
        elif isinstance(value, Decimal) and col.numeric:
            if not value.is_finite():
                raise _not_finite(field, value)
            if col.digits is not None:
                whole = abs(value).to_integral_value(rounding="ROUND_FLOOR")
                if len(str(whole)) > col.digits and whole != 0:
                    raise ValidationError(
                        field,
                        f"{value} is too large",
                        f"at most {col.digits} digits",
                        code="too_large",
                        params={"value": value, "limit": col.digits},
                    )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _not_finite(field, value)
        elif isinstance(value, int) and col.integer is not None:
            low, high = col.integer
            if not low <= value <= high:
                raise ValidationError(
                    field,
                    f"{value} is out of range",
                    f"{low}..{high}",
                    code="out_of_range",
                    params={"value": value, "lo": low, "hi": high},
                )


def _not_finite(field: str, value: Decimal | float) -> ValidationError:
    return ValidationError(
        field,
        f"{value} is not a finite number",
        "a number",
        code="not_finite",
        params={"value": str(value)},
    )


@event.listens_for(AuditedSession, "before_flush")
def _before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    if _ACTOR not in session.info:
        if session.new or session.dirty or session.deleted:
            raise refusal(
                PermissionDenied,
                "actor_required",
                N_("writes need an actor: open the session with unit_of_work()"),
            )
        return
    for obj in (*session.new, *session.dirty):
        check_storable(obj)
    _run_guards(session)
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
            old, new = _audited_value(attr, old), _audited_value(attr, new)
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
            code="reason_required_for_change",
            params={"what": what},
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
    if _ACTOR in session.info:
        for check in _COMMIT_CHECKS:
            check(session)
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
        raise refusal(
            PermissionDenied,
            "bulk_statement",
            N_(
                "bulk INSERT/UPDATE/DELETE statements bypass the audit trail; change objects instead"
            ),
        )
