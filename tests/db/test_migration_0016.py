"""0016 (the clinical forms' tables) up and down on each backend: the tables appear, disappear
on downgrade to the previous revision without touching the audit trail or the patients, and come back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect

from reluth.db.engine import make_engine
from reluth.db.migrate import alembic_config, current_revision, upgrade

TABLES = {
    "concomitant_medications",
    "medical_history",
    "withdrawals",
    "protocol_deviations",
    "pregnancy_tests",
    "childbearing_status",
}


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_0016_upgrade_and_downgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0015_account_language")
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(engine, "0016_new_forms")
        assert current_revision(engine) == "0016_new_forms"
        assert set(inspect(engine).get_table_names()) >= TABLES
        columns = {c["name"] for c in inspect(engine).get_columns("concomitant_medications")}
        assert {"drug_name", "atc_code", "indication", "dose", "unit", "route", "start_date",
                "stop_date", "ongoing", "protocol_version"} <= columns  # fmt: skip
        uniques = inspect(engine).get_unique_constraints("withdrawals")
        assert any(set(u["column_names"]) == {"patient_id", "kind"} for u in uniques)
        _downgrade(engine, "0015_account_language")
        assert current_revision(engine) == "0015_account_language"
        assert not TABLES & set(inspect(engine).get_table_names())
        assert {"audit_log", "patients", "deaths", "end_of_study"} <= set(
            inspect(engine).get_table_names()
        )
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
