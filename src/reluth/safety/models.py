"""Laboratory results and adverse events (CTCAE v5.0 term and grade)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Integer, Numeric, String, Text, Time
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
