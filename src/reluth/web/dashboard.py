"""Dashboard read model: what a person may see on the home page, already filtered by the policy.

The arm counts are only filled in for roles granted ``read arm_counts``; for everyone else the
field is ``None`` so no template can leak them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.policy import Action, Principal, Resource


@dataclass(frozen=True)
class CentreRow:
    code: str
    name: str


@dataclass(frozen=True)
class Dashboard:
    as_of: dt.datetime
    centres: list[CentreRow]
    arm_counts: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)


def build(db: Session, who: Principal, as_of: dt.datetime) -> Dashboard:
    centres = [CentreRow(c.code, c.name) for c in auth.list_centres(db) if who.sees_centre(c.id)]
    arm_counts: dict[str, int] | None = None
    if who.can(Action.READ, Resource.ARM_COUNTS):
        arm_counts = {}
    return Dashboard(as_of=as_of, centres=centres, arm_counts=arm_counts)
