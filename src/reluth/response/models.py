"""Tumour assessments (local or central read) and their lesion measurements (RECIST 1.1)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reluth.db.base import Base
from reluth.db.mixins import ProtocolVersioned


class TumourAssessment(ProtocolVersioned, Base):
    __tablename__ = "tumour_assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    assessment_date: Mapped[dt.date] = mapped_column(Date)
    timepoint: Mapped[str] = mapped_column(String(32))  # baseline, week8, ...
    reader: Mapped[str] = mapped_column(String(16))  # local | central
    modality: Mapped[str] = mapped_column(String(8))  # CT | MRI
    overall_response: Mapped[str | None] = mapped_column(
        String(16), nullable=True
    )  # NON-CR/NON-PD: 13
    target_sum_mm: Mapped[Decimal | None] = mapped_column(Numeric(8, 1), nullable=True)
    lesions: Mapped[list[LesionMeasurement]] = relationship(
        back_populates="assessment", lazy="selectin", order_by="LesionMeasurement.id"
    )


class LesionMeasurement(Base):
    __tablename__ = "lesion_measurements"
    __table_args__ = (UniqueConstraint("assessment_id", "lesion_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("tumour_assessments.id"), index=True)
    lesion_id: Mapped[str] = mapped_column(String(16))  # stable across time points: T1, NT2...
    kind: Mapped[str] = mapped_column(String(12))  # target | non_target | new
    organ: Mapped[str] = mapped_column(String(40))
    lymph_node: Mapped[bool] = mapped_column(Boolean, default=False)
    diameter_mm: Mapped[Decimal | None] = mapped_column(Numeric(6, 1), nullable=True)
    status: Mapped[str | None] = mapped_column(String(24), nullable=True)  # non-target state
    assessment: Mapped[TumourAssessment] = relationship(back_populates="lesions")
