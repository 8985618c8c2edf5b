"""Lutathera administrations and visits.

Cycles 1 and 2 are the second PRRT given before randomization (every patient); cycles 3 and 4
are the two additional cycles of the experimental arm.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base
from reluth.db.mixins import ProtocolVersioned


class Administration(ProtocolVersioned, Base):
    __tablename__ = "administrations"
    __table_args__ = (UniqueConstraint("patient_id", "cycle"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    cycle: Mapped[int] = mapped_column(Integer)  # 1-2 second PRRT, 3-4 experimental arm
    administered_on: Mapped[dt.date] = mapped_column(Date)
    activity_gbq: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    lot: Mapped[str] = mapped_column(String(40))


class Visit(ProtocolVersioned, Base):
    __tablename__ = "visits"
    __table_args__ = (UniqueConstraint("patient_id", "visit_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    visit_code: Mapped[str] = mapped_column(String(32))
    visit_date: Mapped[dt.date] = mapped_column(Date)
