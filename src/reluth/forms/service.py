"""Read and write services of the form lifecycle: the patients x visits status grid, and the
missing-data codes of a field or of a whole form at a visit.

The grid is built from a fixed number of queries whatever the number of patients (no query per
patient): every form's stored rows of the actor's centres are read once and matched to the
visits of each patient's schedule as the registry says (a visit code column, a cycle number, a
date inside the window).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from sqlalchemy import String, cast, func, select

from reluth.auth.models import Centre
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import Conflict, NotFound, ValidationError
from reluth.forms import refs
from reluth.forms.models import MissingData
from reluth.forms.registry import BASELINE, FormDef
from reluth.forms.status import (
    FormCell,
    FormFacts,
    FormStatus,
    Layer,
    PatientStatus,
    VisitCell,
    base_status,
    dated_by_data,
    grid_layers,
    summary,
)
from reluth.i18n import N_, get_locale
from reluth.i18n.reasons import refusal
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
    return [Column(BASELINE, N_("Screening to randomization"))] + [
        Column(code, label) for code, (_day, label) in ordered
    ]


class _Stored:
    """Every stored fact that can fill a form of the grid, for the patients in scope, read in a
    fixed number of set-based queries: one per table, the laboratory results aggregated per
    patient and sample day in SQL (a day's results fall in the same visit windows), each
    patient's sample days sorted so a visit's window is found by bisection."""

    def __init__(self, ctx: Ctx, pids: list[int]) -> None:
        s = ctx.session
        ids = pids or [-1]

        def rows(*attrs: Any, where: Any = None) -> list[Any]:
            # Core columns of the mapped tables: plain tuples, no ORM row loading
            cols = [a.class_.__table__.c[a.property.columns[0].name] for a in attrs]
            table = cols[0].table
            stmt = select(*cols).where(table.c.patient_id.in_(ids))
            if where is not None:
                stmt = stmt.where(where)
            return list(s.execute(stmt.order_by(cols[0])).all())

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
        self.reads: dict[tuple[int, str], int] = {
            (pid, tp): i
            for i, pid, tp in rows(
                TumourAssessment.id,
                TumourAssessment.patient_id,
                TumourAssessment.timepoint,
                where=TumourAssessment.__table__.c.reader == "central",
            )
        }
        days: dict[int, list[tuple[dt.date, tuple[int, ...]]]] = defaultdict(list)
        lab = LabResult.__table__.c
        for pid, day, joined in s.execute(
            select(
                lab.patient_id, lab.sample_date, func.aggregate_strings(cast(lab.id, String), ",")
            )
            .where(lab.patient_id.in_(ids))
            .group_by(lab.patient_id, lab.sample_date)
            .order_by(lab.patient_id, lab.sample_date)
        ).all():
            days[pid].append((day, tuple(sorted(int(i) for i in joined.split(",")))))
        #: patient -> (sorted sample days, the result ids of each day)
        self.labs: dict[int, tuple[list[dt.date], list[tuple[int, ...]]]] = {
            pid: ([d for d, _ids in got], [i for _d, i in got]) for pid, got in days.items()
        }
        self.stopped: dict[int, dt.date] = {}
        for _i, pid, day in (
            *rows(Death.id, Death.patient_id, Death.death_date),
            *rows(EndOfStudy.id, EndOfStudy.patient_id, EndOfStudy.end_date),
        ):
            self.stopped[pid] = min(day, self.stopped.get(pid, day))
        #: form -> its record ids under an active query
        self.queried_records: dict[str, set[int]] = defaultdict(set)
        self.queried_visits: set[tuple[int, str, str]] = set()
        for _i, pid, form, rid, vcode in rows(
            DataQuery.id,
            DataQuery.patient_id,
            DataQuery.form_id,
            DataQuery.record_id,
            DataQuery.visit_code,
            where=DataQuery.__table__.c.status.in_(ACTIVE_QUERY),
        ):
            if form is not None and rid is not None:
                self.queried_records[form].add(rid)
            elif form is not None and vcode is not None:
                self.queried_visits.add((pid, form, vcode))
        #: (patient, visit) -> {form: its missing-data code}, in the order they were recorded
        self.missing: dict[tuple[int, str], dict[str, str]] = defaultdict(dict)
        missing = MissingData.__table__.c
        for _i, pid, form, vcode, code in rows(
            MissingData.id,
            MissingData.patient_id,
            MissingData.form_id,
            MissingData.visit_code,
            MissingData.code,
            where=missing.record_id.is_(None) & missing.visit_code.is_not(None),
        ):
            self.missing[(pid, str(vcode))][form] = code

    def labs_in(self, pid: int, start: dt.date, end: dt.date) -> tuple[int, ...]:
        """The laboratory results of ``pid`` sampled from ``start`` to ``end`` (by id)."""
        got = self.labs.get(pid)
        if got is None:
            return ()
        days, ids = got
        lo, hi = bisect_left(days, start), bisect_right(days, end)
        if lo == hi:
            return ()
        if hi - lo == 1:
            return ids[lo]
        return tuple(sorted(chain.from_iterable(ids[lo:hi])))


#: Finds a form's records at a visit: (patient, visit or None for the baseline) -> (record
#: ids, complete).
_Finder = Callable[[int, PlannedVisit | None], tuple[tuple[int, ...], bool]]
_NONE: tuple[tuple[int, ...], bool] = ((), False)


def _one(found: int | None) -> tuple[tuple[int, ...], bool]:
    return _NONE if found is None else ((found,), True)


def _finder(stored: _Stored, form: FormDef, pre_cycles: tuple[int, ...]) -> _Finder:
    """How ``form``'s records are matched to a visit, as the registry says (a visit code
    column, a cycle number, a date inside the window): chosen once per grid, not per cell."""
    fid = form.id
    keyed = {"screening": stored.screening, "inclusion": stored.inclusion}
    keyed["pre_randomization"] = stored.pre
    by_visit = {"visit": stored.visits, "central_read": stored.reads}

    def baseline(pid: int) -> tuple[tuple[int, ...], bool]:
        if fid == "registration":
            return (pid,), True
        if fid == "randomization":
            r = stored.randomization.get(pid)
            return _one(None if r is None else r[0])
        if fid == "cycle":
            got = tuple(stored.cycles[(pid, n)] for n in pre_cycles if (pid, n) in stored.cycles)
            return got, len(got) == len(pre_cycles)
        table = keyed.get(fid)
        return _NONE if table is None else _one(table.get(pid))

    if fid in by_visit:
        table = by_visit[fid]

        def at_visit(pid: int, visit: PlannedVisit) -> tuple[tuple[int, ...], bool]:
            found = table.get((pid, visit.code))
            return _NONE if found is None else ((found,), True)

    elif fid == "lab":

        def at_visit(pid: int, visit: PlannedVisit) -> tuple[tuple[int, ...], bool]:
            got = stored.labs_in(pid, visit.window_start, visit.window_end)
            return got, bool(got)

    elif fid == "qol":

        def at_visit(pid: int, visit: PlannedVisit) -> tuple[tuple[int, ...], bool]:
            qol = stored.qol.get((pid, visit.code))
            if not qol:
                return _NONE
            wanted = form.instruments or tuple(qol)
            return tuple(qol.values()), all(i in qol for i in wanted)

    elif fid == "cycle":

        def at_visit(pid: int, visit: PlannedVisit) -> tuple[tuple[int, ...], bool]:
            number = visit.code.removeprefix(form.visits.prefix)
            return _one(stored.cycles.get((pid, int(number))) if number.isdigit() else None)

    else:

        def at_visit(pid: int, visit: PlannedVisit) -> tuple[tuple[int, ...], bool]:
            return _NONE

    def find(pid: int, visit: PlannedVisit | None) -> tuple[tuple[int, ...], bool]:
        return baseline(pid) if visit is None else at_visit(pid, visit)

    return find


@dataclass(frozen=True)
class _Scope:
    """What one grid computes with: its day, the stored facts, each visit kind's forms with
    their finders, and the lifecycle layers."""

    as_of: dt.date
    stored: _Stored
    forms: dict[str, tuple[tuple[FormDef, _Finder], ...]]
    layers: list[Layer]


def _cell(
    scope: _Scope, pid: int, visit: PlannedVisit | None, detail: bool
) -> tuple[FormStatus, tuple[FormCell, ...]]:
    """One visit's status and (``detail``) its forms' cells: each form's records found, its
    status from them, the visit's window and missing-data codes, then the layers."""
    stored = scope.stored
    code = BASELINE if visit is None else visit.code
    forms = scope.forms[BASELINE if visit is None else visit.kind]
    found = [(f, *find(pid, visit)) for f, find in forms]
    has_data = any(ids for _f, ids, _c in found)
    stop = stored.stopped.get(pid)
    expected = visit is None or stop is None or visit.window_start <= stop
    closed = visit is not None and scope.as_of > visit.window_end
    codes = stored.missing.get((pid, code), {})
    statuses: list[FormStatus] = []
    missings: list[str | None] = []
    dated = -1  # the index of a visit form dated by the data entered for it
    for n, (f, ids, complete) in enumerate(found):
        missing = codes.get(f.id)
        if f.id == "visit" and not ids:
            if has_data:
                complete, ids = True, (0,)  # record id 0: dated by its data, no visit row
                dated = n
            elif missing is None and codes:  # no visit, and a code says why its forms are absent
                missing = next((codes[o.id] for o, _i, _c in found if o.id in codes), None)
        queried = (pid, f.id, code) in stored.queried_visits
        if not queried and ids and (marked := stored.queried_records.get(f.id)):
            queried = any(i in marked for i in ids)
        status = base_status(expected, queried, bool(ids), complete, missing, closed, has_data)
        if scope.layers:
            facts = FormFacts(
                f.id, ids, f.table, pid, complete, queried, missing, closed, has_data, expected
            )
            for layer in scope.layers:
                status = layer(facts, status) or status
        statuses.append(status)
        missings.append(missing)
    if dated >= 0 and statuses[dated] is FormStatus.COMPLETE:
        later = dated_by_data(statuses[:dated] + statuses[dated + 1 :])
        if later is not None:
            statuses[dated] = later
    cells: tuple[FormCell, ...] = ()
    if detail:
        cells = tuple(
            FormCell(f.id, status, ids, missing)
            for (f, ids, _c), status, missing in zip(found, statuses, missings, strict=True)
        )
    return summary(frozenset(statuses)), cells


