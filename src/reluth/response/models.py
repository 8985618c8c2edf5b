"""Tumour assessments (local or central read), their lesion measurements, and the RECIST 1.1
engine's evaluation of a patient's reads (RECIST 1.1)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
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


class RecistEvaluation(ProtocolVersioned, Base):
    """The RECIST 1.1 engine's evaluation of all of one patient's reads by one reader (central
    review; the local investigator's once the eCRF stores it), written in the unit of work of
    the read or correction that triggered it. Append-only: each entry or correction adds a
    version, the highest is current, the earlier ones stay as the history."""

    __tablename__ = "recist_evaluations"
    __table_args__ = (UniqueConstraint("patient_id", "reader", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    reader: Mapped[str] = mapped_column(String(16))  # central | local
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per patient and reader
    trigger_assessment_id: Mapped[int] = mapped_column(ForeignKey("tumour_assessments.id"))
    baseline_assessment_id: Mapped[int] = mapped_column(ForeignKey("tumour_assessments.id"))
    baseline_sum_mm: Mapped[Decimal | None] = mapped_column(Numeric(8, 1), nullable=True)
    # The randomization date (days, SD minimum duration and landmark count from it); None when
    # the patient was not randomized yet: no patient-level result then.
    reference_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    options_json: Mapped[str] = mapped_column(Text)  # every RecistOptions field
    min_sd_duration_days: Mapped[int] = mapped_column(Integer)
    landmark_day: Mapped[int] = mapped_column(Integer)
    landmark_window_days: Mapped[int] = mapped_column(Integer)
    best_overall_response: Mapped[str | None] = mapped_column(String(16), nullable=True)
    bor_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    bor_rule: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_pd_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    landmark_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    landmark_end: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    landmark_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    disease_control_month6: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    dcr6_reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # English (DCRRSN)
    #: the same reason as a message key and values (JSON, reluth.i18n.reasons.Reason.as_dict);
    #: NULL for rows stored before migration 0019 (read by mapping their English)
    dcr6_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    time_points: Mapped[list[RecistTimePoint]] = relationship(
        back_populates="evaluation", lazy="selectin", order_by="RecistTimePoint.assessment_date"
    )


class RecistTimePoint(Base):
    """One follow-up read in an evaluation: the engine's responses as read at that time point
    and the overall response after the patient-level rules (PD re-dated by a new lesion
    confirmed at ``redated_by_assessment_id``)."""

    __tablename__ = "recist_time_points"
    __table_args__ = (UniqueConstraint("evaluation_id", "assessment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("recist_evaluations.id"), index=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("tumour_assessments.id"))
    assessment_date: Mapped[dt.date] = mapped_column(Date)
    sum_mm: Mapped[Decimal | None] = mapped_column(Numeric(8, 1), nullable=True)
    nadir_mm: Mapped[Decimal | None] = mapped_column(Numeric(8, 1), nullable=True)
    change_from_baseline_pct: Mapped[Decimal | None] = mapped_column(Numeric(9, 2), nullable=True)
    target: Mapped[str] = mapped_column(String(16))
    non_target: Mapped[str] = mapped_column(String(16))
    new_lesions: Mapped[str] = mapped_column(String(12))
    overall_as_read: Mapped[str] = mapped_column(String(16))
    overall: Mapped[str] = mapped_column(String(16))
    redated_by_assessment_id: Mapped[int | None] = mapped_column(
        ForeignKey("tumour_assessments.id"), nullable=True
    )
    notes: Mapped[str] = mapped_column(Text, default="")  # English, "; " between notes
    #: the notes as message keys and values (a JSON list); NULL before migration 0019
    note_messages: Mapped[str | None] = mapped_column(Text, nullable=True)
    evaluation: Mapped[RecistEvaluation] = relationship(back_populates="time_points")
