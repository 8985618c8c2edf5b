"""Central image catalogue tables (in the trial database).

Self-contained on purpose: the patient is referenced by the trial pseudonym string
(``patient_pseudonym``, e.g. C07-0012), not by a foreign key, so the catalogue can be created
and migrated independently of the patient tables. Files themselves live in the
content-addressed store (SHA-256), outside the database.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base


class ImagingSeries(Base):
    __tablename__ = "imaging_series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    patient_pseudonym: Mapped[str] = mapped_column(String(16), index=True)
    cycle: Mapped[int | None] = mapped_column(Integer, nullable=True)
    time_point: Mapped[str] = mapped_column(String(16), default="")
    interval_h: Mapped[str | None] = mapped_column(String(16), nullable=True)
    modality: Mapped[str] = mapped_column(String(16))
    qc_status: Mapped[str] = mapped_column(String(8))
    qc_reasons: Mapped[str] = mapped_column(Text, default="")
    instances: Mapped[int] = mapped_column(Integer, default=0)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ImagingInstance(Base):
    __tablename__ = "imaging_instance"
    __table_args__ = (UniqueConstraint("sop_instance_uid"),)

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    series_id: Mapped[int] = mapped_column(ForeignKey("imaging_series.id"), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


IMAGING_TABLES: list[Table] = [
    ImagingSeries.__table__,  # type: ignore[list-item]
    ImagingInstance.__table__,  # type: ignore[list-item]
]
