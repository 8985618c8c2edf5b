"""Tables of the data lifecycle: locks and freezes, principal investigators, e-signatures and
their invalidations, SDV marks and their clearances. Every row goes through the audited unit of
work; invalidations and clearances are rows of their own (append-only), never edits."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base


class RecordLock(Base):
    """A lock (``kind`` "lock": nothing changes) or freeze ("freeze": no data entry, queries,
    SDV and signatures go on) of the study, a centre, a patient or one form instance (a record:
    ``table_name`` + ``record_id``). Active while ``unlocked_at`` is None."""

    __tablename__ = "record_locks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))  # study | centre | patient | form
    kind: Mapped[str] = mapped_column(String(8))  # lock | freeze
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("centres.id"), nullable=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    table_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    label: Mapped[str] = mapped_column(String(120))  # "patient C01-0001", "the study", ...
    reason: Mapped[str] = mapped_column(Text)
    locked_by: Mapped[str] = mapped_column(String(80))
    locked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    unlocked_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    unlocked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    unlock_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class PrincipalInvestigator(Base):
    """An investigator account designated principal investigator of a centre, with the printed
    name its signatures show (21 CFR 11.50(a)(1))."""

    __tablename__ = "principal_investigators"
    __table_args__ = (UniqueConstraint("user_id", "centre_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("centres.id"))
    printed_name: Mapped[str] = mapped_column(String(120))


class Signature(Base):
    """An investigator's electronic signature of a form instance, a visit or a casebook
    (21 CFR 11.50, 11.70, 11.200): who (printed name), when (UTC and site time), what it means,
    and the SHA-256 of exactly the values signed (``covered``: the records, JSON)."""

    __tablename__ = "signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))  # form | visit | patient
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    table_name: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(80))
    printed_name: Mapped[str] = mapped_column(String(120))
    meaning: Mapped[str] = mapped_column(String(500))
    signed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    site_time: Mapped[str] = mapped_column(String(40))  # ISO 8601 with the site's offset
    values_sha256: Mapped[str] = mapped_column(String(64))
    covered: Mapped[str] = mapped_column(Text)  # JSON list of "table/record_id"


class SignatureInvalidation(Base):
    """A later change to a signed value: the signature no longer holds (one row per signature,
    naming the change that broke it)."""

    __tablename__ = "signature_invalidations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signature_id: Mapped[int] = mapped_column(ForeignKey("signatures.id"), unique=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    username: Mapped[str] = mapped_column(String(80))
    change: Mapped[str] = mapped_column(String(200))  # "update lab_results/17 value"


class SdvMark(Base):
    """A monitor's source-data verification of one field (``field``) or a whole form instance
    (``field`` None) of a record; ``scope`` says how it was marked (field, form or visit)."""

    __tablename__ = "sdv_marks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    table_name: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    field: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scope: Mapped[str] = mapped_column(String(8))  # field | form | visit
    verified_by: Mapped[str] = mapped_column(String(80))
    verified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SdvClearance(Base):
    """A later change to a verified value: its SDV no longer holds (one row per mark)."""

    __tablename__ = "sdv_clearances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sdv_id: Mapped[int] = mapped_column(ForeignKey("sdv_marks.id"), unique=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    username: Mapped[str] = mapped_column(String(80))
    change: Mapped[str] = mapped_column(String(200))
