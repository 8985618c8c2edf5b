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
from reluth.i18n import N_
from reluth.i18n.reasons import Field, Reason, Word

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


def _refuse(field: str, problem: Reason, accepted: Reason | None, code: str) -> ValidationError:
    """The refusal of a date naming ``field``: English in the message, in the reader's language
    where shown (the field by its label, days as each language writes them)."""
    shown = (
        Reason(
            "timeline.refused",
            N_("{field}: {problem} (accepted: {accepted})"),
            {"field": Field(field), "problem": problem, "accepted": accepted},
        )
        if accepted is not None
        else Reason(
            "timeline.refused",
            N_("{field}: {problem}"),
            {"field": Field(field), "problem": problem},
        )
    )
    return ValidationError(
        field,
        problem.english(),
        accepted.english() if accepted is not None else None,
        code=code,
        params={"reason": shown},
    )


def _what(what: str | Reason) -> Reason | Word:
    return what if isinstance(what, Reason) else Word(what)


def cycle_word(number: int, article: bool = True) -> Reason:
    """A cycle as the order's messages name it (``the cycle 2``), or bare (``cycle 2``)."""
    if article:
        return Reason("timeline.the_cycle", N_("the cycle {number}"), {"number": number})
    return Reason("timeline.cycle", N_("cycle {number}"), {"number": number})


def in_range(field: str, day: dt.date, today: dt.date) -> dt.date:
    """A clinical date: not before 1900-01-01 and not after today at the site."""
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise ValidationError(
            field, f"not a date: {day!r}", "YYYY-MM-DD", code="not_a_date", params={"value": day}
        )
    if day < EARLIEST:
        raise _refuse(
            field,
            Reason("timeline.too_early", N_("{day} is implausibly early"), {"day": day}),
            Reason("timeline.from", N_("a date from {earliest}"), {"earliest": EARLIEST}),
            "date_too_early",
        )
    if day > today:
        raise _refuse(
            field,
            Reason("timeline.future", N_("date {day} is in the future"), {"day": day}),
            Reason("timeline.until", N_("a date on or before {today}"), {"today": today}),
            "date_in_future",
        )
    return day


def _order(
    field: str, day: dt.date, other: dt.date, what: str | Reason, strict: bool, after: bool
) -> ValidationError:
    if day == other:
        problem = N_("{day} is the same day as {what} ({other})")
    else:
        problem = (
            N_("{day} is before {what} ({other})")
            if after
            else N_("{day} is after {what} ({other})")
        )
    if after:
        accepted = N_("a date after {other}") if strict else N_("a date on or after {other}")
    else:
        accepted = N_("a date before {other}") if strict else N_("a date on or before {other}")
    return _refuse(
        field,
        Reason("timeline.order", problem, {"day": day, "what": _what(what), "other": other}),
        Reason("timeline.accepted", accepted, {"other": other}),
        "date_out_of_order",
    )


def _after(
    field: str, day: dt.date, other: dt.date | None, what: str | Reason, strict: bool
) -> None:
    """``day`` must follow ``other`` (or fall on the same day unless ``strict``)."""
    if other is None:
        return
    if day < other or (strict and day == other):
        raise _order(field, day, other, what, strict, after=True)


def _before(
    field: str, day: dt.date, other: dt.date | None, what: str | Reason, strict: bool
) -> None:
    """``day`` must precede ``other`` (or fall on the same day unless ``strict``)."""
    if other is None:
        return
    if day > other or (strict and day == other):
        raise _order(field, day, other, what, strict, after=False)


