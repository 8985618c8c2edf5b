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
    patients = {
        p.id: p.centre_id
        for p in db.scalars(select(Patient).where(Patient.centre_id.in_(ids or [-1])))
    }
    inclusions = [
        i for i in db.scalars(select(Inclusion).where(Inclusion.patient_id.in_(list(patients))))
    ]
    rands = list(
        db.scalars(select(Randomization).where(Randomization.patient_id.in_(list(patients))))
    )
    latest: dict[int, Screening] = {}
    for s in db.scalars(
        select(Screening)
        .where(Screening.patient_id.in_(list(patients)))
        .order_by(Screening.assessment_date, Screening.id)
    ):
        latest[s.patient_id] = s
    failures: Counter[str] = Counter()
    for s in latest.values():
        if s.status == "not_eligible":
            for c in json.loads(s.result_json)["criteria"]:
                if c["passes"] is False:
                    failures[c["id"]] += 1
    by_month = Counter(i.inclusion_date.strftime("%Y-%m") for i in inclusions)
    cumulative = 0
    months = []
    for month in sorted(by_month):
        cumulative += by_month[month]
        months.append((month, by_month[month], cumulative))
    per_centre_reg = Counter(patients.values())
    per_centre_inc = Counter(patients[i.patient_id] for i in inclusions)
    per_centre_rand = Counter(patients[r.patient_id] for r in rands)
    saes = 0
    if who.can(Action.READ, Resource.ADVERSE_EVENT):
        saes = len(
            list(
                db.scalars(
                    select(AdverseEvent.id).where(
                        AdverseEvent.serious.is_(True),
                        AdverseEvent.patient_id.in_(list(patients)),
                    )
                )
            )
        )
    arm_counts: dict[str, int] | None = None
    if who.can(Action.READ, Resource.ARM_COUNTS):
        arm_counts = dict(sorted(Counter(r.arm for r in rands).items()))
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
