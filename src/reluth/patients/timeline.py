"""The order of a patient's trial: one set of date rules for every record, whichever path writes.

consent <= inclusion <= the second-PRRT cycles (1 < 2 for ReLUTH) < pre-randomization
assessment <= randomization < the arm's cycles (3 < 4 in ReLUTH's experimental arm; the cycle
numbers are the protocol's, passed in as ``pre_cycles``); clinical dates between 1900-01-01
and today at the site; nothing clinical after the date of death except the death record itself
and the end-of-study (follow-up status) record. Withdrawals stop what they name: no cycle on
or after a withdrawal from treatment; no visit, cycle, laboratory result, questionnaire,
tumour assessment or pregnancy test after a withdrawal from follow-up; nothing dated after an
objection to further use of the data (what was collected before stays); nothing clinical after
the end of study but a death. Sources: the ReLUTH protocol (Deshayes et al.,
BMC Cancer 2022;22:1346, "Study design": two cycles of second PRRT, then the assessment that
gates randomization, then two more cycles in the experimental arm); ICH E6(R3) 2.12 (records
that are attributable, accurate and plausible).

Pure: :class:`Milestones` is loaded by the services, the checks take it and the new date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from reluth.errors import ValidationError

#: No clinical date before this (an ICH-compliant trial started in the 21st century; a birth
#: year is a year, checked separately).
EARLIEST = dt.date(1900, 1, 1)

#: Kinds of dated records checked here.
KINDS = (
    "consent",
    "inclusion",
    "cycle",
    "pre_randomization",
    "randomization",
    "visit",
    "lab",
    "adverse_event",
    "qol",
    "tumour_assessment",
    "death",
    "end_of_study",
    "screening",
    "withdrawal",
    "conmed",
    "medical_history",
    "deviation",
    "pregnancy_test",
)

#: What a withdrawal from follow-up stops (visit-bound data); a withdrawal from treatment
#: stops cycles only; an objection stops every kind but the end-of-study record.
FOLLOW_UP_KINDS = ("visit", "cycle", "lab", "qol", "tumour_assessment", "pregnancy_test")
#: Dated records that may precede the informed consent or follow a death (history, the
#: deviations log).
_UNBOUND_KINDS = ("death", "end_of_study", "medical_history", "deviation")


@dataclass(frozen=True)
class Milestones:
    """The dates a new record is checked against (absent ones are None)."""

    consent: dt.date | None = None
    inclusion: dt.date | None = None
    cycles: Mapping[int, dt.date] = field(default_factory=dict)
    pre_randomization: dt.date | None = None
    randomization: dt.date | None = None
    death: dt.date | None = None
    #: the latest clinical date recorded (labs, AEs, visits, QoL, reads, cycles), for a death
    latest_clinical: dt.date | None = None
    latest_clinical_what: str | None = None
    #: withdrawals (by kind: treatment, follow_up, objection) and the end of study
    withdrawals: Mapping[str, dt.date] = field(default_factory=dict)
    end_of_study: dt.date | None = None
    #: the latest visit-bound record (visits, labs, QoL, tumour assessments), for a withdrawal
    #: from follow-up
    latest_follow_up: dt.date | None = None
    latest_follow_up_what: str | None = None


def in_range(field: str, day: dt.date, today: dt.date) -> dt.date:
    """A clinical date: not before 1900-01-01 and not after today at the site."""
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise ValidationError(field, f"not a date: {day!r}", "YYYY-MM-DD")
    if day < EARLIEST:
        raise ValidationError(field, f"{day} is implausibly early", f"a date from {EARLIEST}")
    if day > today:
        raise ValidationError(field, f"date {day} is in the future", f"a date <= {today}")
    return day


def _after(field: str, day: dt.date, other: dt.date | None, what: str, strict: bool) -> None:
    """``day`` must follow ``other`` (or fall on the same day unless ``strict``)."""
    if other is None:
        return
    if day < other or (strict and day == other):
        problem = f"{day} is the same day as" if day == other else f"{day} is before"
        accepted = f"a date after {other}" if strict else f"a date on or after {other}"
        raise ValidationError(field, f"{problem} the {what} ({other})", accepted)


def _before(field: str, day: dt.date, other: dt.date | None, what: str, strict: bool) -> None:
    """``day`` must precede ``other`` (or fall on the same day unless ``strict``)."""
    if other is None:
        return
    if day > other or (strict and day == other):
        problem = f"{day} is the same day as" if day == other else f"{day} is after"
        accepted = f"a date before {other}" if strict else f"a date on or before {other}"
        raise ValidationError(field, f"{problem} the {what} ({other})", accepted)


def not_after_death(field: str, day: dt.date, m: Milestones) -> None:
    if m.death is not None and day > m.death:
        raise ValidationError(
            field, f"{day} is after the patient's death ({m.death})", f"a date <= {m.death}"
        )


def check(
    m: Milestones,
    kind: str,
    day: dt.date,
    today: dt.date,
    field: str,
    cycle: int | None = None,
    *,
    pre_cycles: tuple[int, ...],
    withdrawal: str | None = None,
) -> dt.date:
    """Refuse ``day`` for a record of ``kind`` if it breaks the trial's order (one message
    naming ``field``); returns it unchanged otherwise. ``pre_cycles`` are the cycle numbers
    given before randomization (the protocol's second PRRT)."""
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    in_range(field, day, today)
    if kind not in _UNBOUND_KINDS:
        not_after_death(field, day, m)
    _not_after_stops(m, kind, day, field)
    if kind == "consent":
        _before(field, day, m.inclusion, "inclusion", strict=False)
    elif kind == "inclusion":
        _after(field, day, m.consent, "informed consent", strict=False)
        if m.cycles:
            first = min(m.cycles)
            _before(field, day, m.cycles[first], f"cycle {first}", strict=False)
        _before(field, day, m.randomization, "randomization", strict=False)
    elif kind == "cycle":
        assert cycle is not None
        _check_cycle(m, cycle, day, field, pre_cycles)
    elif kind == "pre_randomization":
        last = max(pre_cycles) if pre_cycles else None
        if last is not None:
            _after(field, day, m.cycles.get(last), f"cycle {last}", strict=True)
        _before(field, day, m.randomization, "randomization", strict=False)
    elif kind == "randomization":
        _after(field, day, m.pre_randomization, "pre-randomization assessment", strict=False)
        for number, given in sorted(m.cycles.items()):
            if number not in pre_cycles:
                _before(field, day, given, f"cycle {number}", strict=True)
    elif kind in ("lab", "adverse_event", "qol", "tumour_assessment", "pregnancy_test"):
        _after(field, day, m.consent, "informed consent", strict=False)
    elif kind == "visit":
        _after(field, day, m.randomization, "randomization", strict=False)
    elif kind == "death":
        _after(field, day, m.consent, "informed consent", strict=False)
        if m.latest_clinical is not None and day < m.latest_clinical:
            raise ValidationError(
                field,
                f"{day} is before the {m.latest_clinical_what} recorded on {m.latest_clinical}",
                f"a date >= {m.latest_clinical} (correct that record first)",
            )
    elif kind == "end_of_study":
        _after(field, day, m.consent, "informed consent", strict=False)
        _not_before_latest(field, day, m.latest_clinical, m.latest_clinical_what)
    elif kind == "withdrawal":
        assert withdrawal is not None
        _check_withdrawal(m, withdrawal, day, field)
    return day


def _not_before_latest(field: str, day: dt.date, latest: dt.date | None, what: str | None) -> None:
    if latest is not None and day < latest:
        raise ValidationError(
            field,
            f"{day} is before the {what} recorded on {latest}",
            f"a date >= {latest} (correct that record first)",
        )


_STOP_WORDS = {
    "treatment": "withdrawal from treatment",
    "follow_up": "withdrawal from follow-up",
    "objection": "objection to further use of the data",
}


def _not_after_stops(m: Milestones, kind: str, day: dt.date, field: str) -> None:
    """A record may not follow what stops its collection (see the module's docstring)."""
    stops: list[tuple[dt.date, str, bool]] = []  # (date, what, the day itself refused too)
    treatment = m.withdrawals.get("treatment")
    if kind == "cycle" and treatment is not None:
        stops.append((treatment, _STOP_WORDS["treatment"], True))
    follow_up = m.withdrawals.get("follow_up")
    if kind in FOLLOW_UP_KINDS and follow_up is not None:
        stops.append((follow_up, _STOP_WORDS["follow_up"], False))
    objection = m.withdrawals.get("objection")
    if kind != "end_of_study" and objection is not None:
        stops.append((objection, _STOP_WORDS["objection"], False))
    if kind not in ("death", "end_of_study", "withdrawal") and m.end_of_study is not None:
        stops.append((m.end_of_study, "end of study", False))
    for stop, what, inclusive in stops:
        if day > stop or (inclusive and day == stop):
            accepted = f"a date before {stop}" if inclusive else f"a date on or before {stop}"
            problem = "the same day as" if day == stop else "after"
            raise ValidationError(field, f"{day} is {problem} the {what} ({stop})", accepted)


def _check_withdrawal(m: Milestones, kind: str, day: dt.date, field: str) -> None:
    """A withdrawal follows the consent and every record it would stop (correct those first)."""
    _after(field, day, m.consent, "informed consent", strict=False)
    if kind == "treatment" and m.cycles:
        last = max(m.cycles)
        _not_before_latest(field, day, m.cycles[last], f"cycle {last}")
    elif kind == "follow_up":
        _not_before_latest(field, day, m.latest_follow_up, m.latest_follow_up_what)
    elif kind == "objection":
        _not_before_latest(field, day, m.latest_clinical, m.latest_clinical_what)


def collection_ends(m: Milestones) -> tuple[dt.date | None, dt.date | None]:
    """(last day a cycle may still be planned, last day a visit may still be planned): the
    withdrawals, the death and the end of study close the schedule (None: open)."""
    visit_stops = [
        d
        for d in (
            m.withdrawals.get("follow_up"),
            m.withdrawals.get("objection"),
            m.death,
            m.end_of_study,
        )
        if d is not None
    ]
    visits = min(visit_stops) if visit_stops else None
    treatment = m.withdrawals.get("treatment")
    cycle_stops = [d for d in (visits, treatment) if d is not None]
    return (min(cycle_stops) if cycle_stops else None), visits


def _check_cycle(
    m: Milestones, cycle: int, day: dt.date, field: str, pre_cycles: tuple[int, ...]
) -> None:
    """Cycles follow each other; the second-PRRT cycles (``pre_cycles``) come after inclusion
    and before the pre-randomization assessment and the randomization; the arm's cycles come
    after the randomization."""
    _after(field, day, m.cycles.get(cycle - 1), f"cycle {cycle - 1}", strict=True)
    _before(field, day, m.cycles.get(cycle + 1), f"cycle {cycle + 1}", strict=True)
    if cycle in pre_cycles:
        _after(field, day, m.inclusion, "inclusion", strict=False)
        _before(field, day, m.pre_randomization, "pre-randomization assessment", strict=True)
        _before(field, day, m.randomization, "randomization", strict=True)
    else:
        _after(field, day, m.randomization, "randomization", strict=True)


def age_on(birth_year: int, day: dt.date) -> tuple[int, int]:
    """The possible ages in whole years on ``day`` of someone born in ``birth_year`` (before
    and after their birthday)."""
    return day.year - birth_year - 1, day.year - birth_year
