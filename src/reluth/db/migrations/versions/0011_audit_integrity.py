"""An audit trail that proves what it claims, and an allocation list that stays concealed.

* The chain is keyed: rows already written (plain SHA-256) are re-sealed with HMAC-SHA-256 under
  the audit key, after their old chain has been verified (a broken chain is refused, never
  re-sealed); ``audit_head.key_id`` names the key.
* The database refuses any audit row that is not the next one of the chain (``seq = head + 1``,
  ``prev_hash = head hash``) and moves the head with each row; the head cannot be moved,
  deleted or truncated otherwise (triggers on SQLite and PostgreSQL).
* Allocation slots keep their arm, block and block size only sealed (AES-256-GCM under the
  allocation key of the randomization service's configuration): the plain columns go.

Revision ID: 0011_audit_integrity
Revises: 0010_recist_evaluations
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from reluth.db.audit import GENESIS_HASH, canonical_row
from reluth.db.auditkey import key_for

revision = "0011_audit_integrity"
down_revision = "0010_recist_evaluations"
branch_labels = None
depends_on = None

_AUDIT = sa.table(
    "audit_log",
    *[
        sa.column(c)
        for c in (
            "seq",
            "at_utc",
            "username",
            "role",
            "auth_method",
            "action",
            "table_name",
            "record_id",
            "field",
            "old_value",
            "new_value",
            "reason",
            "prev_hash",
            "row_hash",
        )
    ],
)
_SLOTS = sa.table(
    "allocation_slots",
    sa.column("id"),
    sa.column("list_id"),
    sa.column("stratum_key"),
    sa.column("position"),
    sa.column("block_no"),
    sa.column("block_size"),
    sa.column("arm"),
    sa.column("sealed"),
)


def _sha256(row: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_row(row)).hexdigest()


def _reseal(old: Callable[[dict[str, Any]], str], new: Callable[[dict[str, Any]], str]) -> str:
    """Check every row against the ``old`` hash, then rewrite prev/row hashes with ``new``
    (content unchanged). Returns the new head hash."""
    bind = op.get_bind()
    after, prev_old, prev_new, expected = 0, GENESIS_HASH, GENESIS_HASH, 1
    while True:
        rows = [
            dict(r._mapping)
            for r in bind.execute(
                sa.select(_AUDIT).where(_AUDIT.c.seq > after).order_by(_AUDIT.c.seq).limit(2000)
            )
        ]
        if not rows:
            return prev_new
        updates = []
        for row in rows:
            if (
                row["seq"] != expected
                or row["prev_hash"] != prev_old
                or old(row) != row["row_hash"]
            ):
                raise RuntimeError(
                    f"the audit chain is broken at row {expected}: it is not re-sealed; restore "
                    "a verified backup before migrating"
                )
            prev_old = row["row_hash"]
            row["prev_hash"] = prev_new
            prev_new = new(row)
            updates.append({"s": row["seq"], "p": row["prev_hash"], "h": prev_new})
            expected += 1
        bind.execute(
            sa.update(_AUDIT)
            .where(_AUDIT.c.seq == sa.bindparam("s"))
            .values(prev_hash=sa.bindparam("p"), row_hash=sa.bindparam("h")),
            updates,
        )
        after = rows[-1]["seq"]


def _has_rows(table: str) -> bool:
    return op.get_bind().execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _append_only(enabled: bool) -> None:
    """The append-only guard of migration 0001, switched off while rows are re-sealed."""
    if _postgres():
        verb = "ENABLE" if enabled else "DISABLE"
        op.execute(f"ALTER TABLE audit_log {verb} TRIGGER audit_log_append_only")
    elif enabled:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: {verb} refused'); END"
            )
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")


_NEXT_ROW = (
    "audit_log: an inserted row must be the next row of the chain "
    "(seq = head + 1, prev_hash = head hash)"
)
_HEAD_MOVES = "audit_head moves only with the next audit row"

_PG_NEXT_ROW = f"""
CREATE OR REPLACE FUNCTION reluth_audit_next_row() RETURNS trigger AS $$
DECLARE h RECORD;
BEGIN
    SELECT last_seq, last_hash INTO h FROM audit_head WHERE id = 1 FOR UPDATE;
    IF NOT FOUND OR NEW.seq <> h.last_seq + 1 OR NEW.prev_hash <> h.last_hash THEN
        RAISE EXCEPTION '{_NEXT_ROW}' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    UPDATE audit_head SET last_seq = NEW.seq, last_hash = NEW.row_hash WHERE id = 1;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""

