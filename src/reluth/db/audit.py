"""The audit trail: one append-only table whose rows are chained by a keyed hash.

Every row records who (user, role, how authenticated), when (UTC), what (action, table, record
id, field, old and new value) and why (reason).
``row_hash = HMAC-SHA-256(audit key, canonical JSON of the row incl. prev_hash)`` (RFC 2104),
with the key held outside the database (:mod:`reluth.db.auditkey`): changing, inserting or
deleting any row breaks the chain at that row, and rewriting the whole chain needs the key.
``audit_head`` holds the last sequence number and hash. Rows are written only by
:mod:`reluth.db.session` at commit time; the database itself (triggers, migration 0011) refuses
UPDATE and DELETE of audit rows and any INSERT that is not the next row of the chain
(``seq = head + 1``, ``prev_hash = head hash``), and moves the head with each row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection, Integer, String, Text, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from reluth.db import auditkey
from reluth.db.auditkey import AuditKey
from reluth.db.base import Base
from reluth.errors import NotConfigured
from reluth.i18n import N_
from reluth.i18n.reasons import refusal

GENESIS_HASH = "0" * 64
AUDIT_TABLES = frozenset({"audit_log", "audit_head"})


class AuditLog(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at_utc: Mapped[str] = mapped_column(String(32))  # ISO 8601 with 'Z', microseconds
    username: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(32))
    #: how the writer authenticated (web_session, api_token, cli_token, password, bootstrap);
    #: NULL only on rows written before migration 0009
    auth_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str] = mapped_column(String(8))  # insert | update | delete
    table_name: Mapped[str] = mapped_column(String(64), index=True)
    record_id: Mapped[str] = mapped_column(String(64), index=True)
    field: Mapped[str | None] = mapped_column(String(64), nullable=True)
    old_value: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    new_value: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row (id = 1): the last sequence number and hash. Locked while appending."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    #: names the HMAC key of the chain (:attr:`AuditKey.key_id`); set by the first append
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)


@dataclass(frozen=True)
class AuditEntry:
    """One change, before it is sealed into the chain."""

    at_utc: str
    username: str
    role: str
    auth_method: str | None
    action: str
    table_name: str
    record_id: str
    field: str | None
    old_value: str | None
    new_value: str | None
    reason: str | None


def utc_stamp(moment: dt.datetime) -> str:
    """An unambiguous UTC time stamp: ``2026-11-27T04:00:00.123456Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_value(value: Any) -> str:
    """A column value as canonical JSON text (Decimals and dates exact, as strings)."""
    return json.dumps(_plain(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


#: The fields covered by each row's hash, in order (``prev_hash`` chains it to the row before).
HASHED_FIELDS = (
    "seq",
    "at_utc",
    "username",
    "role",
    "action",
    "table_name",
    "record_id",
    "field",
    "old_value",
    "new_value",
    "reason",
    "prev_hash",
)


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def canonical_row(row: Mapping[str, Any]) -> bytes:
    """The bytes a row's hash covers: its hashed fields in a fixed order as compact JSON (the
    authentication method, when recorded, follows them)."""
    values = [row[k] for k in HASHED_FIELDS]
    if row.get("auth_method") is not None:
        values.append(row["auth_method"])
    return _ENCODE(values).encode("utf-8")


def _canonical_tuple(r: Sequence[Any]) -> bytes:
    """:func:`canonical_row` of a row read with :data:`_COLUMNS` (by position: the verifier's
    hot path)."""
    values = [r[0], r[1], r[2], r[3], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12]]
    if r[4] is not None:
        values.append(r[4])
    return _ENCODE(values).encode("utf-8")


def row_hash(row: Mapping[str, Any], key: AuditKey) -> str:
    """HMAC-SHA-256 of the row's canonical JSON under the audit key."""
    return key.mac(canonical_row(row))


_HEAD_FOR_UPDATE = (
    select(AuditHead.last_seq, AuditHead.last_hash, AuditHead.key_id)
    .where(AuditHead.id == 1)
    .with_for_update()
)


_INSERT = insert(AuditLog)  # built once: its cache key is then computed once, not per commit


def append(conn: Connection, entries: Sequence[AuditEntry], key: AuditKey | None = None) -> None:
    """Seal ``entries`` into the chain inside the caller's transaction.

    The head row is locked (``FOR UPDATE`` on PostgreSQL; SQLite transactions are already
    exclusive writers) so that concurrent transactions extend the chain one after the other;
    the insert trigger checks each row against the head and moves the head. Callers append
    last in their transaction, so this lock is held only until commit.
    """
    if not entries:
        return
    key = key or auditkey.key_for(conn.engine)
    head = conn.execute(_HEAD_FOR_UPDATE).one_or_none()
    if head is None:
        raise RuntimeError("audit_head is missing: run `reluth db init` (alembic upgrade head)")
    if head.key_id is None:
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(key_id=key.key_id))
    elif head.key_id != key.key_id:
        raise refusal(
            NotConfigured,
            "audit_key_mismatch",
            N_(
                "the audit key configured (id {configured}) is not this database's "
                "(id {expected}): set RELUTH_AUDIT_KEY_FILE to the key the database was "
                "created with"
            ),
            configured=str(key.key_id),
            expected=str(head.key_id),
        )
    seq, prev = head.last_seq, head.last_hash
    rows = []
    for e in entries:
        seq += 1
        row: dict[str, Any] = {"seq": seq, **dataclasses.asdict(e), "prev_hash": prev}
        row["row_hash"] = prev = row_hash(row, key)
        rows.append(row)
    conn.execute(_INSERT, rows)


