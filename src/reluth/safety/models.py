"""Laboratory results, adverse events (CTCAE v5.0 term and grade, MedDRA code and SOC, ICH E2A
seriousness), the SAE reports sent to pharmacovigilance and the sponsor's assessments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base
from reluth.db.mixins import ProtocolVersioned


class LabResult(ProtocolVersioned, Base):
    __tablename__ = "lab_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    sample_date: Mapped[dt.date] = mapped_column(Date)
    analyte: Mapped[str] = mapped_column(String(32))
    value: Mapped[Decimal] = mapped_column(Numeric(14, 4))  # as entered
    unit: Mapped[str] = mapped_column(String(24))  # as entered
    value_canonical: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    canonical_unit: Mapped[str] = mapped_column(String(24))
    uln: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)  # canonical unit
    #: the lower limit of normal typed with the value, in the value's unit (migration 0017)
    lln: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)
    ctcae_grade: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AdverseEvent(ProtocolVersioned, Base):
    __tablename__ = "adverse_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    term: Mapped[str] = mapped_column(String(120))  # CTCAE v5.0 term
    grade: Mapped[int] = mapped_column(Integer)  # 1-5
    serious: Mapped[bool] = mapped_column(Boolean)
    relatedness: Mapped[str] = mapped_column(String(24))
    outcome: Mapped[str] = mapped_column(String(32))
    onset_date: Mapped[dt.date] = mapped_column(Date)
    resolution_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    awareness_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # site wall-clock time (protocol safety.site_timezone); None: counted from the day's start (00:00)
    awareness_time: Mapped[dt.time | None] = mapped_column(Time, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: ICH E2A criteria met, comma-separated codes of reluth.safety.seriousness.CRITERIA
    seriousness: Mapped[str | None] = mapped_column(String(120), nullable=True)
    #: coding: MedDRA lowest level term code of the CTCAE v5.0 term (CTCAE terms are MedDRA
    #: LLTs), preferred term code when known, system organ class, and the dictionary used
    meddra_term: Mapped[str | None] = mapped_column(String(120), nullable=True)
    meddra_llt_code: Mapped[str | None] = mapped_column(String(10), nullable=True)
    meddra_pt_code: Mapped[str | None] = mapped_column(String(10), nullable=True)
    meddra_soc: Mapped[str | None] = mapped_column(String(120), nullable=True)
    coding_dictionary: Mapped[str | None] = mapped_column(String(60), nullable=True)


class SaeReceipt(Base):
    """Pharmacovigilance's acknowledgement that it received a serious adverse event: stops the
    24-hour reporting clock (one receipt per event; corrections go through the audit trail)."""

    __tablename__ = "sae_receipts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    adverse_event_id: Mapped[int] = mapped_column(
        ForeignKey("adverse_events.id"), unique=True, index=True
    )
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    received_by: Mapped[str] = mapped_column(String(80))


class SaeReport(ProtocolVersioned, Base):
    """One report of a serious adverse event to pharmacovigilance: the initial report
    (``sequence`` 0) and numbered follow-ups (1, 2, ...), each as it was sent (CIOMS-I
    fields: seriousness criteria, narrative, action taken with Lutathera, treatment, outcome)."""

    __tablename__ = "sae_reports"
    __table_args__ = (UniqueConstraint("adverse_event_id", "sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    adverse_event_id: Mapped[int] = mapped_column(ForeignKey("adverse_events.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)  # 0 initial, n follow-up n
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    reported_by: Mapped[str] = mapped_column(String(80))
    seriousness: Mapped[str] = mapped_column(String(120))
    narrative: Mapped[str] = mapped_column(Text)
    action_taken: Mapped[str] = mapped_column(String(24))
    treatment: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))


class SaeAssessment(Base):
    """The sponsor's assessment of one SAE report: causality and expectedness against the
    reference safety information named (document and version) in the protocol file; a SUSAR
    when related and unexpected, with its submission to the authorities (stops the clock)."""

    __tablename__ = "sae_assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("sae_reports.id"), unique=True, index=True)
    causality: Mapped[str] = mapped_column(String(16))
    expectedness: Mapped[str] = mapped_column(String(16))
    rsi_document: Mapped[str] = mapped_column(String(200))
    rsi_version: Mapped[str] = mapped_column(String(60))
    susar: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    assessed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    assessed_by: Mapped[str] = mapped_column(String(80))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    submission_reference: Mapped[str | None] = mapped_column(String(80), nullable=True)