_PG_HEAD_GUARD = f"""
CREATE OR REPLACE FUNCTION reluth_audit_head_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.id = 1 AND NEW.last_seq = 0 AND NOT EXISTS (SELECT 1 FROM audit_log) THEN
            RETURN NEW;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.id = OLD.id AND (
            (pg_trigger_depth() > 1 AND NEW.key_id IS NOT DISTINCT FROM OLD.key_id
             AND NEW.last_seq = OLD.last_seq + 1)
            OR (OLD.key_id IS NULL AND NEW.last_seq = OLD.last_seq
                AND NEW.last_hash = OLD.last_hash)
        ) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '{_HEAD_MOVES}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""

_SQLITE_GUARDS = (
    f"""CREATE TRIGGER audit_log_next_row BEFORE INSERT ON audit_log
    WHEN NOT EXISTS (SELECT 1 FROM audit_head WHERE id = 1 AND last_seq + 1 = NEW.seq
                     AND last_hash = NEW.prev_hash)
    BEGIN SELECT RAISE(ABORT, '{_NEXT_ROW}'); END""",
    """CREATE TRIGGER audit_log_move_head AFTER INSERT ON audit_log
    BEGIN UPDATE audit_head SET last_seq = NEW.seq, last_hash = NEW.row_hash WHERE id = 1; END""",
    f"""CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
    WHEN NOT (NEW.id = OLD.id AND (
        (NEW.key_id IS OLD.key_id AND NEW.last_seq = OLD.last_seq + 1
         AND EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.last_seq
                     AND row_hash = NEW.last_hash))
        OR (OLD.key_id IS NULL AND NEW.last_seq = OLD.last_seq
            AND NEW.last_hash = OLD.last_hash)))
    BEGIN SELECT RAISE(ABORT, '{_HEAD_MOVES}: UPDATE refused'); END""",
    f"""CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, '{_HEAD_MOVES}: DELETE refused'); END""",
    f"""CREATE TRIGGER audit_head_one_row BEFORE INSERT ON audit_head
    WHEN NOT (NEW.id = 1 AND NEW.last_seq = 0 AND NOT EXISTS (SELECT 1 FROM audit_log))
    BEGIN SELECT RAISE(ABORT, '{_HEAD_MOVES}: INSERT refused'); END""",
)
_SQLITE_GUARD_NAMES = (
    "audit_log_next_row",
    "audit_log_move_head",
    "audit_head_forward",
    "audit_head_no_delete",
    "audit_head_one_row",
)


def _create_guards() -> None:
    if _postgres():
        op.execute(_PG_NEXT_ROW)
        op.execute(
            "CREATE TRIGGER audit_log_next_row BEFORE INSERT ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION reluth_audit_next_row()"
        )
        op.execute(_PG_HEAD_GUARD)
        op.execute(
            "CREATE TRIGGER audit_head_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_head "
            "FOR EACH ROW EXECUTE FUNCTION reluth_audit_head_guard()"
        )
        op.execute(
            "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
            "FOR EACH STATEMENT EXECUTE FUNCTION reluth_audit_head_guard()"
        )
    else:
        for statement in _SQLITE_GUARDS:
            op.execute(statement)


def _drop_guards() -> None:
    if _postgres():
        op.execute("DROP TRIGGER IF EXISTS audit_log_next_row ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_head_guard ON audit_head")
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head")
        op.execute("DROP FUNCTION IF EXISTS reluth_audit_next_row()")
        op.execute("DROP FUNCTION IF EXISTS reluth_audit_head_guard()")
    else:
        for name in _SQLITE_GUARD_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _allocation_sealer() -> Any:
    from reluth.config import Settings
    from reluth.sealing import require_key

    return require_key(Settings.from_env()).sealer()


def upgrade() -> None:
    op.add_column("audit_head", sa.Column("key_id", sa.String(length=16), nullable=True))
    if _has_rows("audit_log"):
        key = key_for(op.get_bind().engine)
        _append_only(False)
        head = _reseal(_sha256, lambda row: key.mac(canonical_row(row)))
        _append_only(True)
        op.execute(
            sa.text("UPDATE audit_head SET last_hash = :h, key_id = :k WHERE id = 1").bindparams(
                h=head, k=key.key_id
            )
        )
    _create_guards()

    op.add_column("allocation_slots", sa.Column("sealed", sa.Text(), nullable=True))
    if _has_rows("allocation_slots"):
        from reluth.sealing import slot_place

        sealer = _allocation_sealer()
        bind = op.get_bind()
        rows = bind.execute(sa.select(_SLOTS).order_by(_SLOTS.c.id)).all()
        bind.execute(
            sa.update(_SLOTS)
            .where(_SLOTS.c.id == sa.bindparam("i"))
            .values(sealed=sa.bindparam("v")),
            [
                {
                    "i": r.id,
                    "v": sealer.seal(
                        {"arm": r.arm, "block": r.block_no, "block_size": r.block_size},
                        slot_place(r.list_id, r.stratum_key, r.position),
                    ),
                }
                for r in rows
            ],
        )
    for column in ("arm", "block_no", "block_size"):
        op.execute(f"ALTER TABLE allocation_slots DROP COLUMN {column}")


def downgrade() -> None:
    for column, kind in (
        ("arm", sa.String(16)),
        ("block_no", sa.Integer()),
        ("block_size", sa.Integer()),
    ):
        op.add_column("allocation_slots", sa.Column(column, kind, nullable=True))
    if _has_rows("allocation_slots"):
        from reluth.sealing import slot_place

        sealer = _allocation_sealer()
        bind = op.get_bind()
        rows = bind.execute(sa.select(_SLOTS).order_by(_SLOTS.c.id)).all()
        values = []
        for r in rows:
            content = sealer.open(r.sealed, slot_place(r.list_id, r.stratum_key, r.position))
            values.append(
                {"i": r.id, "a": content["arm"], "b": content["block"], "z": content["block_size"]}
            )
        bind.execute(
            sa.update(_SLOTS)
            .where(_SLOTS.c.id == sa.bindparam("i"))
            .values(
                arm=sa.bindparam("a"), block_no=sa.bindparam("b"), block_size=sa.bindparam("z")
            ),
            values,
        )
    op.execute("ALTER TABLE allocation_slots DROP COLUMN sealed")
    _drop_guards()
    if _has_rows("audit_log"):
        key = key_for(op.get_bind().engine)
        _append_only(False)
        head = _reseal(lambda row: key.mac(canonical_row(row)), _sha256)
        _append_only(True)
        op.execute(sa.text("UPDATE audit_head SET last_hash = :h WHERE id = 1").bindparams(h=head))
    op.execute("ALTER TABLE audit_head DROP COLUMN key_id")
