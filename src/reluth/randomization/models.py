"""Randomization set-up, the concealed allocation list, and the randomizations.

Allocation slots are *not* copied into the audit trail (``__audit_exempt__``): the audit trail
is readable by roles that must not see upcoming allocations. Each slot's arm, block and block
size are stored only sealed (AES-256-GCM under the allocation key of the randomization
service's configuration, :mod:`reluth.sealing`), so a database dump alone does not reveal them.
The list row stores the SHA-256 of the whole plain list (checked at every verify) and every
randomization, which names the slot it consumed and its arm, is audited.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base
from reluth.db.mixins import ProtocolVersioned


class RandomizationSettings(ProtocolVersioned, Base):
    """The trial's method (one row, id = 1); it cannot change once anyone is randomized."""

    __tablename__ = "randomization_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    method: Mapped[str] = mapped_column(String(16))  # blocks | minimization
    stratify_by_centre: Mapped[bool] = mapped_column(Boolean)
    block_sizes: Mapped[str] = mapped_column(String(32))  # "2,4"
    minimization_p: Mapped[Decimal] = mapped_column(Numeric(4, 3))


class AllocationList(ProtocolVersioned, Base):
    __tablename__ = "allocation_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(80))
    seed_sha256: Mapped[str] = mapped_column(String(64))  # commitment; the seed is not stored
    block_sizes: Mapped[str] = mapped_column(String(32))
    per_stratum: Mapped[int] = mapped_column(Integer)
    stratify_by_centre: Mapped[bool] = mapped_column(Boolean)
    content_sha256: Mapped[str] = mapped_column(String(64))


class AllocationStratum(Base):
    """Per-stratum cursor: the next position to hand out. Locked while allocating."""

    __tablename__ = "allocation_strata"
    __table_args__ = (UniqueConstraint("list_id", "stratum_key"),)
    __audit_exempt__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("allocation_lists.id"))
    stratum_key: Mapped[str] = mapped_column(String(96))
    size: Mapped[int] = mapped_column(Integer)
    next_position: Mapped[int] = mapped_column(Integer, default=1)


class AllocationSlot(Base):
    __tablename__ = "allocation_slots"
    __table_args__ = (UniqueConstraint("list_id", "stratum_key", "position"),)
    __audit_exempt__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("allocation_lists.id"))
    stratum_key: Mapped[str] = mapped_column(String(96))
    position: Mapped[int] = mapped_column(Integer)
    #: arm, block and block size, sealed (set at generation; a slot without it is a finding)
    sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patients.id"), unique=True, nullable=True
    )


class Randomization(ProtocolVersioned, Base):
    __tablename__ = "randomizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    request_id: Mapped[str] = mapped_column(String(80), unique=True)
    arm: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))
    stratum_key: Mapped[str] = mapped_column(String(96))
    strata_json: Mapped[str] = mapped_column(Text)  # factor levels (and centre)
    slot_id: Mapped[int | None] = mapped_column(
        ForeignKey("allocation_slots.id"), unique=True, nullable=True
    )
    #: minimization's scores and draw (None for permuted blocks: the slot is the record)
    details_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    randomized_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    randomized_by: Mapped[str] = mapped_column(String(80))


class BackupRandomization(Base):
    """A randomization performed by the documented backup procedure while the system was down
    (a sealed envelope or the printed backup list), recorded afterwards by the statistician
    through the randomization service: the randomization row beside it consumed the same list
    slot (permuted blocks) or counts in the same minimization totals, so the list stays whole."""

    __tablename__ = "backup_randomizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    randomization_id: Mapped[int] = mapped_column(ForeignKey("randomizations.id"), unique=True)
    performed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(String(80))  # envelope number or list reference
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(80))


#: Fields of audited allocation records shown only to whoever may read the allocation list
#: (the unblinded statistician): the slot a randomization consumed tells its position in the
#: list, the method whether there are blocks to guess, and minimization's scores and counts how
#: the next patients will be allocated.
CONCEALED_FIELDS: dict[str, frozenset[str]] = {
    "randomizations": frozenset({"slot_id", "details_json", "method"}),
}
