"""Locks and freeze at the one write door: a locked patient, form, centre or study cannot change
through any service (and so any adapter); a freeze stops data entry but not queries; every lock
and unlock is an audit row; a database lock writes a signed checkpoint."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from tests.store.storekit import NURSE, actor, add_account, ready_patients, trial_on, work

from reluth.auth.roles import Role
from reluth.config import Settings
from reluth.core.trial import Trial
from reluth.db import checkpoint
from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.errors import Conflict, Locked, NotConfigured, PermissionDenied, ValidationError
from reluth.lifecycle import service as lifecycle
from reluth.patients import service as patients
from reluth.protocol.definition import load_protocol
from reluth.queries import service as queries
from reluth.safety import service as safety

DM, MONITOR = "dm1", "mon1"
LAB = {"test": "platelets", "value": "150", "unit": "10^9/L", "date": "2025-03-01", "lln": "150"}


def _setup(engine: Engine, n: int = 2) -> list[str]:
    codes = ready_patients(engine, n)
    add_account(engine, DM, Role.DATA_MANAGER)
    add_account(engine, MONITOR, Role.MONITOR, ("C01", "C02"))
    return codes


def _lab(engine: Engine, code: str) -> int:
    with work(engine, NURSE) as ctx:
        return safety.record_lab(ctx, code, dict(LAB)).id


def test_a_locked_patient_refuses_every_change_and_names_the_lock(engine: Engine) -> None:
    a, b = _setup(engine)
    lab_id = _lab(engine, a)
    with work(engine, DM) as ctx:
        lifecycle.lock(ctx, "patient", a, "casebook complete for the interim analysis")
    with pytest.raises(Locked) as err, work(engine, NURSE) as ctx:
        safety.record_lab(ctx, a, dict(LAB))
    assert "patient C01-0001 is locked (by dm1" in err.value.message
    assert "casebook complete for the interim analysis" in err.value.message
    assert err.value.http_status == 423 and err.value.exit_code == 6
    with pytest.raises(Locked), work(engine, NURSE, reason="typo") as ctx:
        safety.edit_lab(ctx, a, lab_id, {"value": "151", "lln": "150"})
    with pytest.raises(Locked), work(engine, NURSE) as ctx:
        patients.record_death(ctx, a, dt.date(2025, 3, 1), "disease")
    with pytest.raises(Locked), work(engine, MONITOR) as ctx:  # a lock stops queries too
        queries.open_query(ctx, a, f"lab {lab_id} value", "source says 15?")
    # the other patient is untouched
    _lab(engine, b)
    with work(engine, DM) as ctx:
        lifecycle.unlock(ctx, "patient", a, "reopened: query from the sponsor")
    _lab(engine, a)
    with read_session(engine) as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.table_name == "record_locks")).all()
    assert [r.action for r in rows].count("insert") == 1
    assert any(r.field == "unlocked_at" and r.reason for r in rows)


def test_a_locked_form_refuses_its_row_but_not_the_patient(engine: Engine) -> None:
    (a,) = _setup(engine, 1)
    lab_id = _lab(engine, a)
    with work(engine, DM) as ctx:
        lock = lifecycle.lock(ctx, "form", f"lab_results/{lab_id}", "verified against source")
    assert lock.label == f"form lab_results/{lab_id} of patient {a}"
    with (
        pytest.raises(Locked, match=f"lab_results/{lab_id}"),
        work(engine, NURSE, reason="x") as ctx,
    ):
        safety.edit_lab(ctx, a, lab_id, {"value": "151", "lln": "150"})
    _lab(engine, a)  # another form of the same patient still takes data


def test_a_locked_centre_refuses_its_patients_and_new_registrations(engine: Engine) -> None:
    a, b = _setup(engine)
    with work(engine, DM) as ctx:
        lifecycle.lock(ctx, "centre", "C01", "site closed")
    with pytest.raises(Locked, match="centre C01 is locked"), work(engine, NURSE) as ctx:
        safety.record_lab(ctx, a, dict(LAB))
    with pytest.raises(Locked), work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01")
    _lab(engine, b)  # C02


def test_freeze_stops_data_entry_but_not_queries(engine: Engine) -> None:
    (a,) = _setup(engine, 1)
    lab_id = _lab(engine, a)
    with work(engine, DM) as ctx:
        lifecycle.lock(ctx, "study", None, "pre-lock review", kind="freeze")
    with pytest.raises(Locked, match="the study is frozen"), work(engine, NURSE) as ctx:
        safety.record_lab(ctx, a, dict(LAB))
    with work(engine, MONITOR) as ctx:
        q = queries.open_query(ctx, a, f"lab {lab_id} value", "please check")
    with work(engine, NURSE, reason=queries.answer_reason(q.id)) as ctx:
        queries.answer_query(ctx, q.id, "checked against source")
    with work(engine, DM) as ctx:
        lifecycle.unlock(ctx, "study", None, "review done", kind="freeze")
    _lab(engine, a)


def test_only_the_data_manager_locks_and_bad_requests_are_named(engine: Engine) -> None:
    (a,) = _setup(engine, 1)
    with pytest.raises(PermissionDenied), work(engine, NURSE) as ctx:
        lifecycle.lock(ctx, "patient", a, "mine")
    with pytest.raises(ValidationError, match="reason"), work(engine, DM) as ctx:
        lifecycle.lock(ctx, "patient", a, "  ")
    with pytest.raises(ValidationError, match="table"), work(engine, DM) as ctx:
        lifecycle.lock(ctx, "form", "nonsense/99999", "x")
    with work(engine, DM) as ctx:
        lifecycle.lock(ctx, "patient", a, "x")
    with pytest.raises(Conflict, match="already locked"), work(engine, DM) as ctx:
        lifecycle.lock(ctx, "patient", a, "again")
    with pytest.raises(Conflict, match="not locked"), work(engine, DM) as ctx:
        lifecycle.unlock(ctx, "centre", "C02", "nothing to lift")
    with work(engine, DM) as ctx:
        assert [v.label for v in lifecycle.active_locks(ctx, a)] == [f"patient {a}"]


def _settings(tmp_path: Path) -> Settings:
    key = tmp_path / "signing.key"
    checkpoint.create_signing_key(key)
    return Settings.from_env(
        {
            "RELUTH_DATA_DIR": str(tmp_path),
            "RELUTH_CHECKPOINT_KEY_FILE": str(key),
            "RELUTH_CHECKPOINT_DIR": str(tmp_path / "cp"),
        }
    )


def test_a_database_lock_writes_a_checkpoint_and_stops_everything(
    engine: Engine, tmp_path: Path
) -> None:
    (a,) = _setup(engine, 1)
    lab_id = _lab(engine, a)
    moment = dt.datetime(2025, 3, 5, 12, tzinfo=dt.UTC)
    no_key = Trial(
        load_protocol(),
        lambda: moment,
        Settings.from_env({"RELUTH_DATA_DIR": str(tmp_path / "none")}),
    )
    with pytest.raises(NotConfigured):
        lifecycle.lock_database(engine, actor(engine, DM), no_key, "final lock")
    trial = Trial(load_protocol(), lambda: moment, _settings(tmp_path))
    row, path = lifecycle.lock_database(engine, actor(engine, DM), trial, "final lock")
    assert row.scope == "study" and path is not None
    body = json.loads(path.read_text())["checkpoint"]
    assert body["reason"] == "database lock" and body["tables"]["record_locks"] == 1
    with pytest.raises(Locked, match="the study is locked"), work(engine, NURSE) as ctx:
        safety.record_lab(ctx, a, dict(LAB))
    with pytest.raises(Locked), work(engine, MONITOR) as ctx:
        queries.open_query(ctx, a, f"lab {lab_id} value", "q")


def test_a_locked_patient_refuses_the_file_import_and_the_dosimetry_service(
    engine: Engine,
) -> None:
    from reluth.auth.actor import Actor
    from reluth.core.context import writing
    from reluth.dosimetry import service as dosimetry
    from reluth.safety import records

    (a,) = _setup(engine, 1)
    with work(engine, DM) as ctx:
        lifecycle.lock(ctx, "patient", a, "analysis population fixed")
    labs = {
        "patient_id": a,
        "date": "2025-03-01",
        "results": [{"test": "alt", "value": "30", "unit": "U/L", "uln": "40"}],
    }
    with pytest.raises(Locked, match="analysis population fixed"), work(engine, NURSE) as ctx:
        records.record_labs(ctx, labs)
    dose = [
        {"region": "kidneys", "quantity": "absorbed_dose", "value": 3.1, "unit": "Gy",
         "method": "S-value"},
    ]  # fmt: skip
    physicist = Actor("phys1", Role.MEDICAL_PHYSICIST)
    with pytest.raises(Locked), writing(engine, physicist, trial_on()) as ctx:
        dosimetry.store_cycle(ctx, a, 2, dose, case_id="CASE-1")


def test_a_locked_patient_cannot_be_randomized(engine: Engine) -> None:
    from tests.store.storekit import INVESTIGATOR, STAT

    from reluth.randomization import service as rnd

    (a,) = _setup(engine, 1)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    with work(engine, DM) as ctx:
        lifecycle.lock(ctx, "patient", a, "eligibility under review")
    with pytest.raises(Locked, match="eligibility under review"), work(engine, INVESTIGATOR) as ctx:
        rnd.randomize(ctx, a, "r1")
    with pytest.raises(ValidationError, match="table"), work(engine, DM) as ctx:
        lifecycle.lock(ctx, "form", "allocation_slots/1", "not a form")


def test_a_lock_committed_during_a_long_write_is_seen_at_commit(engine: Engine) -> None:
    """Review finding: the locks are read once per transaction; a lock another transaction
    commits while this one is writing must still refuse it at commit (two connections; on
    PostgreSQL the commit re-check also waits for a lock being committed)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer at a time: the second could not lock meanwhile")
    code, _other = _setup(engine)
    _lab(engine, code)  # the trial has data; nothing is locked yet
    with pytest.raises(Locked, match="casebook reviewed"), work(engine, NURSE) as ctx:
        safety.record_lab(ctx, code, dict(LAB))  # flushed: the locks are read (none)
        with work(engine, DM) as other:  # a second connection locks and commits
            lifecycle.lock(other, "patient", code, "casebook reviewed")
        safety.record_lab(ctx, code, dict(LAB, date="2025-03-02"))  # still none cached
    with read_session(engine) as s:
        labs = s.scalars(select(AuditLog).where(AuditLog.table_name == "lab_results")).all()
    assert len(labs) == 1  # the long write rolled back whole