def _prepare(ctx: Ctx, centre: str | None) -> tuple[list[Any], _Scope, bool]:
    """The grid's patients (the actor's centres, or one centre) and what its cells need."""
    registry = ctx.trial.forms
    sees_treatment = ctx.actor.can(Action.READ, Resource.TREATMENT)
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
            raise refusal(
                NotFound, "centre_not_found", N_("centre {centre} not found"), centre=centre
            )
    stored = _Stored(ctx, [p[0] for p in people])
    pre_cycles = ctx.protocol.pre_randomization_cycles
    forms = {
        kind: tuple(
            (f, _finder(stored, f, pre_cycles))
            for f in registry.forms_at(kind)
            if sees_treatment or not f.treatment
        )
        for kind in registry.matrix
    }
    layers = grid_layers(ctx.session, {p[0]: p[2] for p in people})
    return people, _Scope(ctx.today(), stored, defaultdict(tuple, forms), layers), sees_treatment


def _visits(
    ctx: Ctx, scope: _Scope, pid: int, sees_treatment: bool, visit: str | None
) -> list[PlannedVisit | None]:
    """The visits of ``pid``'s grid row: the baseline, then the schedule from randomization."""
    out: list[PlannedVisit | None] = [None] if visit in (None, BASELINE) else []
    rand = scope.stored.randomization.get(pid)
    if rand is not None:
        out += [
            v
            for v in planned_visits(rand[1], rand[2], ctx.protocol)
            if (sees_treatment or v.kind != "treatment") and visit in (None, v.code)
        ]
    return out


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
    sees_treatment = ctx.actor.can(Action.READ, Resource.TREATMENT)
    columns = _columns(ctx, sees_treatment)
    if visit is not None and visit not in {c.code for c in columns}:
        raise ValidationError(
            "visit",
            f"unknown visit {visit!r}",
            "a visit code of the schedule",
            code="unknown_visit",
            params={"value": visit},
        )
    if status is not None and status not in set(FormStatus):
        raise ValidationError("status", repr(status), ", ".join(FormStatus))
    people, scope, sees_treatment = _prepare(ctx, centre)
    rows: list[PatientStatus] = []
    counts: Counter[str] = Counter()
    by_centre: dict[str, Counter[str]] = defaultdict(Counter)
    for pid, code, _cid, centre_code in people:
        cells: dict[str, VisitCell] = {}
        for v in _visits(ctx, scope, pid, sees_treatment, visit):
            summary_status, forms = _cell(scope, pid, v, True)
            if v is None:
                cells[BASELINE] = VisitCell(BASELINE, summary_status, forms)
            else:
                cells[v.code] = VisitCell(v.code, summary_status, forms, v.window_end)
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
        scope.as_of,
        columns,
        rows,
        dict(counts),
        {c: dict(n) for c, n in sorted(by_centre.items())},
    )


