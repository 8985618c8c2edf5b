"""Seriousness, the sponsor's assessment and the expedited-reporting clock of a SUSAR (pure).

Seriousness criteria: ICH E2A section II.B (death; life-threatening; inpatient hospitalisation
or its prolongation; persistent or significant disability or incapacity; congenital anomaly or
birth defect; other important medical event). A SUSAR is a serious adverse reaction (the
sponsor judges a reasonable possibility of a causal relationship) that is unexpected against
the reference safety information. Expedited reporting (ICH E2A section III.A; EU CT-3 section
7.2.3): fatal or life-threatening SUSARs within 7 calendar days, the others within 15, day 0
being the day the sponsor first has the minimum information.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from reluth.i18n import N_
from reluth.i18n.reasons import Reason, invalid

#: ICH E2A II.B seriousness criteria: code -> wording on forms and the CIOMS-like report
#: (marked for translation: shown with ``gettext`` in the reader's language)
CRITERIA: dict[str, str] = {
    "death": N_("Results in death"),
    "life_threatening": N_("Is life-threatening"),
    "hospitalisation": N_(
        "Requires inpatient hospitalisation or prolongation of existing hospitalisation"
    ),
    "disability": N_("Results in persistent or significant disability or incapacity"),
    "congenital_anomaly": N_("Is a congenital anomaly or birth defect"),
    "medically_important": N_("Other important medical event"),
}

#: The criteria that make a SUSAR due in 7 days instead of 15 (ICH E2A III.A.1).
FATAL_OR_LIFE_THREATENING = frozenset({"death", "life_threatening"})

#: Action taken with Lutathera because of the event (CIOMS / E2B G.k.8 wording).
ACTIONS: dict[str, str] = {
    "dose_not_changed": N_("Dose not changed"),
    "dose_reduced": N_("Dose reduced (e.g. 3.7 GBq, SmPC section 4.2)"),
    "drug_interrupted": N_("Cycle delayed or interrupted"),
    "drug_withdrawn": N_("Lutathera withdrawn (no further cycle)"),
    "not_applicable": N_("Not applicable (no further cycle planned)"),
    "unknown": N_("Unknown"),
}


def report_name(sequence: int) -> Reason:
    """The name of the SAE report numbered ``sequence`` (0: the initial one, then numbered
    follow-ups), written in the reader's language where shown (e-mail, CIOMS-like report)."""
    if sequence == 0:
        return Reason("sae.initial_report", N_("initial report"))
    return Reason("sae.follow_up_report", N_("follow-up report {n}"), {"n": sequence})


CAUSALITY = ("related", "not_related")  # sponsor: a reasonable possibility, or not
EXPECTEDNESS = ("expected", "unexpected")  # against the reference safety information

EXPEDITED_DAYS_FATAL = 7
EXPEDITED_DAYS_OTHER = 15


def parse_criteria(value: Any, field: str) -> tuple[str, ...]:
    """Seriousness criteria from a list or comma-separated text; () when none (blank)."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, list | tuple):
        items = [str(v).strip() if isinstance(v, str) else v for v in value]
    else:
        raise invalid(
            field,
            "not_a_list",
            N_("{value}"),
            N_("a list of {codes}"),
            value=repr(value),
            codes=tuple(CRITERIA),
        )
    out: list[str] = []
    for item in items:
        if item == "":
            continue
        if not isinstance(item, str) or item not in CRITERIA:
            raise invalid(
                field,
                "unknown_criterion",
                N_("unknown criterion {value}"),
                tuple(CRITERIA),
                value=repr(item),
            )
        if item not in out:
            out.append(item)
    return tuple(c for c in CRITERIA if c in out)  # stored in the standard's order


def stored(criteria: Iterable[str]) -> str | None:
    text = ",".join(criteria)
    return text or None


def loaded(text: str | None) -> tuple[str, ...]:
    return () if not text else tuple(text.split(","))


def is_susar(causality: str, expectedness: str) -> bool:
    """A serious event the sponsor judges related and unexpected."""
    return causality == "related" and expectedness == "unexpected"


@dataclass(frozen=True)
class SusarClock:
    day0: dt.date  # the day the sponsor first had the information (site time zone)
    days: int  # 7 (fatal or life-threatening) or 15
    due_before: dt.datetime  # UTC: 00:00 (site time) of the day after day 0 + ``days``
    hours_left: Decimal  # at submission if submitted, else now; negative when late
    late: bool
    submitted_at: dt.datetime | None = None


def susar_clock(
    known_at: dt.datetime,
    criteria: Iterable[str],
    now: dt.datetime,
    zone: ZoneInfo,
    submitted_at: dt.datetime | None = None,
) -> SusarClock:
    """The expedited-reporting clock of a SUSAR (pure): day 0 is the calendar day (in the
    sponsor's time zone, the trial's) of ``known_at``; due before the end of day 0 + 7 when a
    criterion is death or life-threatening, else day 0 + 15 (calendar days, ICH E2A III.A):
    late from 00:00 of the next day. Submission to the authorities stops it."""
    days = (
        EXPEDITED_DAYS_FATAL if FATAL_OR_LIFE_THREATENING & set(criteria) else EXPEDITED_DAYS_OTHER
    )
    day0 = known_at.astimezone(zone).date()
    end = dt.datetime.combine(day0 + dt.timedelta(days=days + 1), dt.time(), zone)
    due = end.astimezone(dt.UTC)
    stop = now if submitted_at is None else submitted_at
    left = Decimal((due - stop).total_seconds()) / Decimal(3600)
    return SusarClock(day0, days, due, left.quantize(Decimal("0.1")), stop >= due, submitted_at)
