"""Auto-queries from the edit checks the form registry declares (``edit_checks`` in
``forms.yaml``; ICH E6(R3) 4.2.1 and Appendix C: data checked as they are entered).

The checks run in the domain at the write door, not in an adapter: every audited commit that
touched a checked form's data (or the data a check reads: the labs before a cycle, the
randomization that places a visit window, a missing-data code) re-evaluates the checks of the
patients it touched, whatever wrote it (page, API, CLI, import). A failure raises one system
query on (form instance, field) with the check's message; it is never raised twice while it is
open or answered. When a later save or correction makes the check pass (or deletes the record),
the system closes the query itself, with a note, in the same transaction: the data manager
need not close what the data now settle; a person's queries are never closed by the system.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, inspect, or_, select
from sqlalchemy.orm import Session

from reluth.db.session import UnitOfWork, register_commit_check, register_flush_guard
from reluth.forms.models import MissingData
from reluth.forms.registry import EditCheck, FormDef, Registry
from reluth.queries.models import DataQuery

#: Who a system query is opened and closed by.
SYSTEM = "system"
_TOUCHED = "reluth_edit_checks_touched"  # check id -> the patients whose data it reads changed
_VANISHED = "reluth_edit_checks_vanished"  # checks some of whose records left their form
#: Query states in which a system query is still raised (not raised again).
ACTIVE = ("open", "answered")


def _read_tables(registry: Registry, check: EditCheck) -> set[str]:
    """The tables whose changes can change the check's verdict."""
    tables = {registry.form(check.form).table}
    if check.rule == "lab_before":
        tables.add("lab_results")
    elif check.rule == "in_visit_window":
        tables.add("randomizations")
    elif check.rule == "required_when":
        tables.add("missing_data")
    return tables


#: Per registry (immutable, held by the trial for the process's life): table -> the checks whose
#: verdict a change of that table can change; derived once, not at every flush.
_BY_TABLE: dict[int, tuple[Registry, dict[str, tuple[EditCheck, ...]]]] = {}


def checks_reading(registry: Registry) -> dict[str, tuple[EditCheck, ...]]:
    """Table name -> the registry's edit checks that read it (memoized per registry)."""
    cached = _BY_TABLE.get(id(registry))
    if cached is not None and cached[0] is registry:
        return cached[1]
    by_table: dict[str, list[EditCheck]] = {}
    for check in registry.edit_checks:
        for table in sorted(_read_tables(registry, check)):
            by_table.setdefault(table, []).append(check)
    out = {table: tuple(checks) for table, checks in by_table.items()}
    _BY_TABLE[id(registry)] = (registry, out)
    return out


_REGISTRY = "reluth_edit_checks_registry"


def _registry(session: Session) -> Registry | None:
    """The registry of the session's trial, looked up once per unit of work."""
    if _REGISTRY not in session.info:
        trial = session.info.get("reluth_trial")
        session.info[_REGISTRY] = None if trial is None else trial.forms
    registry: Registry | None = session.info[_REGISTRY]
    return registry


def _left_form(form: FormDef, obj: Any, deleted: bool) -> bool:
    """Whether ``obj``, a row of ``form``'s table, may have stopped being one of its records
    (deleted, or a column of the form's ``where`` changed): the form's rows no longer bring its
    active queries, which are then looked up apart to be closed."""
    if deleted:
        return True
    state = inspect(obj)
    return any(state.attrs[column].history.has_changes() for column in form.where)


def note_touched(session: Session, new: list[Any], dirty: list[Any], deleted: list[Any]) -> None:
    """Flush guard: remember, per edit check, the patients whose data the check reads this
    transaction changes (a change that no check reads costs nothing at commit)."""
    registry = _registry(session)
    if registry is None or not registry.edit_checks:
        return
    by_table = checks_reading(registry)
    touched: dict[str, set[int]] = session.info.setdefault(_TOUCHED, {})
    for objs, kind in ((new, "insert"), (dirty, "update"), (deleted, "delete")):
        for obj in objs:
            table = getattr(obj, "__tablename__", "")
            checks = by_table.get(table)
            pid = getattr(obj, "patient_id", None)
            if not checks or pid is None:
                continue
            for check in checks:
                touched.setdefault(check.id, set()).add(pid)
                form = registry.form(check.form)
                left = kind != "insert" and form.table == table
                if left and _left_form(form, obj, kind == "delete"):
                    session.info.setdefault(_VANISHED, set()).add(check.id)


# ------------------------------------------------------------------------------- the rules


@dataclass
class _Record:
    """One record of a checked form (a row with its columns by attribute name), with what one
    statement brought along: the ids of its active system queries of the check, and the rows
    the rule reads (labs, the randomization, missing-data codes)."""

    row: Any
    queries: set[int] = field(default_factory=set)
    read: list[tuple[Any, ...]] = field(default_factory=list)


