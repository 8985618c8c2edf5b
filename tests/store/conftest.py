"""Fixtures for the store: a migrated database on each backend.

Migrating takes seconds on PostgreSQL on this machine, so the schema is built once per session
(one PostgreSQL database, one SQLite template file) and each test starts from empty tables.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from tests.conftest import _fresh_database, _postgres_base

from reluth.db.audit import GENESIS_HASH
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.db.registry import load_all_models


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store-template") / "template.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_store_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """One migrated PostgreSQL database for the session (None when PostgreSQL is not set up;
    under CI=true a missing one fails the run)."""
    if _postgres_base() is None:
        yield None
        return
    with _fresh_database("postgres", tmp_path_factory.mktemp("pg")) as url:
        eng = make_engine(url)
        upgrade(eng)
        eng.dispose()
        yield url


def _reset_postgres(eng: Engine) -> None:
    # DELETE is much faster than TRUNCATE for a handful of rows (no new relation files).
    with eng.begin() as conn:
        for guarded in ("audit_log", "audit_head"):
            conn.execute(text(f"ALTER TABLE {guarded} DISABLE TRIGGER USER"))
        for table in reversed(load_all_models().sorted_tables):
            conn.execute(text(f'DELETE FROM "{table.name}"'))
        conn.execute(
            text("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, :h)"),
            {"h": GENESIS_HASH},
        )
        for guarded in ("audit_log", "audit_head"):
            conn.execute(text(f"ALTER TABLE {guarded} ENABLE TRIGGER USER"))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    _sqlite_template: Path,
    _pg_store_url: str | None,
) -> str:
    """A URL to a migrated database with empty tables, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(_sqlite_template, path)
        return f"sqlite:///{path}"
    if _pg_store_url is None:
        pytest.skip("RELUTH_TEST_POSTGRES_URL not set")
    eng = make_engine(_pg_store_url)
    _reset_postgres(eng)
    eng.dispose()
    return _pg_store_url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = make_engine(store_url)
    yield eng
    eng.dispose()
