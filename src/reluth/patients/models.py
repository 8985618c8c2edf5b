"""Patients (pseudonymous), screening records, inclusion, pre-randomization assessment, deaths
and end of study.

No direct identifiers: the patient is known here only by a pseudonymous code such as
``C07-0012`` (centre + number) and a birth year; the sites keep the identification log.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reluth.auth.models import Centre
from reluth.db.base import Base
from reluth.db.mixins import ProtocolVersioned


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Patient(ProtocolVersioned, Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_code: Mapped[str] = mapped_column(String(16), unique=True)  # C07-0012
    centre_id: Mapped[int] = mapped_column(ForeignKey("centres.id", ondelete="RESTRICT"))
    sex: Mapped[str | None] = mapped_column(String(1), nullable=True)  # F | M
    birth_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    centre: Mapped[Centre] = relationship(lazy="joined")


class Screening(ProtocolVersioned, Base):
    """One eligibility check, frozen as captured: the input file and the engine's verdict."""

    __tablename__ = "screenings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    assessment_date: Mapped[dt.date] = mapped_column(Date)
    stage: Mapped[str] = mapped_column(String(16))  # inclusion | randomization
    status: Mapped[str] = mapped_column(String(16))  # eligible | not_eligible | incomplete
    input_json: Mapped[str] = mapped_column(Text)
    result_json: Mapped[str] = mapped_column(Text)  # per-criterion id, result, reason
    strata_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    strata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    screened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class Inclusion(ProtocolVersioned, Base):
    __tablename__ = "inclusions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    screening_id: Mapped[int] = mapped_column(ForeignKey("screenings.id"))
    consent_signed: Mapped[bool] = mapped_column(Boolean)
    consent_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    inclusion_date: Mapped[dt.date] = mapped_column(Date)


class PreRandomizationAssessment(ProtocolVersioned, Base):
    """Tumour assessment after the two second-PRRT cycles: the gate to randomization."""

    __tablename__ = "pre_randomization_assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    assessment_date: Mapped[dt.date] = mapped_column(Date)
    radiological_progression: Mapped[bool] = mapped_column(Boolean)
    overall_response: Mapped[str | None] = mapped_column(String(8), nullable=True)  # CR PR SD PD NE
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)


class Death(ProtocolVersioned, Base):
    __tablename__ = "deaths"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    death_date: Mapped[dt.date] = mapped_column(Date)
    cause: Mapped[str] = mapped_column(String(32))  # disease | toxicity | other | unknown
    details: Mapped[str | None] = mapped_column(Text, nullable=True)


class EndOfStudy(ProtocolVersioned, Base):
    __tablename__ = "end_of_study"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    end_date: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(32))
    details: Mapped[str | None] = mapped_column(Text, nullable=True)


class Withdrawal(ProtocolVersioned, Base):
    """A withdrawal, one per kind and patient: from the study ``treatment`` (follow-up goes on),
    from the ``follow_up`` visits, or ``objection`` to further use of the data (collection
    stops, what was collected is kept; Code de la santé publique art. L1122-1-1)."""

    __tablename__ = "withdrawals"
    __table_args__ = (UniqueConstraint("patient_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # treatment | follow_up | objection
    withdrawal_date: Mapped[dt.date] = mapped_column(Date)
    decided_by: Mapped[str] = mapped_column(String(16))  # patient | investigator
    details: Mapped[str | None] = mapped_column(Text, nullable=True)
