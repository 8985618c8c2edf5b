"""Columns every trial record carries."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column


class ProtocolVersioned:
    """The protocol version a record was captured under (never changes afterwards)."""

    protocol_version: Mapped[str] = mapped_column(String(32))