#: Per edit check: its statement and the number of the form's columns, built once per process
#: (building a statement costs more CPU than running it).
_STATEMENTS: dict[tuple[int, bool], tuple[EditCheck, Any, int]] = {}


def _statement(check: EditCheck, form: FormDef, single: bool) -> tuple[Any, int]:
    """The records of ``check``'s form of the patients ``:pids`` (``single``: of the patient
    ``:pid``, the common case, whose statement needs no expanding of its parameters at each
    execution), each outer-joined with its active system queries of the check and with what
    the rule reads; and how many columns of each row are the record's (a Core statement: the
    record's columns labelled by attribute)."""
    cached = _STATEMENTS.get((id(check), single))
    if cached is not None and cached[0] is check:
        return cached[1], cached[2]
    from reluth.forms import refs
    from reluth.randomization.models import Randomization
    from reluth.safety.models import LabResult

    model = refs.model_of(form)
    columns = [getattr(model, a.key).label(a.key) for a in inspect(model).mapper.column_attrs]
    day = getattr(model, form.field(check.field).column or check.field)
    read: tuple[Any, ...]
    target: type[Any]
    if check.rule == "lab_before":
        target = LabResult
        read = (LabResult.id, LabResult.sample_date, LabResult.value_canonical)
        joined: Any = and_(
            LabResult.patient_id == model.patient_id,
            LabResult.analyte == check.analyte,
            LabResult.canonical_unit == check.unit,
            LabResult.sample_date <= day,  # the lower bound (days before) in Python
        )
    elif check.rule == "in_visit_window":
        target = Randomization
        read = (Randomization.randomized_at, Randomization.arm)
        joined = Randomization.patient_id == model.patient_id
    else:
        target = MissingData
        read = (MissingData.id,)
        joined = and_(
            MissingData.form_id == form.id,
            MissingData.item == check.field,
            MissingData.record_id == model.id,
        )
    stmt: Any = (
        select(
            *columns,
            DataQuery.id.label("reluth_query"),
            *(c.label(f"reluth_read_{i}") for i, c in enumerate(read)),
        )
        .select_from(model)
        .outerjoin(
            DataQuery,
            and_(
                DataQuery.edit_check == check.id,
                DataQuery.form_id == form.id,
                DataQuery.record_id == model.id,
                or_(*(DataQuery.status == status for status in ACTIVE)),
            ),
        )
        .outerjoin(target, joined)
        .where(
            model.patient_id == bindparam("pid")
            if single
            else model.patient_id.in_(bindparam("pids", expanding=True))
        )
    )
    for name, value in form.where.items():
        stmt = stmt.where(getattr(model, name) == value)
    stmt = stmt.order_by(model.id)
    _STATEMENTS[(id(check), single)] = (check, stmt, len(columns))
    return stmt, len(columns)


def _records(
    session: Session, check: EditCheck, form: FormDef, pids: Iterable[int]
) -> list[_Record]:
    """The records of ``check``'s form of these patients, in one statement: each with its
    active system queries of the check and what the rule reads. (Everything is flushed before
    the commit checks run, so the statement goes to the connection as it is.)"""
    ids = sorted(pids)
    single = len(ids) == 1
    stmt, width = _statement(check, form, single)
    records: dict[int, _Record] = {}
    params = {"pid": ids[0]} if single else {"pids": ids}
    for row in session.connection().execute(stmt, params):
        rid = row.id
        record = records.get(rid)
        if record is None:
            record = records[rid] = _Record(row)
        query_id, values = row[width], tuple(row[width + 1 :])
        if query_id is not None:
            record.queries.add(query_id)
        if values[0] is not None and values not in record.read:
            record.read.append(values)
    return list(records.values())


