"""Events without a data change (exports) in the audit trail: sealed into the same hash chain
at commit, nothing on rollback, and event names that cannot pass for a data change."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select

from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.db import audit
from reluth.db.audit import AuditLog
from reluth.db.session import read_session, unit_of_work
from reluth.errors import ValidationError

STAT = Actor("stat1", Role.STATISTICIAN)


def _events(engine: Engine) -> list[AuditLog]:
    with read_session(engine) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == "export")))


def test_an_event_is_one_chained_audit_row_with_who_when_what(engine: Engine) -> None:
    with unit_of_work(engine, STAT) as uow:
        uow.record_event("export", "exports", "adam-datasets", {"format": "xpt", "rows": 3})
    (row,) = _events(engine)
    assert (row.username, row.role, row.table_name, row.record_id) == (
        "stat1",
        "statistician",
        "exports",
        "adam-datasets",
    )
    assert json.loads(row.new_value or "{}") == {"format": "xpt", "rows": 3}
    assert row.at_utc.endswith("Z") and row.old_value is None
    with engine.connect() as conn:
        result = audit.verify(conn)
    assert result.ok and result.rows_checked == 1


def test_a_rolled_back_event_leaves_no_row(engine: Engine) -> None:
    with pytest.raises(RuntimeError), unit_of_work(engine, STAT) as uow:
        uow.record_event("export", "exports", "x", {})
        raise RuntimeError("the download failed")
    assert _events(engine) == []


@pytest.mark.parametrize("action", ["", "insert", "update", "delete", "downloaded"])
def test_event_names_that_could_be_mistaken_or_do_not_fit_are_refused(
    engine: Engine, action: str
) -> None:
    with pytest.raises(ValidationError, match="action"), unit_of_work(engine, STAT) as uow:
        uow.record_event(action, "exports", "x", {})
