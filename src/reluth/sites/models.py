"""Centres and their patient counters. No patient data here."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base


class Centre(Base):
    __tablename__ = "centres"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)  # e.g. "C07"
    name: Mapped[str] = mapped_column(String(200))
    opened_on: Mapped[dt.date | None] = mapped_column(nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PatientCounter(Base):
    """The last patient number given at a centre, locked while the next one is taken, so that
    concurrent registrations get consecutive distinct numbers. Derived from the audited
    ``patients`` rows (each patient code is audited), hence not audited itself."""

    __tablename__ = "patient_counters"
    __audit_exempt__ = True

    centre_id: Mapped[int] = mapped_column(
        ForeignKey("centres.id", ondelete="CASCADE"), primary_key=True
    )
    last_number: Mapped[int] = mapped_column(Integer)