def _values(form: FormDef, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in form.fields:
        if f.column is not None and "." not in f.column:
            value = getattr(row, f.column, None)
            out[f.name] = "" if value is None else _shown(value)
    return out


def _shown(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _lab_before(check: EditCheck, form: FormDef, record: _Record) -> dict[str, str] | None:
    """Fails when the latest ``analyte`` result in the ``days`` before the record's date (that
    day included) is below the threshold, compared exactly in the canonical unit."""
    assert check.below is not None and check.days is not None
    day = getattr(record.row, form.field(check.field).column or check.field)
    if day is None:
        return None
    start = day - dt.timedelta(days=check.days)
    inside = [(on, lab_id, value) for lab_id, on, value in record.read if start <= on <= day]
    if not inside:
        return None
    on, _lab_id, value = max(inside)
    if Decimal(value) < check.below:
        return {"lab_value": _shown(Decimal(value)), "lab_date": on.isoformat()}
    return None


def _in_visit_window(
    session: Session, check: EditCheck, form: FormDef, record: _Record
) -> dict[str, str] | None:
    """Fails when the record is dated outside the window of the visit it is filed at (the
    schedule from the patient's randomization); nothing to say before randomization."""
    from reluth.protocol.schedule import planned_visits

    day = getattr(record.row, form.field(check.field).column or check.field)
    visit_column = form.visits.column
    if not record.read or day is None or visit_column is None:
        return None
    randomized_at, arm = record.read[0]
    protocol = session.info["reluth_trial"].protocol
    windows = {
        v.code: (v.window_start, v.window_end)
        for v in planned_visits(randomized_at.date(), arm, protocol)
    }
    window = windows.get(getattr(record.row, visit_column))
    if window is not None and not window[0] <= day <= window[1]:
        return {"window_start": window[0].isoformat(), "window_end": window[1].isoformat()}
    return None


def _required_when(check: EditCheck, form: FormDef, record: _Record) -> dict[str, str] | None:
    """Fails when the record's fields equal ``when`` and its ``field`` is empty with no
    missing-data code saying why."""
    row = record.row
    column = form.field(check.field).column or check.field
    conditions = {form.field(k).column or k: v for k, v in check.when.items()}
    if all(getattr(row, k) == v for k, v in conditions.items()) and getattr(row, column) is None:
        return None if record.read else {}
    return None


def failures(
    session: Session, registry: Registry, check: EditCheck, pids: Iterable[int]
) -> tuple[dict[int, tuple[int, str]], dict[int, set[int]]]:
    """The records of ``check``'s form (of these patients) that fail it, record id ->
    (patient id, the query's message); and each record's active system queries of the check
    (record id -> query ids), from the same statement."""
    form = registry.form(check.form)
    failed: dict[int, tuple[int, str]] = {}
    raised: dict[int, set[int]] = {}
    for record in _records(session, check, form, pids):
        row = record.row
        if record.queries:
            raised[row.id] = record.queries
        if check.rule == "lab_before":
            extra = _lab_before(check, form, record)
        elif check.rule == "in_visit_window":
            extra = _in_visit_window(session, check, form, record)
        else:
            extra = _required_when(check, form, record)
        if extra is not None:
            values = _Blank(_values(form, row) | extra)
            failed[row.id] = (row.patient_id, check.message.format_map(values))
    return failed, raised


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return f"{{{key}}}"


# ---------------------------------------------------------------------- raise and close


def run_checks(session: Session) -> None:
    """Commit check: raise and close the system queries of the checks whose data this
    transaction changed, for the patients it touched: one statement per such check (its records
    with their active queries and what the rule reads), one more to load the queries to close,
    and one for a check whose records may have left their form (a deletion), whose queries the
    records no longer bring."""
    touched: dict[str, set[int]] = session.info.pop(_TOUCHED, {})
    vanished: set[str] = session.info.pop(_VANISHED, set())
    registry = _registry(session)
    if not touched or registry is None:
        return
    clock = session.info["reluth_clock"]
    settled: set[int] = set()
    for check in registry.edit_checks:
        pids = touched.get(check.id)
        if not pids:
            continue
        form = registry.form(check.form)
        failed, raised = failures(session, registry, check, pids)
        if check.id in vanished:
            for qid, rid in session.execute(
                select(DataQuery.id, DataQuery.record_id).where(
                    DataQuery.patient_id.in_(pids),
                    DataQuery.edit_check == check.id,
                    DataQuery.form_id == form.id,
                    DataQuery.status.in_(ACTIVE),
                )
            ):
                raised.setdefault(rid or 0, set()).add(qid)
        for rid, qids in raised.items():
            if rid not in failed:
                settled |= qids
        for rid, (pid, message) in failed.items():
            if rid in raised:
                continue  # raised already: not twice
            session.add(
                DataQuery(
                    patient_id=pid,
                    field=f"{form.id} {rid} {check.field}",
                    form_id=form.id,
                    record_id=rid,
                    item=check.field,
                    question=message[:2000],
                    status="open",
                    opened_by=SYSTEM,
                    opened_at=clock(),
                    edit_check=check.id,
                )
            )
    if not settled:
        return
    uow = UnitOfWork(session)  # type: ignore[arg-type]
    saved = uow.reason
    for q in session.scalars(select(DataQuery).where(DataQuery.id.in_(settled))):
        uow.reason = saved or f"data query {q.id} closed: edit check {q.edit_check} now passes"
        q.status = "closed"
        q.closed_by = SYSTEM
        q.closed_at = clock()
        if q.answer is None:
            q.answer = f"closed by the system: edit check {q.edit_check} now passes"
        session.flush()
    uow.reason = saved


register_flush_guard(note_touched)
register_commit_check(run_checks)
