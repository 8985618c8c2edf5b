"""Missing-data codes: why a value, or a whole form at a visit, is absent (written through the
audited door; withdrawing one deletes the row, which the audit trail keeps with the reason)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reluth.db.base import Base
from reluth.db.mixins import ProtocolVersioned


class MissingData(ProtocolVersioned, Base):
    """A missing-data code (registry ``missing_codes``: ND, NA, UNK, ASKU) with its reason, on
    a field of a saved form instance (``record_id`` + ``item``) or on a whole form at a visit
    (``visit_code``, no record: e.g. QoL not done at QOL-W16, the patient too ill)."""

    __tablename__ = "missing_data"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    form_id: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    visit_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    item: Mapped[str | None] = mapped_column(String(60), nullable=True)
    code: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