@dataclass(frozen=True)
class GridCounts:
    """The grid's visit statuses counted, overall and per centre, and its overdue visits
    (patient, centre, visit, window end), without the grid's rows and form cells."""

    as_of: dt.date
    counts: dict[str, int]
    by_centre: dict[str, dict[str, int]]
    overdue: list[tuple[str, str, PlannedVisit]]


def grid_counts(ctx: Ctx) -> GridCounts:
    """The dashboard's view of the grid (inside a declared service): each visit's status only,
    computed as :func:`build_grid` computes it, no form cell built."""
    people, scope, sees_treatment = _prepare(ctx, None)
    counts: Counter[str] = Counter()
    by_centre: dict[str, Counter[str]] = defaultdict(Counter)
    overdue: list[tuple[str, str, PlannedVisit]] = []
    for pid, code, _cid, centre_code in people:
        here = by_centre[centre_code]
        for v in _visits(ctx, scope, pid, sees_treatment, None):
            got, _forms = _cell(scope, pid, v, False)
            counts[got] += 1
            here[got] += 1
            if got is FormStatus.OVERDUE and v is not None:
                overdue.append((code, centre_code, v))
    return GridCounts(
        scope.as_of,
        dict(counts),
        {c: dict(n) for c, n in sorted(by_centre.items()) if n},
        overdue,
    )


