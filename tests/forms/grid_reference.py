"""The status grid as main computed it before the set-based rewrite (0ab03bd), frozen here
as the oracle of ``test_grid_equivalence``: the same facts matched cell by cell in Python, the
lifecycle layer included. Not used by the product; do not "fix" it (it is what the new grid
must equal)."""

# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.auth.models import Centre
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.errors import NotFound, ValidationError
from reluth.forms.models import MissingData
from reluth.forms.registry import BASELINE, FormDef, Registry
from reluth.forms.service import ACTIVE_QUERY, Grid, _columns
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
    visit_status,
)
from reluth.lifecycle.models import (
    RecordLock,
    SdvClearance,
    SdvMark,
    Signature,
    SignatureInvalidation,
)
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


Key = tuple[str, str]
#: Statuses a lifecycle state may follow: SDV and signatures only of a complete form.
_ENTERED = frozenset({FormStatus.COMPLETE})


class _State:
    """What the lifecycle says of the grid's patients, read once."""

    def __init__(self, session: Session, patients: Mapping[int, int]) -> None:
        ids = list(patients) or [-1]
        self.centres = patients
        self.verified: set[Key] = {
            (t, r)
            for t, r in session.execute(
                select(SdvMark.table_name, SdvMark.record_id)
                .outerjoin(SdvClearance, SdvClearance.sdv_id == SdvMark.id)
                .where(
                    SdvClearance.id.is_(None),
                    SdvMark.field.is_(None),
                    SdvMark.patient_id.in_(ids),
                )
            ).all()
        }
        self.signed: set[Key] = set()
        for (covered,) in session.execute(
            select(Signature.covered)
            .outerjoin(SignatureInvalidation, SignatureInvalidation.signature_id == Signature.id)
            .where(SignatureInvalidation.id.is_(None), Signature.patient_id.in_(ids))
        ).all():
            for key in json.loads(covered):
                table, _, rid = key.partition("/")
                self.signed.add((table, rid))
        self.study: dict[str, bool] = {}
        self.centre: dict[int, str] = {}
        self.patient: dict[int, str] = {}
        self.form: dict[Key, str] = {}
        for lock in session.scalars(select(RecordLock).where(RecordLock.unlocked_at.is_(None))):
            kind = lock.kind
            if lock.scope == "study":
                self.study[kind] = True
            elif lock.scope == "centre" and lock.centre_id is not None:
                self.centre[lock.centre_id] = _stronger(self.centre.get(lock.centre_id), kind)
            elif lock.scope == "patient" and lock.patient_id is not None:
                self.patient[lock.patient_id] = _stronger(self.patient.get(lock.patient_id), kind)
            elif lock.table_name is not None and lock.record_id is not None:
                key = (lock.table_name, lock.record_id)
                self.form[key] = _stronger(self.form.get(key), kind)

    @property
    def locked_anywhere(self) -> bool:
        return bool(self.study or self.centre or self.patient or self.form)

    @property
    def empty(self) -> bool:
        """Nothing verified, signed or locked among these patients: no layer needed."""
        return not (self.verified or self.signed or self.locked_anywhere)

    def lock_kind(self, facts: FormFacts, keys: list[Key]) -> str | None:
        """The strongest lock over the form at this visit: "lock", "freeze" or None."""
        if not self.locked_anywhere:
            return None
        kinds = [
            "lock" if self.study.get("lock") else ("freeze" if self.study else None),
            self.centre.get(self.centres.get(facts.patient_id, -1)),
            self.patient.get(facts.patient_id),
        ]
        if keys and all(k in self.form for k in keys):
            kinds += [self.form[k] for k in keys]
        found = [k for k in kinds if k is not None]
        if not found:
            return None
        return "lock" if "lock" in found else "freeze"

    def layer(self, facts: FormFacts, status: FormStatus) -> FormStatus | None:
        if status is FormStatus.NOT_EXPECTED:
            return None
        keys = [(facts.table, str(i)) for i in facts.record_ids if i]
        kind = self.lock_kind(facts, keys)
        # a freeze stops data entry but not queries: an open query stays visible
        if kind == "lock" or (kind == "freeze" and status is not FormStatus.QUERIED):
            return FormStatus.LOCKED
        if status not in _ENTERED or not keys:
            return None
        if all(k in self.signed for k in keys):
            return FormStatus.SIGNED
        if all(k in self.verified for k in keys):
            return FormStatus.SDV_DONE
        return None


def _stronger(old: str | None, new: str) -> str:
    return "lock" if "lock" in (old, new) else "freeze"


def lifecycle_layer(session: Session, patients: Mapping[int, int]) -> Layer | None:
    """The grid's lifecycle layer for these patients ({patient id: centre id}); None when
    nothing of theirs is verified, signed or locked (a trial before monitoring starts)."""
    state = _State(session, patients)
    return None if state.empty else state.layer


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


def _build_grid(
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


def grid_layers(session: Any, patients: Mapping[int, int]) -> list[Layer]:
    state = _State(session, patients)
    return [] if state.empty else [state.layer]


def build_grid(
    ctx: Ctx, centre: str | None = None, visit: str | None = None, status: str | None = None
) -> Grid:
    """The old grid under the status grid service's permission (read visit)."""
    with ctx.acting(Action.READ, Resource.VISIT):
        return _build_grid(ctx, centre, visit, status)
