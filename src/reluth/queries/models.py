"""Data queries on any field of a patient's records (written through the audited door)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base


class DataQuery(Base):
    __tablename__ = "data_queries"
    __table_args__ = (
        Index("ix_data_queries_form_record", "form_id", "record_id"),
        Index("ix_data_queries_edit_check", "edit_check", "form_id", "record_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    field: Mapped[str] = mapped_column(String(120))  # what is queried, as shown: "lab 12 value"
    #: the form instance and field queried (registry form id, its record, a field name); a
    #: form not entered yet is queried at its visit (``visit_code``, no record)
    form_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    record_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    item: Mapped[str | None] = mapped_column(String(60), nullable=True)
    visit_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(12))  # open | answered | closed
    question: Mapped[str] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(80))
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    answered_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reopened_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    reopened_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reopen_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the registry's edit check that raised it (a system query), None when a person did
    edit_check: Mapped[str | None] = mapped_column(String(60), nullable=True)
