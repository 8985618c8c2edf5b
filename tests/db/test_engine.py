from __future__ import annotations

import pytest
from sqlalchemy import text

from reluth.db.engine import make_engine
from reluth.errors import ValidationError


def test_engine_connects_and_enforces_foreign_keys(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        conn.execute(
            text("CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id))")
        )
    with pytest.raises(Exception, match=r"(?i)foreign key"), engine.begin() as conn:
        conn.execute(text("INSERT INTO child (id, p) VALUES (1, 99)"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM child")).scalar_one() == 0
    engine.dispose()


def test_sqlite_uses_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    engine.dispose()


def test_unsupported_backend_is_a_named_error() -> None:
    with pytest.raises(ValidationError, match="database_url"):
        make_engine("mysql://x@localhost/db")
