"""State replay: every audited table rebuilt from the audit trail (insert + updates − deletes)
and compared with the table as it is, record by record and field by field.

This is what catches a change made behind the application's back — a lab value, an arm, a
role edited in place, a record deleted or inserted with the audit triggers dropped — which the
chain alone cannot see (21 CFR 11.10(e): the audit trail must allow the record to be
reconstructed). Both sides are streamed in the same order (record id, byte order), so memory
stays flat however long the trail is: one record's history is held at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import count, groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    Numeric,
    String,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.elements import ColumnElement

from reluth.db.audit import AUDIT_TABLES, AuditLog, Finding, _plain
from reluth.db.base import Base
from reluth.db.registry import load_all_models

_DELETED = object()
_EXACT = (str, int, bool)
_CRUD = ("insert", "update", "delete")


@dataclass(frozen=True)
class _Field:
    key: str
    column: Any  # a Column; None: a many-to-many relationship (ids of related records)
    digest: bool = False
    position: int = -1  # in the table query's row (after the record id)
    decimal: bool = False  # a Numeric column: the audit trail holds its exact text


@dataclass(frozen=True)
class AuditedTable:
    name: str
    mapper: Mapper[Any]
    fields: tuple[_Field, ...]


def audited_tables() -> list[AuditedTable]:
    """Every table whose changes the unit of work audits (models not marked exempt)."""
    load_all_models()
    out = []
    for mapper in sorted(Base.registry.mappers, key=lambda m: m.class_.__name__):
        cls = mapper.class_
        table = getattr(cls, "__tablename__", None)
        if table is None or table in AUDIT_TABLES or getattr(cls, "__audit_exempt__", False):
            continue
        fields = [
            _Field(
                a.key,
                a.columns[0],
                a.columns[0].info.get("audit") == "digest",
                i + 1,
                isinstance(a.columns[0].type, Numeric) and not isinstance(a.columns[0].type, Float),
            )
            for i, a in enumerate(mapper.column_attrs)
        ]
        fields += [_Field(r.key, None) for r in mapper.relationships if r.secondary is not None]
        out.append(AuditedTable(table, mapper, tuple(fields)))
    return out


def _record_id_expr(conn: Connection, mapper: Mapper[Any]) -> ColumnElement[str]:
    """The SQL of the audit writer's record id ("/".join of the primary key), in byte order."""
    parts: list[ColumnElement[Any]] = [sql_cast(c, String) for c in mapper.primary_key]
    expr: ColumnElement[Any] = parts[0]
    for p in parts[1:]:
        expr = expr + "/" + p
    return _byte_order(conn, expr)


def _byte_order(conn: Connection, expr: Any) -> ColumnElement[Any]:
    return expr.collate("C") if conn.dialect.name == "postgresql" else expr


def _stream(conn: Connection, stmt: Any, raw: bool = False) -> Iterator[Any]:
    """Rows of ``stmt`` without loading them all. ``raw``: plain tuples from the driver's own
    (server-side on PostgreSQL) cursor, for columns whose driver values are already the
    Python values (text and integers everywhere; every type with psycopg)."""
    if not raw:
        yield from conn.execution_options(stream_results=True, yield_per=5000).execute(stmt)
        return
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name=f"reluth_replay_{next(_CURSORS)}")
        cursor.itersize = 5000
    else:
        cursor = dbapi.cursor()
    try:
        cursor.execute(str(compiled))
        while True:
            rows = cursor.fetchmany(5000)
            if not rows:
                return
            yield from rows
    finally:
        cursor.close()


_CURSORS = count()


def _related(conn: Connection, mapper: Mapper[Any]) -> dict[str, dict[str, list[str]]]:
    """For each many-to-many relationship: parent record id -> sorted related record ids."""
    out: dict[str, dict[str, list[str]]] = {}
    for rel in mapper.relationships:
        if rel.secondary is None:
            continue
        assert rel.secondary_synchronize_pairs is not None
        (_, parent_col), (_, target_col) = (
            rel.synchronize_pairs[0],
            rel.secondary_synchronize_pairs[0],
        )
        ids: dict[str, list[str]] = {}
        for parent, target in conn.execute(select(parent_col, target_col)):
            ids.setdefault(str(parent), []).append(str(target))
        out[rel.key] = {k: sorted(v) for k, v in ids.items()}
    return out


