"""0015 account language: ``users.language`` appears, goes on downgrade to 0014 without touching
the audit trail, and comes back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect

from reluth.db.engine import make_engine
from reluth.db.migrate import alembic_config, current_revision, upgrade


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("users")}


def test_0015_upgrade_and_downgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0014_pharmacovigilance")
        assert "language" not in _columns(engine)
        upgrade(engine, "0015_account_language")
        assert current_revision(engine) == "0015_account_language"
        assert "language" in _columns(engine)
        _downgrade(engine, "0014_pharmacovigilance")
        assert "language" not in _columns(engine)
        assert {"audit_log", "users"} <= set(inspect(engine).get_table_names())
        upgrade(engine)
        assert "language" in _columns(engine)
    finally:
        engine.dispose()
