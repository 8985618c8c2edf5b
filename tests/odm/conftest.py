"""The ODM tests use the store's migrated databases (both backends) and its helpers."""

from __future__ import annotations

from tests.store.conftest import (  # noqa: F401
    _pg_store_url,
    _sqlite_template,
    engine,
    store_url,
)
