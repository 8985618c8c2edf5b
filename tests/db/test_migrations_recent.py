"""Recent migrations up and down on each backend (0005 dosimetry results, 0006 SAE receipts,
0008 SAE awareness time): the table or column appears, disappears on downgrade to the revision
before without touching the audit trail, and comes back."""

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
        upgrade(engine, "0005_dosimetry_results")
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


def test_0006_upgrade_and_downgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0005_dosimetry_results")
        assert "sae_receipts" not in _tables(engine)
        upgrade(engine, "0006_sae_receipts")
        assert current_revision(engine) == "0006_sae_receipts"
        columns = {c["name"] for c in inspect(engine).get_columns("sae_receipts")}
        assert columns == {"id", "adverse_event_id", "received_at", "received_by"}
        _downgrade(engine, "0005_dosimetry_results")
        assert "sae_receipts" not in _tables(engine)
        assert {"audit_log", "adverse_events", "dose_results"} <= _tables(engine)
        upgrade(engine)
        assert "sae_receipts" in _tables(engine)
    finally:
        engine.dispose()


def test_0008_adds_and_removes_the_awareness_time(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0007_overall_response_width")
        columns = {c["name"] for c in inspect(engine).get_columns("adverse_events")}
        assert "awareness_time" not in columns
        upgrade(engine, "0008_sae_awareness_time")
        columns = {c["name"] for c in inspect(engine).get_columns("adverse_events")}
        assert "awareness_time" in columns and "awareness_date" in columns
        _downgrade(engine, "0007_overall_response_width")
        columns = {c["name"] for c in inspect(engine).get_columns("adverse_events")}
        assert "awareness_time" not in columns and "awareness_date" in columns
    finally:
        engine.dispose()