# ------------------------------------------------------------------------------ verifying


@dataclass(frozen=True)
class Finding:
    """One thing verification found wrong: which check, where (table, record, audit row,
    field), what the audit trail (or a checkpoint) says and what the database holds."""

    check: str  # chain | head | key | checkpoint | state | allocation
    message: str
    table: str | None = None
    record_id: str | None = None
    seq: int | None = None
    field: str | None = None
    expected: str | None = None
    found: str | None = None


@dataclass(frozen=True)
class VerifyResult:
    """The chain's verdict: ``ok`` when there is no finding; the first one summarised."""

    ok: bool
    rows_checked: int
    last_seq: int
    last_hash: str
    first_broken_seq: int | None = None
    problem: str | None = None
    findings: tuple[Finding, ...] = ()


_COLUMNS = (
    AuditLog.seq,
    AuditLog.at_utc,
    AuditLog.username,
    AuditLog.role,
    AuditLog.auth_method,
    AuditLog.action,
    AuditLog.table_name,
    AuditLog.record_id,
    AuditLog.field,
    AuditLog.old_value,
    AuditLog.new_value,
    AuditLog.reason,
    AuditLog.prev_hash,
    AuditLog.row_hash,
)


class ChainRow(NamedTuple):
    """An audit row as the verifier reads it (the columns of :data:`_COLUMNS`, in order)."""

    seq: int
    at_utc: str
    username: str
    role: str
    auth_method: str | None
    action: str
    table_name: str
    record_id: str
    field: str | None
    old_value: str | None
    new_value: str | None
    reason: str | None
    prev_hash: str
    row_hash: str


def stream(conn: Connection, batch: int = 5000) -> Iterator[tuple[Any, ...]]:
    """Every audit row, whatever its seq, in seq order, as plain tuples in the order of
    :class:`ChainRow`, without loading them all (a server-side cursor on PostgreSQL; the
    driver's cursor directly: the verifier's hot path)."""
    sql = str(select(*_COLUMNS).order_by(AuditLog.seq).compile(dialect=conn.dialect))
    raw: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = raw.cursor(name=f"reluth_chain_{id(conn)}")
        cursor.itersize = batch
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(sql)
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            yield from rows
    finally:
        cursor.close()


def count(conn: Connection) -> int:
    from sqlalchemy import func

    return int(conn.execute(select(func.count()).select_from(AuditLog)).scalar_one())


#: What a row observer is called with: each row as a tuple in the order of :class:`ChainRow`
#: (already checked) — e.g. the checkpoint counters.
RowObserver = Callable[[Any], None]


@dataclass
class ChainCheck:
    """The chain walked row by row: every row counted, whatever its seq."""

    findings: list[Finding]
    rows: int
    last_seq: int
    last_hash: str
    head_seq: int | None
    head_hash: str | None


def _where(r: Any) -> str:
    return f"{r.table_name} {r.record_id}"


