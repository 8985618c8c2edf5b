"""Recent migrations up and down on each backend (0005 dosimetry results, 0006 SAE receipts,
0008 SAE awareness time, 0009 core actors): the table or column appears, disappears on downgrade to the revision
before without touching the audit trail, and comes back."""

from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import Engine, inspect, text

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


def test_0009_core_actors_up_and_down_keeps_data_and_numbering(db_url: str) -> None:
    """0009: how each audit row was authenticated, token expiry/lineage, the forced password
    change, login throttling and per-centre patient counters; the counters start at the
    highest number already used at each centre, so numbering continues after an upgrade."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0008_sae_awareness_time")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO centres (id, code, name, active) VALUES "
                    "(1, 'C01', 'one', :t), (2, 'C02', 'two', :t)"
                ),
                {"t": True},
            )
            for code in ("C01-0007", "C01-0012"):
                conn.execute(
                    text(
                        "INSERT INTO patients (patient_code, centre_id, registered_at, "
                        "protocol_version) VALUES (:c, 1, :at, 'v1')"
                    ),
                    {"c": code, "at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)},
                )
        audit_rows = _count(engine, "audit_log")
        upgrade(engine, "0009_core_actors")
        assert {"login_throttle", "patient_counters"} <= _tables(engine)
        assert "auth_method" in _columns(engine, "audit_log")
        assert {"kind", "expires_at", "parent_token_id", "web_session_id"} <= _columns(
            engine, "api_tokens"
        )
        users = _columns(engine, "users")
        assert "must_change_password" in users and "failed_logins" not in users
        with engine.begin() as conn:
            counters = dict(
                conn.execute(text("SELECT centre_id, last_number FROM patient_counters")).all()
            )
        assert counters == {1: 12, 2: 0}
        _downgrade(engine, "0008_sae_awareness_time")
        assert not {"login_throttle", "patient_counters"} & _tables(engine)
        assert "auth_method" not in _columns(engine, "audit_log")
        assert {"failed_logins", "locked_until"} <= _columns(engine, "users")
        assert _count(engine, "audit_log") == audit_rows and _count(engine, "patients") == 2
        upgrade(engine)
        assert "patient_counters" in _tables(engine)
    finally:
        engine.dispose()


def _columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def _count(engine: Engine, table: str) -> int:
    with engine.begin() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_0012_upgrade_and_downgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0011_audit_integrity")
        assert "missing_data" not in _tables(engine)
        upgrade(engine, "0012_forms_registry")
        assert current_revision(engine) == "0012_forms_registry"
        columns = {c["name"] for c in inspect(engine).get_columns("missing_data")}
        assert {"patient_id", "form_id", "record_id", "visit_code", "item", "code"} <= columns
        queries = {c["name"] for c in inspect(engine).get_columns("data_queries")}
        assert {"form_id", "record_id", "item", "reopen_reason"} <= queries
        _downgrade(engine, "0011_audit_integrity")
        assert "missing_data" not in _tables(engine)
        queries = {c["name"] for c in inspect(engine).get_columns("data_queries")}
        assert "form_id" not in queries and "field" in queries
        assert {"audit_log", "data_queries"} <= _tables(engine)
        upgrade(engine)
        assert "missing_data" in _tables(engine)
    finally:
        engine.dispose()
