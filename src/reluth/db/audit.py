"""The audit trail: one append-only table whose rows are chained by SHA-256.

Every row records who (user, role), when (UTC), what (action, table, record id, field, old and
new value) and why (reason). ``row_hash = sha256(canonical JSON of the row + prev_hash)``, so
changing, inserting or deleting any row breaks the chain at that row; ``audit_head`` holds the
last sequence number and hash so that truncating the tail is detected too. Rows are written
only by :mod:`reluth.db.session` at commit time; nothing updates or deletes them (a trigger
refuses it, see the initial migration).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Integer, String, Text, bindparam, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from reluth.db.base import Base

GENESIS_HASH = "0" * 64
AUDIT_TABLES = frozenset({"audit_log", "audit_head"})


class AuditLog(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at_utc: Mapped[str] = mapped_column(String(32))  # ISO 8601 with 'Z', microseconds
    username: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(32))
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


@dataclass(frozen=True)
class AuditEntry:
    """One change, before it is sealed into the chain."""

    at_utc: str
    username: str
    role: str
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


def row_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 of the row's canonical JSON (its hashed fields in a fixed order)."""
    payload = json.dumps([row[k] for k in HASHED_FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


_HEAD_FOR_UPDATE = (
    select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1).with_for_update()
)
_SET_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(last_seq=bindparam("seq"), last_hash=bindparam("hash"))
)


def append(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    """Seal ``entries`` into the chain inside the caller's transaction.

    The head row is locked (``FOR UPDATE`` on PostgreSQL; SQLite transactions are already
    exclusive writers) so that concurrent transactions extend the chain one after the other.
    Callers append last in their transaction, so this lock is held only until commit.
    """
    if not entries:
        return
    head = conn.execute(_HEAD_FOR_UPDATE).one_or_none()
    if head is None:
        raise RuntimeError("audit_head is missing: run `reluth db init` (alembic upgrade head)")
    seq, prev = head.last_seq, head.last_hash
    rows = []
    for e in entries:
        seq += 1
        row: dict[str, Any] = {"seq": seq, **dataclasses.asdict(e), "prev_hash": prev}
        row["row_hash"] = prev = row_hash(row)
        rows.append(row)
    conn.execute(insert(AuditLog), rows)
    conn.execute(_SET_HEAD, {"seq": seq, "hash": prev})


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    last_seq: int
    last_hash: str
    first_broken_seq: int | None = None
    problem: str | None = None


_COLUMNS = (
    AuditLog.seq,
    AuditLog.at_utc,
    AuditLog.username,
    AuditLog.role,
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


def _stream(conn: Connection, batch: int = 5000) -> Iterator[Any]:
    after = 0
    while True:
        rows = conn.execute(
            select(*_COLUMNS).where(AuditLog.seq > after).order_by(AuditLog.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def count(conn: Connection) -> int:
    from sqlalchemy import func

    return int(conn.execute(select(func.count()).select_from(AuditLog)).scalar_one())


def verify(conn: Connection, progress: Any = None) -> VerifyResult:
    """Check the whole chain; name the first row where it breaks.

    ``progress`` (optional) is called with the number of rows checked so far.
    """
    expected_seq, prev, checked = 1, GENESIS_HASH, 0
    for r in _stream(conn):
        if r.seq != expected_seq:
            return VerifyResult(
                False,
                checked,
                expected_seq - 1,
                prev,
                expected_seq,
                f"row {expected_seq} is missing (next row found is {r.seq})",
            )
        if r.prev_hash != prev:
            return VerifyResult(
                False,
                checked,
                r.seq - 1,
                prev,
                r.seq,
                f"row {r.seq} does not chain to row {r.seq - 1} (a row was changed or removed)",
            )
        if row_hash(r._mapping) != r.row_hash:
            return VerifyResult(
                False,
                checked,
                r.seq - 1,
                prev,
                r.seq,
                f"row {r.seq} was altered: its content does not match its hash",
            )
        prev, expected_seq, checked = r.row_hash, r.seq + 1, checked + 1
        if progress is not None and checked % 5000 == 0:
            progress(checked)
    if progress is not None:
        progress(checked)
    head = conn.execute(select(AuditHead.last_seq, AuditHead.last_hash)).one_or_none()
    last_seq = expected_seq - 1
    if head is not None and (head.last_seq, head.last_hash) != (last_seq, prev):
        return VerifyResult(
            False,
            checked,
            last_seq,
            prev,
            min(head.last_seq, last_seq) + 1,
            f"the chain ends at row {last_seq} but the head records row {head.last_seq}"
            " (rows were removed from the end, or the head was altered)",
        )
    return VerifyResult(True, checked, last_seq, prev)


def history(session: Session, table_name: str | None, record_id: str) -> list[AuditLog]:
    """Every audit row of one record, oldest first."""
    stmt = select(AuditLog).where(AuditLog.record_id == record_id)
    if table_name:
        stmt = stmt.where(AuditLog.table_name == table_name)
    return list(session.scalars(stmt.order_by(AuditLog.seq)))
