"""Read and write services of the form lifecycle: the patients x visits status grid, and the
missing-data codes of a field or of a whole form at a visit.

The grid is built from a fixed number of queries whatever the number of patients (no query per
patient): every form's stored rows of the actor's centres are read once and matched to the
visits of each patient's schedule as the registry says (a visit code column, a cycle number, a
date inside the window).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from reluth.auth.models import Centre
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import Conflict, NotFound, ValidationError
from reluth.forms import refs
from reluth.forms.models import MissingData
from reluth.forms.registry import BASELINE, FormDef, Registry
from reluth.forms.status import (
    DONE,
    URGENCY,
    FormCell,
    FormFacts,
    FormStatus,
    Layer,
    PatientStatus,
    VisitCell,
    form_status,
    grid_layers,
    visit_status,
)
from reluth.i18n import get_locale
from reluth.patients import service as patients
from reluth.patients.models import (
    Death,
    EndOfStudy,
    Inclusion,
    Patient,
    PreRandomizationAssessment,
    Screening,
)
from reluth.protocol.schedule import PlannedVisit, planned_visits
from reluth.qol.models import QolQuestionnaire
from reluth.queries.models import DataQuery
from reluth.randomization.models import Randomization
from reluth.response.models import TumourAssessment
from reluth.safety.models import LabResult
from reluth.treatment.models import Administration, Visit

#: Query states that keep a form "queried" (a closed query no longer does).
ACTIVE_QUERY = ("open", "answered")
REASON_MAX = 2000


@dataclass(frozen=True)
class Column:
    code: str
    label: str


@dataclass(frozen=True)
class Grid:
    as_of: dt.date
    columns: list[Column]
    rows: list[PatientStatus]
    counts: dict[str, int]  # visit status -> number of visit cells
    by_centre: dict[str, dict[str, int]] = field(default_factory=dict)


def columns(ctx: Ctx) -> list[Column]:
    """Every visit column the actor may see (pure presentation of the protocol's schedule)."""
    return _columns(ctx, ctx.actor.can(Action.READ, Resource.TREATMENT))


def _columns(ctx: Ctx, sees_treatment: bool) -> list[Column]:
    seen: dict[str, tuple[int, str]] = {}
    for arm in ctx.protocol.arm_codes:
        for v in planned_visits(dt.date(2000, 1, 1), arm, ctx.protocol):
            if v.kind == "treatment" and not sees_treatment:
                continue
            seen.setdefault(v.code, (v.day, v.label))
    ordered = sorted(seen.items(), key=lambda kv: (kv[1][0], kv[0]))
    return [Column(BASELINE, "Screening to randomization")] + [
        Column(code, label) for code, (_day, label) in ordered
    ]


class _Stored:
    """Every stored row that can fill a form of the grid, for the patients in scope."""

    def __init__(self, ctx: Ctx, pids: list[int]) -> None:
        s = ctx.session
        ids = pids or [-1]

        def rows(*cols: Any) -> list[Any]:
            model = cols[0].class_
            return list(s.execute(select(*cols).where(model.patient_id.in_(ids))).all())

        self.screening = {pid: i for i, pid in rows(Screening.id, Screening.patient_id)}
        self.inclusion = {pid: i for i, pid in rows(Inclusion.id, Inclusion.patient_id)}
        self.pre = {
            pid: i
            for i, pid in rows(PreRandomizationAssessment.id, PreRandomizationAssessment.patient_id)
        }
        self.randomization: dict[int, tuple[int, dt.date, str]] = {
            pid: (i, at.date(), arm)
            for i, pid, at, arm in rows(
                Randomization.id,
                Randomization.patient_id,
                Randomization.randomized_at,
                Randomization.arm,
            )
        }
        self.cycles: dict[tuple[int, int], int] = {
            (pid, n): i
            for i, pid, n in rows(
                Administration.id, Administration.patient_id, Administration.cycle
            )
        }
        self.visits: dict[tuple[int, str], int] = {
            (pid, c): i for i, pid, c in rows(Visit.id, Visit.patient_id, Visit.visit_code)
        }
        self.qol: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
        for i, pid, tp, inst in rows(
            QolQuestionnaire.id,
            QolQuestionnaire.patient_id,
            QolQuestionnaire.timepoint,
            QolQuestionnaire.instrument,
        ):
            self.qol[(pid, tp)][inst] = i
        self.reads: dict[tuple[int, str], int] = {}
        for i, pid, tp, reader in rows(
            TumourAssessment.id,
            TumourAssessment.patient_id,
            TumourAssessment.timepoint,
            TumourAssessment.reader,
        ):
            if reader == "central":
                self.reads[(pid, tp)] = i
        self.labs: dict[int, list[tuple[dt.date, int]]] = defaultdict(list)
        for i, pid, day in rows(LabResult.id, LabResult.patient_id, LabResult.sample_date):
            self.labs[pid].append((day, i))
        self.stopped: dict[int, dt.date] = {}
        for _i, pid, day in (
            *rows(Death.id, Death.patient_id, Death.death_date),
            *rows(EndOfStudy.id, EndOfStudy.patient_id, EndOfStudy.end_date),
        ):
            self.stopped[pid] = min(day, self.stopped.get(pid, day))
        self.queried_records: set[tuple[str, int]] = set()
        self.queried_visits: set[tuple[int, str, str]] = set()
        self.open_queries: Counter[int] = Counter()
        for pid, form, rid, vcode in s.execute(
            select(
                DataQuery.patient_id, DataQuery.form_id, DataQuery.record_id, DataQuery.visit_code
            ).where(DataQuery.patient_id.in_(ids), DataQuery.status.in_(ACTIVE_QUERY))
        ).all():
            self.open_queries[pid] += 1
            if form is not None and rid is not None:
                self.queried_records.add((form, rid))
            elif form is not None and vcode is not None:
                self.queried_visits.add((pid, form, vcode))
        self.missing: dict[tuple[int, str, str], str] = {}
        for pid, form, vcode, code in s.execute(
            select(
                MissingData.patient_id,
                MissingData.form_id,
                MissingData.visit_code,
                MissingData.code,
            ).where(
                MissingData.patient_id.in_(ids),
                MissingData.record_id.is_(None),
                MissingData.visit_code.is_not(None),
            )
        ).all():
            self.missing[(pid, form, str(vcode))] = code


def _records(
    stored: _Stored,
    form: FormDef,
    pid: int,
    visit: PlannedVisit | None,
    pre_cycles: tuple[int, ...],
) -> tuple[tuple[int, ...], bool]:
    """The records of ``form`` for the visit (None: the baseline) and whether it is complete."""
    if visit is None:
        if form.id == "registration":
            found: int | None = pid
        elif form.id == "screening":
            found = stored.screening.get(pid)
        elif form.id == "inclusion":
            found = stored.inclusion.get(pid)
        elif form.id == "pre_randomization":
            found = stored.pre.get(pid)
        elif form.id == "randomization":
            r = stored.randomization.get(pid)
            found = None if r is None else r[0]
        elif form.id == "cycle":
            ids = tuple(stored.cycles[(pid, n)] for n in pre_cycles if (pid, n) in stored.cycles)
            return ids, len(ids) == len(pre_cycles)
        else:
            found = None
        return ((found,), True) if found is not None else ((), False)
    code = visit.code
    if form.id == "visit":
        found = stored.visits.get((pid, code))
    elif form.id == "central_read":
        found = stored.reads.get((pid, code))
    elif form.id == "qol":
        got = stored.qol.get((pid, code), {})
        wanted = form.instruments or tuple(got)
        return tuple(got.values()), bool(got) and all(i in got for i in wanted)
    elif form.id == "cycle":
        number = code.removeprefix(form.visits.prefix)
        found = stored.cycles.get((pid, int(number))) if number.isdigit() else None
    elif form.id == "lab":
        ids = tuple(
            i
            for day, i in stored.labs.get(pid, ())
            if visit.window_start <= day <= visit.window_end
        )
        return ids, bool(ids)
    else:
        found = None
    return ((found,), True) if found is not None else ((), False)


def _cells(
    stored: _Stored,
    registry: Registry,
    forms: tuple[FormDef, ...],
    pid: int,
    visit: PlannedVisit | None,
    as_of: dt.date,
    pre_cycles: tuple[int, ...],
    layers: list[Layer],
) -> list[FormCell]:
    code = BASELINE if visit is None else visit.code
    found = {f.id: _records(stored, f, pid, visit, pre_cycles) for f in forms}
    has_data = any(ids for ids, _c in found.values())
    stop = stored.stopped.get(pid)
    expected = visit is None or stop is None or visit.window_start <= stop
    closed = visit is not None and as_of > visit.window_end
    cells = []
    dated = False
    for f in forms:
        ids, complete = found[f.id]
        missing = stored.missing.get((pid, f.id, code))
        if f.id == "visit" and not ids:
            if has_data:
                complete, ids = True, (0,)  # the visit is dated by the data entered for it
                dated = True
            elif missing is None:  # no visit, and a code says why its forms are absent
                missing = next(
                    (
                        stored.missing[(pid, o.id, code)]
                        for o in forms
                        if (pid, o.id, code) in stored.missing
                    ),
                    None,
                )
        facts = FormFacts(
            form=f.id,
            record_ids=ids,  # 0: a visit dated by its data, with no visit row
            table=f.table,
            patient_id=pid,
            complete=complete,
            queried=any((f.id, i) in stored.queried_records for i in ids)
            or (pid, f.id, code) in stored.queried_visits,
            missing_code=missing,
            window_closed=closed,
            visit_has_data=has_data,
            expected=expected,
        )
        cells.append(
            FormCell(f.id, form_status(facts, layers), tuple(i for i in ids if i), missing)
        )
    return _dated_by_data(cells) if dated else cells


def _dated_by_data(cells: list[FormCell]) -> list[FormCell]:
    """A visit with no visit row of its own, dated by the data entered for it, is as far in
    its lifecycle (SDV done, signed, locked) as the least advanced of those forms."""
    rest = [
        c.status for c in cells if c.form != "visit" and c.status is not FormStatus.NOT_EXPECTED
    ]
    entered = [s for s in rest if s is not FormStatus.MISSING]
    if not entered or not set(rest) <= DONE:
        return cells
    status = max(entered, key=lambda s: URGENCY[s])
    return [
        FormCell(c.form, status, c.record_ids, c.missing_code)
        if c.form == "visit" and c.status is FormStatus.COMPLETE
        else c
        for c in cells
    ]


@service(Action.READ, Resource.VISIT)
def status_grid(
    ctx: Ctx,
    centre: str | None = None,
    visit: str | None = None,
    status: str | None = None,
) -> Grid:
    """Patients x visits of the actor's centres with each form's status (filters: a centre
    code, a visit code, a status: the patients with a visit, or a form of a visit, in that
    status). Treatment forms and cycle visits only for people who
    may read treatment (they reveal the arm)."""
    return build_grid(ctx, centre, visit, status)


def build_grid(
    ctx: Ctx,
    centre: str | None = None,
    visit: str | None = None,
    status: str | None = None,
) -> Grid:
    """The grid, inside a declared service (its grant scopes the centres)."""
    as_of = ctx.today()
    registry = ctx.trial.forms
    sees_treatment = ctx.actor.can(Action.READ, Resource.TREATMENT)
    columns = _columns(ctx, sees_treatment)
    if visit is not None and visit not in {c.code for c in columns}:
        raise ValidationError("visit", f"unknown visit {visit!r}", "a visit code of the schedule")
    if status is not None and status not in set(FormStatus):
        raise ValidationError("status", repr(status), ", ".join(FormStatus))
    stmt = select(Patient.id, Patient.patient_code, Patient.centre_id, Centre.code).join(
        Centre, Centre.id == Patient.centre_id
    )
    if centre is not None:
        stmt = stmt.where(Centre.code == centre)
    people = [
        row
        for row in ctx.session.execute(stmt.order_by(Patient.patient_code)).all()
        if ctx.sees_centre(row[2])
    ]
    if centre is not None and not people:
        known = ctx.session.scalar(select(Centre.id).where(Centre.code == centre))
        if known is None or not ctx.sees_centre(known):
            raise NotFound(f"centre {centre} not found")
    stored = _Stored(ctx, [p[0] for p in people])
    layers = grid_layers(ctx.session, {p[0]: p[2] for p in people})
    pre_cycles = ctx.protocol.pre_randomization_cycles
    matrix = {
        kind: tuple(f for f in registry.forms_at(kind) if sees_treatment or not f.treatment)
        for kind in registry.matrix
    }
    rows: list[PatientStatus] = []
    counts: Counter[str] = Counter()
    by_centre: dict[str, Counter[str]] = defaultdict(Counter)
    for pid, code, _cid, centre_code in people:
        cells: dict[str, VisitCell] = {}
        if visit in (None, BASELINE):
            forms = _cells(stored, registry, matrix[BASELINE], pid, None, as_of, pre_cycles, layers)
            cells[BASELINE] = VisitCell(BASELINE, visit_status(forms), tuple(forms))
        rand = stored.randomization.get(pid)
        if rand is not None:
            for v in planned_visits(rand[1], rand[2], ctx.protocol):
                if (v.kind == "treatment" and not sees_treatment) or visit not in (None, v.code):
                    continue
                forms = _cells(
                    stored, registry, matrix.get(v.kind, ()), pid, v, as_of, pre_cycles, layers
                )
                cells[v.code] = VisitCell(v.code, visit_status(forms), tuple(forms), v.window_end)
        if status is not None and not any(
            c.status == status or any(f.status == status for f in c.forms) for c in cells.values()
        ):
            continue
        rows.append(PatientStatus(code, centre_code, cells))
        for c in cells.values():
            counts[c.status] += 1
            by_centre[centre_code][c.status] += 1
    if visit is not None:
        columns = [c for c in columns if c.code == visit]
    return Grid(
        as_of,
        columns,
        rows,
        dict(counts),
        {c: dict(n) for c, n in sorted(by_centre.items())},
    )


# --- missing-data codes ---------------------------------------------------------------------


def _reason(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("reason", "a reason is required", f"1-{REASON_MAX} characters")
    value = text.strip()
    if len(value) > REASON_MAX or any(not (c.isprintable() or c in "\n\t") for c in value):
        raise ValidationError("reason", "too long or not printable", f"1-{REASON_MAX} characters")
    return value


def _form_resource(ctx: Ctx, form: FormDef) -> Resource:
    try:
        return Resource(form.resource)
    except ValueError:
        raise ValidationError("form", f"{form.id} has no policy resource", None) from None


@service(Action.WRITE, Resource.PATIENT)
def record_missing(
    ctx: Ctx,
    form_id: str,
    code: str,
    reason: str,
    *,
    record_id: int | None = None,
    item: str | None = None,
    patient_code: str | None = None,
    visit_code: str | None = None,
) -> MissingData:
    """Say why a value is absent: a field of a saved record (``record_id`` + ``item``, the code
    among the field's allowed ones) or a whole form at a visit (``patient_code`` +
    ``visit_code``, any code). The writer needs the form's own write permission."""
    registry = ctx.trial.forms
    form = registry.form(form_id)
    resource = _form_resource(ctx, form)
    text = _reason(reason)
    with ctx.acting(Action.WRITE, resource):
        if record_id is not None:
            if item is None:
                raise ValidationError("item", "missing", ", ".join(f.name for f in form.fields))
            registry.missing_code(form, item, code)
            ref = refs.ref_of(ctx.session, registry, form.id, record_id)
            patient = patients.get_patient(ctx, ref.patient_code)
            if (
                getattr(
                    refs.load_row(ctx.session, registry, ref), form.field(item).column or "", None
                )
                is not None
            ):
                raise Conflict(f"{form.id} {record_id} has a value for {item}: correct it instead")
            visit = None
        else:
            if patient_code is None or visit_code is None:
                raise ValidationError(
                    "visit_code", "missing", "a record and field, or a patient and visit"
                )
            registry.missing_code(form, None, code)
            patient = patients.get_patient(ctx, patient_code)
            visit = visit_code
            item = None
        existing = ctx.session.scalars(
            select(MissingData).where(
                MissingData.patient_id == patient.id,
                MissingData.form_id == form.id,
                MissingData.record_id.is_(None)
                if record_id is None
                else MissingData.record_id == record_id,
                MissingData.visit_code.is_(None)
                if visit is None
                else MissingData.visit_code == visit,
                MissingData.item.is_(None) if item is None else MissingData.item == item,
            )
        ).first()
        if existing is not None:
            raise Conflict(f"a missing-data code ({existing.code}) is already recorded there")
        row = MissingData(
            patient_id=patient.id,
            form_id=form.id,
            record_id=record_id,
            visit_code=visit,
            item=item,
            code=code,
            reason=text,
            recorded_by=ctx.actor.username,
            recorded_at=ctx.now(),
            protocol_version=ctx.protocol.label,
        )
        ctx.session.add(row)
        ctx.session.flush()
        return row


@service(Action.READ, Resource.PATIENT)
def missing_codes(ctx: Ctx, patient_code: str) -> list[MissingData]:
    """The missing-data codes of one patient (forms the actor may read)."""
    patient = patients.get_patient(ctx, patient_code)
    registry = ctx.trial.forms
    out = []
    for row in ctx.session.scalars(
        select(MissingData).where(MissingData.patient_id == patient.id).order_by(MissingData.id)
    ):
        form = registry.form(row.form_id)
        if ctx.actor.can(Action.READ, _form_resource(ctx, form)):
            out.append(row)
    return out


def codes_by_visit(rows: Iterable[MissingData]) -> dict[tuple[str, str], MissingData]:
    """(form, visit) -> the code of a whole form at a visit."""
    return {(r.form_id, r.visit_code): r for r in rows if r.visit_code and r.record_id is None}


# --- one saved form instance: its values, missing-data codes and queries ----------------------


@dataclass(frozen=True)
class FieldValue:
    name: str
    label: str
    value: str
    missing: MissingData | None
    active_queries: int


@dataclass(frozen=True)
class RecordView:
    ref: refs.RecordRef
    form: FormDef
    fields: list[FieldValue]
    queries: list[DataQuery]
    correctable: bool


def _shown(value: Any) -> str:
    """A stored value as text (dates ISO, decimals without trailing zeros, yes/no)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    text = str(value)
    if hasattr(value, "normalize"):
        text = format(value.normalize(), "f")
    return text if len(text) <= 200 else text[:197] + "..."


def _value(row: Any, column: str | None) -> str:
    if column is None:
        return ""
    owner, _, name = column.rpartition(".")
    if owner:  # a child table (the lesions of a read)
        children = getattr(row, "lesions", None) or []
        return f"{len(children)} rows" if children else ""
    return _shown(getattr(row, name, None))


@service(Action.READ, Resource.PATIENT)
def record_view(ctx: Ctx, form_id: str, record_id: int) -> RecordView:
    """A saved form instance as the registry lays it out: each field's value, its
    missing-data code and active queries, and the queries on the record. The reader needs the
    form's own read permission for the record's centre (else the same NotFound as unknown)."""
    registry = ctx.trial.forms
    form = registry.form(form_id)
    with ctx.acting(Action.READ, _form_resource(ctx, form)):
        ref = refs.ref_of(ctx.session, registry, form.id, record_id)
        if not ctx.sees_centre(ref.centre_id):
            raise NotFound(f"{form.label} {record_id} not found")
        row = refs.load_row(ctx.session, registry, ref)
    codes = {
        m.item: m
        for m in ctx.session.scalars(
            select(MissingData).where(
                MissingData.form_id == form.id, MissingData.record_id == record_id
            )
        )
    }
    queries = list(
        ctx.session.scalars(
            select(DataQuery)
            .where(DataQuery.form_id == form.id, DataQuery.record_id == record_id)
            .order_by(DataQuery.id)
        )
    )
    active = Counter(q.item for q in queries if q.status in ACTIVE_QUERY)
    fields = [
        FieldValue(
            f.name,
            f.label_for(row, get_locale()),
            _value(row, f.column),
            codes.get(f.name),
            active[f.name],
        )
        for f in form.fields
        if f.column is not None
        and (f.resource is None or ctx.actor.can(Action.READ, Resource(f.resource)))
    ]
    from reluth.forms.bindings import BINDINGS

    return RecordView(ref, form, fields, queries, form.id in BINDINGS and bool(form.correctable))
