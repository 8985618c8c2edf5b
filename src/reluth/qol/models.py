"""Quality-of-life questionnaires (EORTC QLQ-C30, GI.NET21): item answers and scores."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base
from reluth.db.mixins import ProtocolVersioned


class QolQuestionnaire(ProtocolVersioned, Base):
    __tablename__ = "qol_questionnaires"
    __table_args__ = (UniqueConstraint("patient_id", "instrument", "timepoint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    instrument: Mapped[str] = mapped_column(String(16))  # QLQ-C30 | GINET21
    timepoint: Mapped[str] = mapped_column(String(32))
    completed_on: Mapped[dt.date] = mapped_column(Date)
    answers_json: Mapped[str] = mapped_column(Text)  # {"q1": 1, ...} as entered
    scores_json: Mapped[str | None] = mapped_column(Text, nullable=True)