def _digest(value: Any) -> Any:
    if value is None:
        return None
    return "sha256:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def same(column: Column[Any] | None, recorded: Any, current: Any) -> bool:
    """Whether the value the audit trail recorded (JSON-decoded) is the value stored, by the
    column's type (7.4 = 7.40; a naive timestamp read back from SQLite is UTC)."""
    if type(recorded) is type(current) and type(current) in _EXACT:
        return bool(recorded == current)
    if recorded is None or current is None:
        return recorded is None and current is None
    plain = _plain(current)
    if plain == recorded or column is None:
        return bool(plain == recorded)
    kind = column.type
    try:
        if isinstance(kind, Float):
            return float(recorded) == float(current)
        if isinstance(kind, Numeric):
            return Decimal(str(recorded)) == Decimal(str(current))
        if isinstance(kind, DateTime) and isinstance(current, dt.datetime):
            return _as_utc(dt.datetime.fromisoformat(str(recorded))) == _as_utc(current)
        if isinstance(kind, Boolean):
            return isinstance(recorded, bool) and recorded is bool(current)
        if isinstance(kind, Integer):
            return isinstance(recorded, int) and recorded == int(current)
    except (ValueError, TypeError, InvalidOperation):
        return False
    return False


def _is_default(column: Column[Any] | None, value: Any) -> bool:
    """A value the trail may leave unrecorded: empty, or the column's declared default (a
    column added by a migration after the record was written)."""
    if value is None or value == []:
        return True
    if column is None:
        return False
    default = getattr(column.default, "arg", None)
    if default is not None and not callable(default) and default == value:
        return True
    server = getattr(getattr(column.server_default, "arg", None), "text", None)
    server = server if server is not None else getattr(column.server_default, "arg", None)
    if isinstance(server, str):
        if isinstance(value, bool):
            return server.lower() in (("1", "true") if value else ("0", "false"))
        return server == str(value)
    return False


def _show(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, default=str)


@dataclass
class ReplayStats:
    tables: int = 0
    records: int = 0
    audit_rows: int = 0


def replay(
    conn: Connection,
    progress: Callable[[int], None] | None = None,
    stats: ReplayStats | None = None,
) -> list[Finding]:
    """Every audited table rebuilt from the trail and compared with the table as stored."""
    findings: list[Finding] = []
    stats = stats if stats is not None else ReplayStats()
    for table in audited_tables():
        stats.tables += 1
        _replay_table(conn, table, findings, stats, progress)
    return findings


def _replay_table(
    conn: Connection,
    table: AuditedTable,
    findings: list[Finding],
    stats: ReplayStats,
    progress: Callable[[int], None] | None,
) -> None:
    mapper = table.mapper
    rid = _record_id_expr(conn, mapper).label("_rid")
    columns = [f.column for f in table.fields if f.column is not None]
    current = _stream(
        conn, select(rid, *columns).order_by(rid), raw=conn.dialect.name == "postgresql"
    )
    trail = _stream(
        conn,
        select(
            AuditLog.seq,
            AuditLog.action,
            AuditLog.record_id,
            AuditLog.field,
            AuditLog.new_value,
        )
        .where(AuditLog.table_name == table.name, AuditLog.action.in_(_CRUD))
        .order_by(_byte_order(conn, AuditLog.record_id), AuditLog.seq),
        raw=True,
    )
    related = _related(conn, mapper)
    histories = groupby(trail, key=itemgetter(2))  # seq, action, record_id, field, new_value
    history = next(histories, None)
    row = next(current, None)
    while history is not None or row is not None:
        if row is None or (history is not None and history[0] < row[0]):
            assert history is not None
            rows = list(history[1])
            stats.audit_rows += len(rows)
            state, last = _rebuild(table, history[0], rows, findings)
            if state is not None and state is not _DELETED:
                findings.append(
                    Finding(
                        "state",
                        f"{table.name} {history[0]} is in the audit trail (last row {last}) but "
                        "missing from the table: deleted outside the application",
                        table.name,
                        history[0],
                        last,
                    )
                )
            history = next(histories, None)
        elif history is None or row[0] < history[0]:
            findings.append(
                Finding(
                    "state",
                    f"{table.name} {row[0]} is in the table but not in the audit trail: "
                    "written outside the application",
                    table.name,
                    row[0],
                )
            )
            row = next(current, None)
        else:
            rows = list(history[1])
            stats.audit_rows += len(rows)
            state, last = _rebuild(table, row[0], rows, findings)
            _compare(table, row, state, last, related, findings)
            history, row = next(histories, None), next(current, None)
        stats.records += 1
        if progress is not None and stats.records % 5000 == 0:
            progress(stats.audit_rows)


