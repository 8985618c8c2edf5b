"""0013 lifecycle: its tables appear, disappear on downgrade to the revision before without
touching the audit trail or the data, and come back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect

from reluth.db.engine import make_engine
from reluth.db.migrate import alembic_config, current_revision, upgrade

TABLES = {
    "record_locks",
    "principal_investigators",
    "signatures",
    "signature_invalidations",
    "sdv_marks",
    "sdv_clearances",
}


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_0013_upgrade_and_downgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0013_lifecycle")
        assert current_revision(engine) == "0013_lifecycle"
        tables = set(inspect(engine).get_table_names())
        assert tables >= TABLES
        columns = {c["name"] for c in inspect(engine).get_columns("record_locks")}
        assert {"scope", "kind", "patient_id", "table_name", "record_id", "reason"} <= columns
        _downgrade(engine, "0012_forms_registry")
        tables = set(inspect(engine).get_table_names())
        assert not TABLES & tables
        assert {"audit_log", "audit_head", "patients", "lab_results"} <= tables
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
