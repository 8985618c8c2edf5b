"""What one serious adverse event's page and CIOMS-like report show (plain values, read by
:func:`reluth.safety.sae.dossier`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from reluth.safety import seriousness
from reluth.safety.models import AdverseEvent, SaeAssessment, SaeReceipt, SaeReport
from reluth.safety.service import SaeClock


@dataclass(frozen=True)
class ReportView:
    """One SAE report with its assessment and, for a SUSAR, the expedited-reporting clock."""

    report: SaeReport
    label: str
    criteria: tuple[str, ...]
    assessment: SaeAssessment | None
    susar_clock: seriousness.SusarClock | None


@dataclass(frozen=True)
class Dossier:
    """A serious adverse event as pharmacovigilance sees it: the event, its patient
    (pseudonym, sex, birth year), its 24-hour clock and receipt, the Lutathera cycles, reports."""

    event: AdverseEvent
    patient_code: str
    centre: str
    sex: str | None
    birth_year: int | None
    criteria: tuple[str, ...]
    clock: SaeClock | None
    receipt: SaeReceipt | None
    cycles: list[tuple[int, dt.date, Decimal]]
    reports: list[ReportView]
    can_report: bool
    can_assess: bool
