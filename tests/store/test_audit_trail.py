"""The unit of work and the audit trail: every change audited, reasons enforced, tampering
detected, the audit table append-only at the database."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import DBAPIError

from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.db import audit
from reluth.db.auditkey import key_for
from reluth.db.engine import make_engine
from reluth.db.migrate import current_revision, head_revision, upgrade
from reluth.db.session import read_session, unit_of_work
from reluth.errors import PermissionDenied, ValidationError
from reluth.sites.models import Centre

#: Writers of these database-level tests (the unit of work records whoever it is given).
ADMIN = Actor("admin1", Role.ADMIN)
NURSE = Actor("nurse1", Role.RESEARCH_NURSE)


def _add_centre(engine: Engine, code: str = "C07") -> int:
    with unit_of_work(engine, ADMIN) as uow:
        c = Centre(code=code, name=f"Centre {code}")
        uow.session.add(c)
        uow.flush()
        return c.id


def _rows(engine: Engine) -> list[audit.AuditLog]:
    with read_session(engine) as s:
        return list(s.scalars(select(audit.AuditLog).order_by(audit.AuditLog.seq)))


def _verify(engine: Engine) -> audit.VerifyResult:
    with engine.connect() as conn:
        return audit.verify(conn)


def test_insert_is_audited_with_who_when_what(engine: Engine) -> None:
    cid = _add_centre(engine)
    rows = _rows(engine)
    assert len(rows) == 1
    r = rows[0]
    assert (r.seq, r.username, r.role, r.action, r.table_name, r.record_id) == (
        1,
        "admin1",
        "admin",
        "insert",
        "centres",
        str(cid),
    )
    assert r.at_utc.endswith("Z")
    assert json.loads(r.new_value or "")["code"] == "C07"
    assert r.prev_hash == audit.GENESIS_HASH
    assert _verify(engine).ok


def test_update_without_reason_is_refused_and_writes_nothing(engine: Engine) -> None:
    cid = _add_centre(engine)
    with pytest.raises(ValidationError, match="reason"), unit_of_work(engine, NURSE) as uow:
        c = uow.session.get(Centre, cid)
        assert c is not None
        c.name = "Renamed"
        uow.flush()
    with read_session(engine) as s:
        assert s.get(Centre, cid).name == "Centre C07"  # type: ignore[union-attr]
    assert len(_rows(engine)) == 1


def test_update_with_reason_records_old_new_and_reason(engine: Engine) -> None:
    cid = _add_centre(engine)
    with unit_of_work(engine, NURSE, reason="typo in the centre name") as uow:
        c = uow.session.get(Centre, cid)
        assert c is not None
        c.name = "Centre Seven"
    last = _rows(engine)[-1]
    assert (last.action, last.field, last.username, last.role) == (
        "update",
        "name",
        "nurse1",
        "research_nurse",
    )
    assert (json.loads(last.old_value or ""), json.loads(last.new_value or "")) == (
        "Centre C07",
        "Centre Seven",
    )
    assert last.reason == "typo in the centre name"
    assert _verify(engine).ok


def test_update_of_an_unloaded_attribute_still_records_the_old_value(engine: Engine) -> None:
    cid = _add_centre(engine)
    with unit_of_work(engine, NURSE, reason="correction") as uow:
        c = uow.session.get(Centre, cid)
        assert c is not None
        uow.session.expire(c, ["name"])
        c.name = "New"
    last = _rows(engine)[-1]
    assert json.loads(last.old_value or "") == "Centre C07"


def test_blank_reason_counts_as_none(engine: Engine) -> None:
    cid = _add_centre(engine)
    with pytest.raises(ValidationError), unit_of_work(engine, NURSE, reason="   ") as uow:
        c = uow.session.get(Centre, cid)
        assert c is not None
        c.active = False


def test_delete_needs_a_reason_and_keeps_the_old_record(engine: Engine) -> None:
    cid = _add_centre(engine)
    with pytest.raises(ValidationError, match="reason"), unit_of_work(engine, ADMIN) as uow:
        uow.session.delete(uow.session.get(Centre, cid))
    with unit_of_work(engine, ADMIN) as uow:
        uow.reason = "created by mistake"
        uow.session.delete(uow.session.get(Centre, cid))
    last = _rows(engine)[-1]
    assert last.action == "delete" and last.reason == "created by mistake"
    assert json.loads(last.old_value or "")["code"] == "C07"
    assert _verify(engine).ok


def test_changes_to_rows_inserted_in_the_same_transaction_need_no_reason(engine: Engine) -> None:
    with unit_of_work(engine, ADMIN) as uow:
        c = Centre(code="C01", name="draft")
        uow.session.add(c)
        uow.flush()
        c.name = "final"
    assert [r.action for r in _rows(engine)] == ["insert", "update"]


def test_rollback_writes_no_audit_rows(engine: Engine) -> None:
    with pytest.raises(RuntimeError), unit_of_work(engine, ADMIN) as uow:
        uow.session.add(Centre(code="C02", name="x"))
        uow.flush()
        raise RuntimeError("boom")
    assert _rows(engine) == []
    _add_centre(engine)
    assert [r.seq for r in _rows(engine)] == [1]


def test_bulk_statements_and_read_sessions_cannot_bypass_the_door(engine: Engine) -> None:
    _add_centre(engine)
    with pytest.raises(PermissionDenied), unit_of_work(engine, ADMIN, reason="x") as uow:
        uow.session.execute(update(Centre).values(name="bulk"))
    with pytest.raises(PermissionDenied), read_session(engine) as s:
        s.add(Centre(code="C09", name="sneaky"))
        s.flush()


def test_audit_table_rejects_update_and_delete(engine: Engine) -> None:
    _add_centre(engine)
    for stmt in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(stmt))
    assert len(_rows(engine)) == 1


def _tamper(engine: Engine, sql: str) -> None:
    """What someone with direct database access could do: switch the guard off, then edit."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            conn.execute(text(sql))
            conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(text("DROP TRIGGER audit_log_no_delete"))
            conn.execute(text(sql))