def check_chain(
    conn: Connection,
    key: AuditKey,
    progress: Callable[[int], None] | None = None,
    observe: RowObserver | None = None,
) -> ChainCheck:
    """Walk the chain: numbering 1..head without gap or stray row, each row linked to the one
    before and carrying the keyed hash of its content, and the head on the last row."""
    findings: list[Finding] = []
    head = conn.execute(select(AuditHead.last_seq, AuditHead.last_hash, AuditHead.key_id)).all()
    head_row = head[0] if len(head) == 1 else None
    if head_row is not None and head_row.key_id not in (None, key.key_id):
        findings.append(
            Finding(
                "key",
                f"the key given (id {key.key_id}) is not this database's audit key "
                f"(id {head_row.key_id}): no row can be checked against it",
            )
        )
        return ChainCheck(findings, count(conn), 0, GENESIS_HASH, head_row.last_seq, None)
    expected, prev, rows = 1, GENESIS_HASH, 0
    last_seq = 0
    mac = key.mac
    for t in stream(conn):
        rows += 1
        if progress is not None and rows % 5000 == 0:
            progress(rows)
        seq = t[0]
        if seq < 1:
            r = ChainRow._make(t)
            findings.append(
                Finding(
                    "chain",
                    f"row {r.seq} ({_where(r)}) is outside 1..head: rows are numbered from 1 by "
                    "the audit writer alone (a forged row)",
                    r.table_name,
                    r.record_id,
                    r.seq,
                )
            )
            continue
        if seq != expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
            findings.append(
                Finding(
                    "chain",
                    f"row {missing} is missing (the next row found is {seq})",
                    seq=expected,
                )
            )
        elif t[12] != prev:
            r = ChainRow._make(t)
            findings.append(
                Finding(
                    "chain",
                    f"row {r.seq} ({_where(r)}) does not chain to row {r.seq - 1} "
                    "(a row was changed, inserted or removed)",
                    r.table_name,
                    r.record_id,
                    r.seq,
                    "prev_hash",
                    prev,
                    r.prev_hash,
                )
            )
        if mac(_canonical_tuple(t)) != t[13]:
            r = ChainRow._make(t)
            findings.append(
                Finding(
                    "chain",
                    f"row {r.seq} ({_where(r)}) was altered: its content does not match its "
                    "keyed hash",
                    r.table_name,
                    r.record_id,
                    r.seq,
                )
            )
        if observe is not None:
            observe(t)
        prev, expected, last_seq = t[13], seq + 1, seq
    if progress is not None:
        progress(rows)
    if head_row is None:
        findings.append(
            Finding(
                "head",
                "the audit head is missing"
                if not head
                else f"the audit head has {len(head)} rows instead of one",
                "audit_head",
                "1",
            )
        )
    elif (head_row.last_seq, head_row.last_hash) != (last_seq, prev):
        findings.append(
            Finding(
                "head",
                f"the chain ends at row {last_seq} but the head records row "
                f"{head_row.last_seq} (rows were removed from or added at the end, or the head "
                "was moved)",
                "audit_head",
                "1",
                min(head_row.last_seq, last_seq) + 1,
                "last_seq",
                str(head_row.last_seq),
                str(last_seq),
            )
        )
    return ChainCheck(
        findings,
        rows,
        last_seq,
        prev,
        None if head_row is None else head_row.last_seq,
        None if head_row is None else head_row.last_hash,
    )


def result_of(chain: ChainCheck, extra: Sequence[Finding] = ()) -> VerifyResult:
    findings = (*chain.findings, *extra)
    first = findings[0] if findings else None
    return VerifyResult(
        not findings,
        chain.rows,
        chain.last_seq,
        chain.last_hash,
        None if first is None else (first.seq if first.seq is not None else chain.last_seq + 1),
        None if first is None else first.message,
        findings,
    )


def verify(
    conn: Connection,
    progress: Callable[[int], None] | None = None,
    key: AuditKey | None = None,
) -> VerifyResult:
    """Check the whole chain (key: the engine's audit key unless given); every finding is
    listed, the first summarised."""
    key = key or auditkey.key_for(conn.engine)
    return result_of(check_chain(conn, key, progress))


def in_chain() -> Any:
    """The condition of rows that belong to the chain (seq 1..head): what history pages list;
    a row outside it can only be forged, and ``verify`` reports it."""
    head = select(AuditHead.last_seq).where(AuditHead.id == 1).scalar_subquery()
    return AuditLog.seq.between(1, head)


def history(session: Session, table_name: str | None, record_id: str) -> list[AuditLog]:
    """Every audit row of one record in the chain, oldest first."""
    stmt = select(AuditLog).where(AuditLog.record_id == record_id, in_chain())
    if table_name:
        stmt = stmt.where(AuditLog.table_name == table_name)
    return list(session.scalars(stmt.order_by(AuditLog.seq)))
