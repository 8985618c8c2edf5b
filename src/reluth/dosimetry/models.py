"""Stored dosimetry results: one row per number of a cycle (a VOI's time-integrated activity,
absorbed dose, voxel statistic or kidney BED), linked to the patient and to the administration
of that cycle, with the unit and the method that produced it.

Rows are written by ``reluth.dosimetry.service.store_cycle`` inside the audited unit of work;
replacing a cycle's results deletes the old rows, which the audit trail keeps with the reason.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base
from reluth.db.mixins import ProtocolVersioned


class DoseResult(ProtocolVersioned, Base):
    __tablename__ = "dose_results"
    __table_args__ = (UniqueConstraint("patient_id", "cycle", "region", "quantity", "method"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    administration_id: Mapped[int] = mapped_column(ForeignKey("administrations.id"), index=True)
    cycle: Mapped[int] = mapped_column(Integer)  # as in administrations: 1-2 second PRRT, 3-4
    case_id: Mapped[str] = mapped_column(String(64))  # the dosimetry case it was computed from
    region: Mapped[str] = mapped_column(String(64))  # VOI name: kidneys, tumour1, red_marrow
    region_kind: Mapped[str] = mapped_column(String(16))  # organ | tumour | remainder | marrow
    quantity: Mapped[str] = mapped_column(String(32))  # absorbed_dose, bed, tia, ...
    value: Mapped[float] = mapped_column(Float)
    sd: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