def _five_rows(engine: Engine) -> None:
    for i in range(5):
        _add_centre(engine, f"C{i:02d}")


@pytest.mark.parametrize(
    ("sql", "broken"),
    [
        ('UPDATE audit_log SET new_value = \'{"code":"C99"}\' WHERE seq = 3', 3),
        ("UPDATE audit_log SET username = 'someone' WHERE seq = 1", 1),
        ("DELETE FROM audit_log WHERE seq = 2", 2),
        ("DELETE FROM audit_log WHERE seq >= 4", 4),
    ],
)
def test_tampering_is_detected_at_the_first_broken_row(
    engine: Engine, sql: str, broken: int
) -> None:
    _five_rows(engine)
    assert _verify(engine).ok
    _tamper(engine, sql)
    result = _verify(engine)
    assert not result.ok
    assert result.first_broken_seq == broken


def test_rehashing_a_tampered_row_is_still_detected_by_the_next_row(engine: Engine) -> None:
    """Even someone holding the key who re-seals an edited row breaks the link of the next."""
    _five_rows(engine)
    with engine.connect() as conn:
        r = conn.execute(select(*audit._COLUMNS).where(audit.AuditLog.seq == 2)).one()
    forged = audit.row_hash({**r._mapping, "username": "forger"}, key_for(engine))
    _tamper(
        engine, f"UPDATE audit_log SET username = 'forger', row_hash = '{forged}' WHERE seq = 2"
    )
    result = _verify(engine)
    assert (result.ok, result.first_broken_seq) == (False, 3)


def test_a_row_rehashed_without_the_key_is_detected_at_that_row(engine: Engine) -> None:
    """Plain SHA-256 (what anyone can compute) is not the keyed hash: the row itself fails."""
    _five_rows(engine)
    with engine.connect() as conn:
        r = conn.execute(select(*audit._COLUMNS).where(audit.AuditLog.seq == 2)).one()
    forged = hashlib.sha256(audit.canonical_row({**r._mapping, "username": "forger"})).hexdigest()
    _tamper(
        engine, f"UPDATE audit_log SET username = 'forger', row_hash = '{forged}' WHERE seq = 2"
    )
    result = _verify(engine)
    assert (result.ok, result.first_broken_seq) == (False, 2)
    assert "keyed hash" in (result.problem or "")


def test_concurrent_writers_extend_one_linear_chain(engine: Engine) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                _add_centre(engine, f"T{i}{j}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = _verify(engine)
    assert result.ok and result.rows_checked == 30


def test_migrations_match_the_models(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from reluth.db.registry import load_all_models

    """A fresh database migrated to head has exactly the tables and columns of the models."""
    eng = make_engine(db_url)
    upgrade(eng)
    assert current_revision(eng) == head_revision()
    with eng.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), load_all_models())
    eng.dispose()
    assert diff == []
