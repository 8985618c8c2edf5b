"""The visit schedule after randomization, and the window status of actual visits (pure).

Every number comes from ``schedule`` in the protocol YAML. Target days count from the
randomization date (day 0). Months are converted to days with the protocol's days_per_month
(30.4375) and rounded to the nearest day.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.protocol.definition import Protocol

VisitKind = Literal[
    "treatment", "tumour_assessment", "follow_up", "laboratory", "qol", "end_of_study"
]
WindowStatus = Literal["in_window", "early", "late", "missed", "due", "upcoming"]


@dataclass(frozen=True)
class PlannedVisit:
    code: str
    kind: VisitKind
    label: str
    day: int
    target_date: dt.date
    window_start: dt.date
    window_end: dt.date
    assumption: bool
    primary_endpoint: bool = False


@dataclass(frozen=True)
class VisitStatus:
    visit: PlannedVisit
    actual_date: dt.date | None
    status: WindowStatus
    days_from_target: int | None


def _visit(
    code: str,
    kind: VisitKind,
    label: str,
    day: int,
    before: int,
    after: int,
    start: dt.date,
    assumption: bool,
    primary: bool = False,
) -> PlannedVisit:
    target = start + dt.timedelta(days=day)
    return PlannedVisit(
        code=code,
        kind=kind,
        label=label,
        day=day,
        target_date=target,
        window_start=target - dt.timedelta(days=before),
        window_end=target + dt.timedelta(days=after),
        assumption=assumption,
        primary_endpoint=primary,
    )


def month_day(months: int, protocol: Protocol) -> int:
    days = Decimal(months) * protocol.schedule.days_per_month
    return int(days.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def planned_visits(randomization_date: dt.date, arm: str, protocol: Protocol) -> list[PlannedVisit]:
    """All planned visits for a patient randomized on ``randomization_date`` to ``arm``.

    A protocol is immutable, so its schedules are memoized with it (the dashboard lays out
    every randomized patient's schedule on each render); an amended copy has its own."""
    return list(_memoized(protocol)(randomization_date, arm))


def qol_timepoints(protocol: Protocol) -> list[str]:
    """The QoL time point codes of the protocol's schedule (QOL-W00 is baseline), the only
    time points a questionnaire may be recorded at. They do not depend on the arm or the date:
    any arm and date give the same codes."""
    visits = planned_visits(dt.date(2000, 1, 1), protocol.arm_codes[0], protocol)
    return [v.code for v in visits if v.kind == "qol"]


def _memoized(protocol: Protocol) -> Callable[[dt.date, str], tuple[PlannedVisit, ...]]:
    def make() -> Callable[[dt.date, str], tuple[PlannedVisit, ...]]:
        @functools.lru_cache(maxsize=8192)
        def visits(randomization_date: dt.date, arm: str) -> tuple[PlannedVisit, ...]:
            return tuple(_planned_visits(randomization_date, arm, protocol))

        return visits

    cached: Callable[[dt.date, str], tuple[PlannedVisit, ...]] = protocol.memo(
        ("schedule.planned_visits",), make
    )
    return cached


def _planned_visits(
    randomization_date: dt.date, arm: str, protocol: Protocol
) -> list[PlannedVisit]:
    arm_def = protocol.arm(arm)
    s = protocol.schedule
    r = randomization_date
    visits: list[PlannedVisit] = []

    tc = s.treatment_cycles
    if arm_def.cycles and arm_def.first_cycle_number is not None and arm_def.cycle_interval_weeks:
        for i in range(arm_def.cycles):
            number = arm_def.first_cycle_number + i
            if i == 0:
                before, after = -tc.first_cycle_window_days[0], tc.first_cycle_window_days[1]
                day = tc.first_cycle_day
            else:
                before = after = tc.window_days
                day = tc.first_cycle_day + i * arm_def.cycle_interval_weeks * 7
            visits.append(
                _visit(
                    f"C{number}",
                    "treatment",
                    f"Cycle {number}: {arm_def.activity_gbq} GBq {arm_def.treatment}",
                    day,
                    before,
                    after,
                    r,
                    tc.assumption,
                )
            )

    ta = s.tumour_assessment
    landmark_week = s.landmark_month6.week
    for week in range(ta.interval_weeks, ta.until_week + 1, ta.interval_weeks):
        primary = week == landmark_week
        label = f"Tumour assessment week {week} (RECIST 1.1)"
        if primary:
            label += f" - month {s.primary_endpoint_month} primary endpoint"
        visits.append(
            _visit(
                f"TA-W{week:02d}",
                "tumour_assessment",
                label,
                week * 7,
                ta.window_days,
                ta.window_days,
                r,
                ta.assumption,
                primary,
            )
        )

    fu = s.follow_up_assessment
    follow_up_days: list[tuple[str, int]] = []
    week = ta.until_week + fu.interval_weeks
    until_day = month_day(fu.until_month, protocol)
    while week * 7 <= until_day:
        follow_up_days.append((f"W{week:02d}", week * 7))
        week += fu.interval_weeks
    month = fu.until_month + fu.then_interval_months
    while month < s.follow_up_months:  # the last one is the end-of-study visit
        follow_up_days.append((f"M{month:02d}", month_day(month, protocol)))
        month += fu.then_interval_months
    for tag, day in follow_up_days:
        visits.append(
            _visit(
                f"FU-{tag}",
                "follow_up",
                f"Follow-up {tag} (tumour assessment, survival)",
                day,
                fu.window_days,
                fu.window_days,
                r,
                fu.assumption,
            )
        )

    lab = s.laboratory
    for week in range(0, lab.until_week + 1, lab.interval_weeks):
        visits.append(
            _visit(
                f"LAB-W{week:02d}",
                "laboratory",
                f"Laboratory (CBC, renal, liver) week {week}",
                week * 7,
                lab.window_days,
                lab.window_days,
                r,
                lab.assumption,
            )
        )

    q = s.qol
    for week in q.weeks:
        visits.append(
            _visit(
                f"QOL-W{week:02d}",
                "qol",
                f"QLQ-C30 + GI.NET21 week {week}",
                week * 7,
                q.window_days,
                q.window_days,
                r,
                q.assumption,
            )
        )
    if q.then_with_follow_up:
        for tag, day in follow_up_days:
            visits.append(
                _visit(
                    f"QOL-{tag}",
                    "qol",
                    f"QLQ-C30 + GI.NET21 {tag}",
                    day,
                    fu.window_days,
                    fu.window_days,
                    r,
                    q.assumption,
                )
            )

    end = month_day(s.follow_up_months, protocol)
    visits.append(
        _visit(
            "EOS",
            "end_of_study",
            f"End of study (month {s.follow_up_months}): tumour assessment, survival, QoL",
            end,
            fu.window_days,
            fu.window_days,
            r,
            False,
        )
    )
    visits.sort(key=lambda v: (v.day, v.kind, v.code))
    return visits


def classify(visit: PlannedVisit, actual: dt.date | None, as_of: dt.date) -> VisitStatus:
    """in_window / early / late for a visit done; missed / due / upcoming for one not done."""
    if actual is not None:
        delta = (actual - visit.target_date).days
        if actual < visit.window_start:
            status: WindowStatus = "early"
        elif actual > visit.window_end:
            status = "late"
        else:
            status = "in_window"
        return VisitStatus(visit, actual, status, delta)
    if as_of > visit.window_end:
        status = "missed"
    elif as_of >= visit.window_start:
        status = "due"
    else:
        status = "upcoming"
    return VisitStatus(visit, None, status, None)


def classify_visits(
    visits: list[PlannedVisit], actual: Mapping[str, dt.date], as_of: dt.date
) -> list[VisitStatus]:
    known = {v.code for v in visits}
    for code in actual:
        if code not in known:
            raise invalid(
                f"visits.{code}",
                "unknown_visit",
                N_("unknown visit code"),
                N_("codes from `reluth schedule`, e.g. {examples}"),
                examples=("TA-W08", "C4"),
            )
    return [classify(v, actual.get(v.code), as_of) for v in visits]
