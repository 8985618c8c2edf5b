"""The store's database fixtures (a migrated database with empty tables on each backend)."""

from tests.store.conftest import _pg_store_url, _sqlite_template, engine, store_url

__all__ = ["_pg_store_url", "_sqlite_template", "engine", "store_url"]