def _rebuild(
    table: AuditedTable, record_id: str, rows: list[Any], findings: list[Finding]
) -> tuple[Any, int]:
    """The record as its audit rows leave it (None: never created; _DELETED: deleted)."""
    state: Any = None
    last = rows[-1][0]
    for seq, action, _rid, field, new_value in rows:
        if action == "insert":
            if state is not None and state is not _DELETED:
                findings.append(
                    Finding(
                        "state",
                        f"{table.name} {record_id} is created twice in the audit trail (row {seq})",
                        table.name,
                        record_id,
                        seq,
                    )
                )
            state = json.loads(new_value) if new_value else {}
        elif action == "update":
            if state is None or state is _DELETED:
                findings.append(
                    Finding(
                        "state",
                        f"{table.name} {record_id}: audit row {seq} updates a record that does "
                        "not exist at that point of the trail",
                        table.name,
                        record_id,
                        seq,
                        field,
                    )
                )
                state = {}
            if field is not None:
                state[field] = json.loads(new_value) if new_value is not None else None
        else:
            state = _DELETED
    return state, last


def _compare(
    table: AuditedTable,
    row: Any,
    state: Any,
    last: int,
    related: dict[str, dict[str, list[str]]],
    findings: list[Finding],
) -> None:
    rid = row[0]
    if state is None or state is _DELETED:
        findings.append(
            Finding(
                "state",
                f"{table.name} {rid} exists in the table but the audit trail "
                + ("deleted it" if state is _DELETED else "never created it")
                + f" (last row {last})",
                table.name,
                rid,
                last,
            )
        )
        return
    for f in table.fields:
        if f.column is None:
            value: Any = related.get(f.key, {}).get(rid, [])
        else:
            value = row[f.position]
            if f.digest:
                value = _digest(value)
        if f.key in state:
            recorded = state[f.key]
            kind = type(value)
            if kind is type(recorded) and kind in _EXACT and recorded == value:
                continue
            if kind is dt.date and type(recorded) is str and value.isoformat() == recorded:
                continue
            if f.decimal and type(recorded) is str and kind is Decimal:
                try:
                    if Decimal(recorded) == value:
                        continue
                except InvalidOperation:
                    pass
            if f.column is None:
                ok = sorted(map(str, recorded or [])) == value
            else:
                ok = same(f.column, recorded, value)
            if not ok:
                findings.append(
                    Finding(
                        "state",
                        f"{table.name} {rid}.{f.key}: the audit trail says {_show(recorded)}, "
                        f"the table holds {_show(value)} (changed outside the application)",
                        table.name,
                        rid,
                        last,
                        f.key,
                        _show(recorded),
                        _show(value),
                    )
                )
        elif not _is_default(f.column, value):
            findings.append(
                Finding(
                    "state",
                    f"{table.name} {rid}.{f.key}: the table holds {_show(value)}, which the audit "
                    "trail never recorded",
                    table.name,
                    rid,
                    last,
                    f.key,
                    None,
                    _show(value),
                )
            )
