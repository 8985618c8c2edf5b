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
from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.policy import Action, Principal, Resource
from reluth.patients.models import Inclusion, Patient, Screening
from reluth.protocol.definition import load_protocol
from reluth.randomization.models import Randomization
from reluth.safety.models import AdverseEvent


@dataclass(frozen=True)
class CentreRow:
    code: str
    name: str
    registered: int
    included: int
    randomized: int


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
    arm_counts: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)


def build(db: Session, who: Principal, as_of: dt.datetime) -> Dashboard:
    who.require(Action.READ, Resource.DASHBOARD)
    sample = load_protocol().sample_size
    centres = [c for c in auth.list_centres(db) if who.sees_centre(c.id)]
    ids = [c.id for c in centres]
    patients: dict[int, int] = dict(
        db.execute(
            select(Patient.id, Patient.centre_id).where(Patient.centre_id.in_(ids or [-1]))
        ).all()
    )
    pids = list(patients)
    inclusions = db.execute(
        select(Inclusion.patient_id, Inclusion.inclusion_date).where(Inclusion.patient_id.in_(pids))
    ).all()
    rands = db.execute(
        select(Randomization.patient_id, Randomization.arm).where(
            Randomization.patient_id.in_(pids)
        )
    ).all()
    latest: dict[int, tuple[int, str]] = {}
    for pid, sid, status in db.execute(
        select(Screening.patient_id, Screening.id, Screening.status)
        .where(Screening.patient_id.in_(pids))
        .order_by(Screening.assessment_date, Screening.id)
    ).all():
        latest[pid] = (sid, status)
    failed_ids = [sid for sid, status in latest.values() if status == "not_eligible"]
    failures: Counter[str] = Counter()
    for result_json in db.scalars(
        select(Screening.result_json).where(Screening.id.in_(failed_ids))
    ):
        for c in json.loads(result_json)["criteria"]:
            if c["passes"] is False:
                failures[c["id"]] += 1
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
    if who.can(Action.READ, Resource.ADVERSE_EVENT):
        saes = len(
            list(
                db.scalars(
                    select(AdverseEvent.id).where(
                        AdverseEvent.serious.is_(True),
                        AdverseEvent.patient_id.in_(pids),
                    )
                )
            )
        )
    arm_counts: dict[str, int] | None = None
    if who.can(Action.READ, Resource.ARM_COUNTS):
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
        serious_adverse_events=saes,
        arm_counts=arm_counts,
    )
