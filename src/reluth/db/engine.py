"""Engine creation: SQLite (embedded default, WAL and foreign keys on) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from reluth.errors import ValidationError


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An Engine for ``url``; creates the SQLite file's folder; refuses unsupported backends."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ValidationError(
            "database_url",
            f"not a database URL: {url!r}",
            "sqlite:///PATH or postgresql+psycopg://...",
            code="not_a_database_url",
            params={"value": url},
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    if backend == "postgresql":
        if parsed.drivername != "postgresql+psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    raise ValidationError(
        "database_url",
        f"unsupported database {backend!r}",
        "sqlite or postgresql",
        code="not_accepted",
        params={"value": backend, "accepted": "sqlite, postgresql"},
    )


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (so BEGIN IMMEDIATE can be used for allocation).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
