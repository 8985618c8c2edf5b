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
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.db.session import UnitOfWork, register_commit_check, register_flush_guard
from reluth.forms.models import MissingData
from reluth.forms.registry import EditCheck, FormDef, Registry
from reluth.queries.models import DataQuery

#: Who a system query is opened and closed by.
SYSTEM = "system"
_TOUCHED = "reluth_edit_checks_touched"
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


def _registry(session: Session) -> Registry | None:
    trial = session.info.get("reluth_trial")
    return None if trial is None else trial.forms


def note_touched(session: Session, new: list[Any], dirty: list[Any], deleted: list[Any]) -> None:
    """Flush guard: remember the patients whose checked data this transaction changes."""
    registry = _registry(session)
    if registry is None or not registry.edit_checks:
        return
    watched: set[str] = set()
    for check in registry.edit_checks:
        watched |= _read_tables(registry, check)
    touched: set[int] = session.info.setdefault(_TOUCHED, set())
    for obj in (*new, *dirty, *deleted):
        if getattr(obj, "__tablename__", None) in watched:
            pid = getattr(obj, "patient_id", None)
            if pid is not None:
                touched.add(pid)


# ------------------------------------------------------------------------------- the rules


def _rows(session: Session, registry: Registry, form: FormDef, pids: Iterable[int]) -> list[Any]:
    from reluth.forms import refs

    model = refs.model_of(form)
    stmt: Any = select(model).where(model.patient_id.in_(list(pids)))
    for column, value in form.where.items():
        stmt = stmt.where(getattr(model, column) == value)
    return list(session.scalars(stmt.order_by(model.id)))


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


def _lab_before(
    session: Session, check: EditCheck, form: FormDef, rows: list[Any]
) -> dict[int, dict[str, str]]:
    """Records whose latest ``analyte`` result in the ``days`` before their date (that day
    included) is below the threshold, compared exactly in the canonical unit."""
    from reluth.safety.models import LabResult

    assert check.below is not None and check.days is not None
    column = form.field(check.field).column or check.field
    pids = {r.patient_id for r in rows}
    labs: dict[int, list[LabResult]] = {}
    for lab in session.scalars(
        select(LabResult).where(
            LabResult.patient_id.in_(pids),
            LabResult.analyte == check.analyte,
            LabResult.canonical_unit == check.unit,
        )
    ):
        labs.setdefault(lab.patient_id, []).append(lab)
    failed = {}
    for row in rows:
        day = getattr(row, column)
        if day is None:
            continue
        start = day - dt.timedelta(days=check.days)
        inside = [lab for lab in labs.get(row.patient_id, []) if start <= lab.sample_date <= day]
        if not inside:
            continue
        latest = max(inside, key=lambda lab: (lab.sample_date, lab.id))
        if Decimal(latest.value_canonical) < check.below:
            failed[row.id] = {
                "lab_value": _shown(Decimal(latest.value_canonical)),
                "lab_date": latest.sample_date.isoformat(),
            }
    return failed


def _in_visit_window(
    session: Session, registry: Registry, check: EditCheck, form: FormDef, rows: list[Any]
) -> dict[int, dict[str, str]]:
    """Records dated outside the window of the visit they are filed at (the schedule from the
    patient's randomization); nothing to say before randomization."""
    from reluth.protocol.schedule import planned_visits
    from reluth.randomization.models import Randomization

    trial = session.info["reluth_trial"]
    column = form.field(check.field).column or check.field
    visit_column = form.visits.column
    rands = {
        r.patient_id: r
        for r in session.scalars(
            select(Randomization).where(
                Randomization.patient_id.in_({row.patient_id for row in rows})
            )
        )
    }
    windows: dict[int, dict[str, tuple[dt.date, dt.date]]] = {}
    failed = {}
    for row in rows:
        rand = rands.get(row.patient_id)
        day = getattr(row, column)
        if rand is None or day is None or visit_column is None:
            continue
        if row.patient_id not in windows:
            windows[row.patient_id] = {
                v.code: (v.window_start, v.window_end)
                for v in planned_visits(rand.randomized_at.date(), rand.arm, trial.protocol)
            }
        window = windows[row.patient_id].get(getattr(row, visit_column))
        if window is not None and not window[0] <= day <= window[1]:
            failed[row.id] = {
                "window_start": window[0].isoformat(),
                "window_end": window[1].isoformat(),
            }
    return failed


def _required_when(
    session: Session, check: EditCheck, form: FormDef, rows: list[Any]
) -> dict[int, dict[str, str]]:
    """Records whose fields equal ``when`` and whose ``field`` is empty with no missing-data
    code saying why."""
    column = form.field(check.field).column or check.field
    conditions = {form.field(k).column or k: v for k, v in check.when.items()}
    coded = set(
        session.scalars(
            select(MissingData.record_id).where(
                MissingData.form_id == form.id,
                MissingData.item == check.field,
                MissingData.record_id.in_([r.id for r in rows]),
            )
        )
    )
    return {
        row.id: {}
        for row in rows
        if all(getattr(row, k) == v for k, v in conditions.items())
        and getattr(row, column) is None
        and row.id not in coded
    }


def failures(
    session: Session, registry: Registry, check: EditCheck, pids: Iterable[int]
) -> dict[int, tuple[int, str]]:
    """The records of ``check``'s form (of these patients) that fail it: record id ->
    (patient id, the query's message)."""
    form = registry.form(check.form)
    rows = _rows(session, registry, form, pids)
    if not rows:
        return {}
    if check.rule == "lab_before":
        found = _lab_before(session, check, form, rows)
    elif check.rule == "in_visit_window":
        found = _in_visit_window(session, registry, check, form, rows)
    else:
        found = _required_when(session, check, form, rows)
    by_id = {r.id: r for r in rows}
    out = {}
    for rid, extra in found.items():
        row = by_id[rid]
        values = _Blank(_values(form, row) | extra)
        out[rid] = (row.patient_id, check.message.format_map(values))
    return out


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return f"{{{key}}}"


# ---------------------------------------------------------------------- raise and close


def run_checks(session: Session) -> None:
    """Commit check: raise and close the system queries of the patients this transaction
    touched (one query per table per check, for those patients only)."""
    touched: set[int] = session.info.pop(_TOUCHED, set())
    registry = _registry(session)
    if not touched or registry is None:
        return
    clock = session.info["reluth_clock"]
    existing: dict[tuple[str, str, int], DataQuery] = {}
    for q in session.scalars(
        select(DataQuery).where(
            DataQuery.patient_id.in_(touched),
            DataQuery.edit_check.is_not(None),
            DataQuery.status.in_(ACTIVE),
        )
    ):
        existing[(q.edit_check or "", q.form_id or "", q.record_id or 0)] = q
    failing: set[tuple[str, str, int]] = set()
    for check in registry.edit_checks:
        form = registry.form(check.form)
        for rid, (pid, message) in failures(session, registry, check, touched).items():
            key = (check.id, form.id, rid)
            failing.add(key)
            if key in existing:
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
    settled = [q for key, q in existing.items() if key not in failing]
    if not settled:
        return
    uow = UnitOfWork(session)  # type: ignore[arg-type]
    saved = uow.reason
    for q in settled:
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
