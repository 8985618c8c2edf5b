"""Declarative base shared by every domain's ``models.py`` (one metadata, one migration tree)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A timestamp read back from a ``DateTime(timezone=True)`` column, as aware UTC: SQLite
    returns it naive (it is stored as UTC), PostgreSQL aware."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
