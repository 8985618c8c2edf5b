"""Dashboard read model: what a person may see on the home page, already filtered by the policy.

Counts are restricted to the centres the person may see. The per-arm counts are filled in only
for roles granted ``read arm_counts``; for everyone else the field is ``None`` so no template
can leak them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.forms import service as forms
from reluth.patients.models import Inclusion, Patient, Screening
from reluth.randomization.models import Randomization
from reluth.safety import sae
from reluth.safety.models import AdverseEvent
from reluth.sites import service as sites


@dataclass(frozen=True)
class CentreRow:
    code: str
    name: str
    registered: int
    included: int
    randomized: int


@dataclass(frozen=True)
class OverdueVisit:
    centre: str
    patient_code: str
    visit_code: str
    label: str
    window_end: dt.date
    days_overdue: int  # days since the window closed


@dataclass(frozen=True)
class QueryCounts:
    open: int = 0
    answered: int = 0
    oldest_days: int = 0


@dataclass(frozen=True)
class Dashboard:
    as_of: dt.datetime
    target_included: int
    target_randomized: int
    included: int
    randomized: int
    centres: list[CentreRow]
    included_by_month: list[tuple[str, int, int]]  # (YYYY-MM, that month, cumulative)
    screen_failures: list[tuple[str, int]]  # (criterion id, patients failing it)
    serious_adverse_events: int
    saes_waiting: sae.Waiting | None = None  # not yet received by pharmacovigilance
    arm_counts: dict[str, int] | None = None
    overdue_visits: list[OverdueVisit] = field(default_factory=list)
    #: visit status -> visit cells of the status grid, overall and per centre
    status_counts: dict[str, int] = field(default_factory=dict)
    status_by_centre: dict[str, dict[str, int]] = field(default_factory=dict)
    #: centre -> open and answered queries and the days the oldest has been open (query readers)
    queries_by_centre: dict[str, QueryCounts] | None = None
    notes: list[str] = field(default_factory=list)
    #: criterion id -> its text as the screening recorded it (a failure shows what it means)
    criterion_texts: dict[str, str] = field(default_factory=dict)


@service(Action.READ, Resource.DASHBOARD)
def build(ctx: Ctx) -> Dashboard:
    """Recruitment, screen failures, SAEs and overdue visits of the actor's centres; arm counts
    only for roles granted ``read arm_counts``."""
    as_of = ctx.now()
    sample = ctx.protocol.sample_size
    centres = [c for c in sites.list_centres(ctx.session) if ctx.actor.sees_centre(c.id)]
    ids = [c.id for c in centres]
    patients: dict[int, int] = dict(
        ctx.session.execute(
            select(Patient.id, Patient.centre_id).where(Patient.centre_id.in_(ids or [-1]))
        ).all()
    )
    pids = list(patients)
    inclusions = ctx.session.execute(
        select(Inclusion.patient_id, Inclusion.inclusion_date).where(Inclusion.patient_id.in_(pids))
    ).all()
    rands = ctx.session.execute(
        select(Randomization.patient_id, Randomization.arm).where(
            Randomization.patient_id.in_(pids)
        )
    ).all()
    latest: dict[int, tuple[int, str]] = {}
    for pid, sid, status in ctx.session.execute(
        select(Screening.patient_id, Screening.id, Screening.status)
        .where(Screening.patient_id.in_(pids))
        .order_by(Screening.id)
    ).all():
        latest[pid] = (sid, status)
    failed_ids = [sid for sid, status in latest.values() if status == "not_eligible"]
    failures: Counter[str] = Counter()
    texts: dict[str, str] = {}
    for result_json in ctx.session.scalars(
        select(Screening.result_json).where(Screening.id.in_(failed_ids))
    ):
        for c in json.loads(result_json)["criteria"]:
            if c["passes"] is False:
                failures[c["id"]] += 1
                texts.setdefault(c["id"], c.get("text") or "")
    by_month = Counter(day.strftime("%Y-%m") for _pid, day in inclusions)
    cumulative = 0
    months = []
    for month in sorted(by_month):
        cumulative += by_month[month]
        months.append((month, by_month[month], cumulative))
    per_centre_reg = Counter(patients.values())
    per_centre_inc = Counter(patients[pid] for pid, _day in inclusions)
    per_centre_rand = Counter(patients[pid] for pid, _arm in rands)
    saes = 0
    waiting = None
    if ctx.actor.can(Action.READ, Resource.ADVERSE_EVENT):
        waiting = sae.waiting(ctx.session, pids, as_of, ctx.protocol)
        saes = len(
            list(
                ctx.session.scalars(
                    select(AdverseEvent.id).where(
                        AdverseEvent.serious.is_(True),
                        AdverseEvent.patient_id.in_(pids),
                    )
                )
            )
        )
    grid = forms.grid_counts(ctx)
    arm_counts: dict[str, int] | None = None
    if ctx.actor.can(Action.READ, Resource.ARM_COUNTS):
        arm_counts = dict(sorted(Counter(arm for _pid, arm in rands).items()))
    return Dashboard(
        as_of=as_of,
        target_included=sample.included,
        target_randomized=sample.randomized,
        included=len(inclusions),
        randomized=len(rands),
        centres=[
            CentreRow(
                c.code, c.name, per_centre_reg[c.id], per_centre_inc[c.id], per_centre_rand[c.id]
            )
            for c in centres
        ],
        included_by_month=months,
        screen_failures=failures.most_common(),
        criterion_texts=texts,
        serious_adverse_events=saes,
        saes_waiting=waiting,
        arm_counts=arm_counts,
        overdue_visits=_overdue(grid, ctx),
        status_counts=grid.counts,
        queries_by_centre=_queries_by_centre(ctx, {c.id: c.code for c in centres}),
        status_by_centre=grid.by_centre,
    )


@service(Action.READ, Resource.DASHBOARD)
def overdue_visits(ctx: Ctx, centres: dict[int, str] | None = None) -> list[OverdueVisit]:
    """Visits of the person's centres that the status grid says are overdue: the window closed
    before today, nothing was entered for the visit (a visit date, a questionnaire, a lab
    result in the window, a read...) and no missing-data code says why; by centre then age.

    Visits planned after a patient's death or end of study are not owed. Treatment-cycle visits
    (C3/C4 exist only in the experimental arm) are left out for anyone who may not read
    treatment, so the list cannot reveal an arm to a blinded person."""
    return _overdue(forms.grid_counts(ctx), ctx)


def _overdue(grid: forms.GridCounts, ctx: Ctx) -> list[OverdueVisit]:
    labels = {c.code: c.label for c in forms.columns(ctx)}
    rows = [
        OverdueVisit(
            centre,
            patient,
            v.code,
            labels.get(v.code, v.code),
            v.window_end,
            (grid.as_of - v.window_end).days,
        )
        for patient, centre, v in grid.overdue
    ]
    rows.sort(key=lambda r: (r.centre, r.window_end, r.patient_code, r.visit_code))
    return rows


def _queries_by_centre(ctx: Ctx, centres: dict[int, str]) -> dict[str, QueryCounts] | None:
    """Open and answered data queries per centre, with the age of the oldest (days open)."""
    if not ctx.actor.can(Action.READ, Resource.QUERY):
        return None
    from reluth.queries.models import DataQuery
    from reluth.queries.service import days_open

    out: dict[str, dict[str, int]] = {}
    now = ctx.now()
    for q, centre_id in ctx.session.execute(
        select(DataQuery, Patient.centre_id)
        .join(Patient, Patient.id == DataQuery.patient_id)
        .where(
            DataQuery.status.in_(("open", "answered")), Patient.centre_id.in_(list(centres) or [-1])
        )
    ).all():
        row = out.setdefault(centres[centre_id], {"open": 0, "answered": 0, "oldest_days": 0})
        row[q.status] += 1
        row["oldest_days"] = max(row["oldest_days"], days_open(q, now))
    return {c: QueryCounts(**n) for c, n in sorted(out.items())}
