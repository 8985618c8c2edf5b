"""Concomitant medications, medical history, protocol deviations, pregnancy tests and the
childbearing potential of a patient (the fields are :mod:`reluth.clinical.forms`')."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base
from reluth.db.mixins import ProtocolVersioned


class ConcomitantMedication(ProtocolVersioned, Base):
    __tablename__ = "concomitant_medications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    drug_name: Mapped[str] = mapped_column(String(120))
    atc_code: Mapped[str | None] = mapped_column(String(7), nullable=True)
    indication: Mapped[str] = mapped_column(String(200))
    dose: Mapped[Decimal | None] = mapped_column(Numeric(12, 4), nullable=True)
    unit: Mapped[str | None] = mapped_column(String(20), nullable=True)
    route: Mapped[str] = mapped_column(String(20))
    start_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    stop_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    ongoing: Mapped[bool] = mapped_column(Boolean)


class MedicalHistory(ProtocolVersioned, Base):
    __tablename__ = "medical_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    condition: Mapped[str] = mapped_column(String(200))
    start_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    ongoing: Mapped[bool] = mapped_column(Boolean)


class ProtocolDeviation(ProtocolVersioned, Base):
    __tablename__ = "protocol_deviations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))  # major | minor
    deviation_date: Mapped[dt.date] = mapped_column(Date)
    description: Mapped[str] = mapped_column(Text)
    corrective_action: Mapped[str | None] = mapped_column(Text, nullable=True)


class PregnancyTest(ProtocolVersioned, Base):
    __tablename__ = "pregnancy_tests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    test_date: Mapped[dt.date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(8))  # serum | urine
    result: Mapped[str] = mapped_column(String(8))  # negative | positive


class ChildbearingStatus(ProtocolVersioned, Base):
    """One per patient (a correction goes through the audit trail)."""

    __tablename__ = "childbearing_status"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    childbearing_potential: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    assessed_on: Mapped[dt.date] = mapped_column(Date)
