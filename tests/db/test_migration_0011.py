"""Migration 0011 on a database that already holds data: the plain SHA-256 chain is verified
and re-sealed with the audit key (content unchanged), the allocation slots' arms and blocks are
sealed with the allocation key and their plain columns dropped; the downgrade restores both."""

from __future__ import annotations

import hashlib

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from reluth import sealing
from reluth.config import Settings
from reluth.db import audit
from reluth.db.auditkey import key_for
from reluth.db.engine import make_engine
from reluth.db.migrate import alembic_config, upgrade

BEFORE = "0010_recist_evaluations"


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _old_rows(engine: Engine, n: int) -> None:
    """Audit rows as the code before 0011 sealed them (plain SHA-256), and a plain list."""
    prev = audit.GENESIS_HASH
    with engine.begin() as conn:
        for seq in range(1, n + 1):
            row = {
                "seq": seq,
                "at_utc": "2025-01-01T00:00:00.000000Z",
                "username": "admin1",
                "role": "admin",
                "auth_method": "password",
                "action": "insert",
                "table_name": "centres",
                "record_id": str(seq),
                "field": None,
                "old_value": None,
                "new_value": f'{{"code":"C{seq:02d}"}}',
                "reason": None,
                "prev_hash": prev,
            }
            row["row_hash"] = prev = hashlib.sha256(audit.canonical_row(row)).hexdigest()
            conn.execute(audit.AuditLog.__table__.insert().values(**row))
        conn.execute(
            text("UPDATE audit_head SET last_seq = :s, last_hash = :h"), {"s": n, "h": prev}
        )
        conn.execute(
            text(
                "INSERT INTO allocation_lists (id, created_at, created_by, seed_sha256, "
                "block_sizes, per_stratum, stratify_by_centre, content_sha256, protocol_version)"
                " VALUES (1, '2025-01-01', 'stat1', :h, '2,4', 2, false, :h, 'RELUTH v1.0')"
            ),
            {"h": "0" * 64},
        )
        for pos, arm in ((1, "control"), (2, "experimental")):
            conn.execute(
                text(
                    "INSERT INTO allocation_slots (list_id, stratum_key, position, block_no, "
                    "block_size, arm) VALUES (1, 'S1', :p, 1, 2, :a)"
                ),
                {"p": pos, "a": arm},
            )


def test_0011_reseals_the_chain_and_the_list_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        _old_rows(engine, 5)
        upgrade(engine)
        with engine.connect() as conn:
            result = audit.verify(conn)
            key_id = conn.execute(text("SELECT key_id FROM audit_head")).scalar_one()
            slots = conn.execute(
                text("SELECT list_id, stratum_key, position, sealed FROM allocation_slots "
                     "ORDER BY position")
            ).all()  # fmt: skip
        assert result.ok and result.rows_checked == 5 and key_id == key_for(engine).key_id
        columns = {c["name"] for c in inspect(engine).get_columns("allocation_slots")}
        assert "arm" not in columns and "block_no" not in columns
        sealer = sealing.require_key(Settings.from_env()).sealer()
        opened = [sealer.open(s.sealed, sealing.slot_place(*s[:3])) for s in slots]
        assert [o["arm"] for o in opened] == ["control", "experimental"]
        assert {o["block"] for o in opened} == {1} and {o["block_size"] for o in opened} == {2}
        _downgrade(engine, BEFORE)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM audit_log ORDER BY seq")).mappings().all()
            arms = conn.execute(text("SELECT arm FROM allocation_slots ORDER BY position")).all()
        prev = audit.GENESIS_HASH
        for r in rows:  # plain SHA-256 again, as the code before 0011 checks it
            assert r["prev_hash"] == prev
            prev = hashlib.sha256(audit.canonical_row(r)).hexdigest()
            assert r["row_hash"] == prev
        assert [a[0] for a in arms] == ["control", "experimental"]
        upgrade(engine)
        with engine.connect() as conn:
            assert audit.verify(conn).ok
    finally:
        engine.dispose()


def test_0011_refuses_to_reseal_a_broken_chain(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        _old_rows(engine, 3)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            else:
                conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(text("UPDATE audit_log SET username = 'mallory' WHERE seq = 2"))
        with pytest.raises(RuntimeError, match="broken at row 2"):
            upgrade(engine)
    finally:
        engine.dispose()