def not_after_death(field: str, day: dt.date, m: Milestones) -> None:
    if m.death is not None and day > m.death:
        raise _refuse(
            field,
            Reason(
                "timeline.after_death",
                N_("{day} is after the patient's death ({death})"),
                {"day": day, "death": m.death},
            ),
            Reason("timeline.until", N_("a date on or before {today}"), {"today": m.death}),
            "date_after_death",
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
        _before(field, day, m.inclusion, _INCLUSION, strict=False)
    elif kind == "inclusion":
        _after(field, day, m.consent, _CONSENT, strict=False)
        if m.cycles:
            first = min(m.cycles)
            _before(field, day, m.cycles[first], cycle_word(first), strict=False)
        _before(field, day, m.randomization, _RANDOMIZATION, strict=False)
    elif kind == "cycle":
        assert cycle is not None
        _check_cycle(m, cycle, day, field, pre_cycles)
    elif kind == "pre_randomization":
        last = max(pre_cycles) if pre_cycles else None
        if last is not None:
            _after(field, day, m.cycles.get(last), cycle_word(last), strict=True)
        _before(field, day, m.randomization, _RANDOMIZATION, strict=False)
    elif kind == "randomization":
        _after(field, day, m.pre_randomization, _PRE_RANDOMIZATION, strict=False)
        for number, given in sorted(m.cycles.items()):
            if number not in pre_cycles:
                _before(field, day, given, cycle_word(number), strict=True)
    elif kind in ("lab", "adverse_event", "qol", "tumour_assessment", "pregnancy_test"):
        _after(field, day, m.consent, _CONSENT, strict=False)
    elif kind == "visit":
        _after(field, day, m.randomization, _RANDOMIZATION, strict=False)
    elif kind == "death" or kind == "end_of_study":
        _after(field, day, m.consent, _CONSENT, strict=False)
        _not_before_latest(field, day, m.latest_clinical, m.latest_clinical_what)
    elif kind == "withdrawal":
        assert withdrawal is not None
        _check_withdrawal(m, withdrawal, day, field)
    return day


def _not_before_latest(
    field: str, day: dt.date, latest: dt.date | None, what: str | Reason | None
) -> None:
    if latest is not None and day < latest:
        raise _refuse(
            field,
            Reason(
                "timeline.before_latest",
                N_("{day} is before the {what} recorded on {latest}"),
                {"day": day, "what": _what(what or ""), "latest": latest},
            ),
            Reason(
                "timeline.correct_first",
                N_("a date on or after {latest} (correct that record first)"),
                {"latest": latest},
            ),
            "date_out_of_order",
        )


_INCLUSION = N_("the inclusion")
_CONSENT = N_("the informed consent")
_RANDOMIZATION = N_("the randomization")
_PRE_RANDOMIZATION = N_("the pre-randomization assessment")
_STOP_WORDS = {
    "treatment": N_("the withdrawal from treatment"),
    "follow_up": N_("the withdrawal from follow-up"),
    "objection": N_("the objection to further use of the data"),
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
        stops.append((m.end_of_study, N_("the end of study"), False))
    for stop, what, inclusive in stops:
        if day > stop or (inclusive and day == stop):
            raise _order(field, day, stop, what, inclusive, after=False)


def _check_withdrawal(m: Milestones, kind: str, day: dt.date, field: str) -> None:
    """A withdrawal follows the consent and every record it would stop (correct those first)."""
    _after(field, day, m.consent, _CONSENT, strict=False)
    if kind == "treatment" and m.cycles:
        last = max(m.cycles)
        _not_before_latest(field, day, m.cycles[last], cycle_word(last, article=False))
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
    _after(field, day, m.cycles.get(cycle - 1), cycle_word(cycle - 1), strict=True)
    _before(field, day, m.cycles.get(cycle + 1), cycle_word(cycle + 1), strict=True)
    if cycle in pre_cycles:
        _after(field, day, m.inclusion, _INCLUSION, strict=False)
        _before(field, day, m.pre_randomization, _PRE_RANDOMIZATION, strict=True)
        _before(field, day, m.randomization, _RANDOMIZATION, strict=True)
    else:
        _after(field, day, m.randomization, _RANDOMIZATION, strict=True)


def age_on(birth_year: int, day: dt.date) -> tuple[int, int]:
    """The possible ages in whole years on ``day`` of someone born in ``birth_year`` (before
    and after their birthday)."""
    return day.year - birth_year - 1, day.year - birth_year
