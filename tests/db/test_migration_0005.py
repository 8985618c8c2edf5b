"""Migration 0005 (dosimetry results) up and down on each backend: the table appears at head,
disappears on downgrade to 0004 without touching the audit trail, and comes back."""

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


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_0005_upgrade_and_downgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0004_imaging_catalogue")
        assert "dose_results" not in _tables(engine)
        upgrade(engine)
        assert current_revision(engine) == "0005_dosimetry_results"
        assert "dose_results" in _tables(engine)
        columns = {c["name"] for c in inspect(engine).get_columns("dose_results")}
        assert {"patient_id", "administration_id", "cycle", "unit", "method", "value"} <= columns
        _downgrade(engine, "0004_imaging_catalogue")
        assert current_revision(engine) == "0004_imaging_catalogue"
        assert "dose_results" not in _tables(engine)
        assert {"audit_log", "administrations", "patients"} <= _tables(engine)
        upgrade(engine)
        assert "dose_results" in _tables(engine)
    finally:
        engine.dispose()