# --- missing-data codes ---------------------------------------------------------------------


def _reason(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(
            "reason",
            "a reason is required",
            f"1-{REASON_MAX} characters",
            code="reason_missing",
            params={"limit": REASON_MAX},
        )
    value = text.strip()
    if len(value) > REASON_MAX or any(not (c.isprintable() or c in "\n\t") for c in value):
        raise ValidationError(
            "reason",
            "too long or not printable",
            f"1-{REASON_MAX} characters",
            code="reason_not_storable",
            params={"limit": REASON_MAX},
        )
    return value


def _form_resource(ctx: Ctx, form: FormDef) -> Resource:
    try:
        return Resource(form.resource)
    except ValueError:
        raise ValidationError(
            "form",
            f"{form.id} has no policy resource",
            None,
            code="form_without_resource",
            params={"value": form.id},
        ) from None


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
                raise ValidationError("item", N_("missing"), ", ".join(f.name for f in form.fields))
            registry.missing_code(form, item, code)
            ref = refs.ref_of(ctx.session, registry, form.id, record_id)
            patient = patients.get_patient(ctx, ref.patient_code)
            if (
                getattr(
                    refs.load_row(ctx.session, registry, ref), form.field(item).column or "", None
                )
                is not None
            ):
                raise refusal(
                    Conflict,
                    "value_present",
                    N_("{form} {record} has a value for {item}: correct it instead"),
                    form=form.named(),
                    record=str(record_id),
                    item=form.field(item).named(),
                )
            visit = None
        else:
            if patient_code is None or visit_code is None:
                raise ValidationError(
                    "visit_code", N_("missing"), N_("a record and field, or a patient and visit")
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
            raise refusal(
                Conflict,
                "missing_code_present",
                N_("a missing-data code ({missing}) is already recorded there"),
                missing=existing.code,
            )
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
            raise refs.record_not_found(form, record_id)
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
