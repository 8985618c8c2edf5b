"""Round trips of the audited write path (issue 20 item 3): the SQL statements one
randomization and one laboratory entry send, counted with a SQLAlchemy event listener — a test
of round trips, not of time. Every statement beyond the budget is one more wait for the
database while the stratum lock (or SQLite's writer lock) is held. The statements listed in a
failure show what was added."""

from __future__ import annotations

from sqlalchemy import Engine
from storekit import (
    INVESTIGATOR,
    NURSE,
    STAT,
    actor,
    add_users,
    ready_patients,
    statements,
    trial_on,
    work,
)

from reluth.core.context import writing
from reluth.randomization import service as rnd
from reluth.safety import records
from reluth.safety import service as safety

#: Statements of one randomization with permuted blocks, BEGIN and COMMIT excluded: the
#: patient (with its centre and, share-locked, the settings), the latest screening with the
#: preconditions' facts and the request's replay check, the milestones (one UNION), the
#: stratum cursor (locked), the slot with the patient's and the request's randomization read
#: again under that lock, the lifecycle's flags; the slot, cursor and randomization writes;
#: the one edit check that reads a randomization (the questionnaires' visit windows: the
#: patient's questionnaires with their open system queries and the randomization, one
#: statement); the audit head (locked) and one bulk insert of the audit rows. (Before issue
#: 20: 36; 20 after the lifecycle's commit-time checks were merged, which evaluated every edit
#: check and re-read the locks and the patient at every commit; 13 before the settings rode
#: in the patient's statement and the facts in the screening's.)
RANDOMIZE_BUDGET = 11 + 1
#: Statements of one laboratory result: the patient, the milestones (inclusion and dates, one
#: UNION), the lifecycle's flags, the insert, the one edit check that reads labs (the platelets
#: before a cycle: the patient's cycles with their open system queries and the platelet counts
#: before each, one statement), the audit head and the audit rows. (Before: 27, then 13.)
LAB_BUDGET = 6 + 1
#: The tables of the edit checks that neither write reads (their checks read no randomization
#: and no laboratory result, so they are not evaluated).
UNCHECKED = ("FROM adverse_events", "FROM missing_data")
LAB = {
    "test": "platelets",
    "value": "180000",
    "unit": "/mm3",
    "lln": "150000",
    "date": "2025-03-04",
}


def _budget(engine: Engine, budget: int) -> int:
    """On PostgreSQL the commit re-reads the active locks after a shared advisory lock (two
    statements: a lock committed by another transaction meanwhile refuses the commit); on
    SQLite the transaction is the sole writer since its BEGIN IMMEDIATE and the locks its
    flushes read are still all there are."""
    return budget + 2 * (engine.dialect.name == "postgresql")


def _commit_reads(seen: list[str], written: str) -> list[str]:
    """The reads after the write's own INSERT (the commit-time checks)."""
    first = seen.index(next(s for s in seen if s.startswith(f"INSERT INTO {written}")))
    lifecycle = ("FROM audit_head", "FROM record_locks", "pg_advisory_xact_lock_shared")
    return [
        s for s in seen[first:] if s.startswith("SELECT") and not any(t in s for t in lifecycle)
    ]


def _audit_inserts(seen: list[str]) -> list[str]:
    return [s for s in seen if s.startswith("INSERT INTO audit_log")]


def _shown(seen: list[str]) -> str:
    return "\n".join(f"  {s[:140]}" for s in seen)


def test_a_randomization_takes_a_bounded_number_of_statements(engine: Engine) -> None:
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "round-trip-seed-0123456789", 4)
    first, second = ready_patients(engine, 2, stratum=0)
    with work(engine, INVESTIGATOR) as ctx:  # warm caches (schema checks, compiled statements)
        rnd.randomize(ctx, first, "warm-up")
    person, trial = actor(engine, INVESTIGATOR), trial_on()  # the caller's, already at hand
    with statements(engine) as seen, writing(engine, person, trial) as ctx:
        rnd.randomize(ctx, second, "counted")
    assert len(seen) <= _budget(engine, RANDOMIZE_BUDGET), (
        f"{len(seen)} statements:\n{_shown(seen)}"
    )
    # the randomization row, the slot and the cursor: audited in one bulk insert at commit
    assert len(_audit_inserts(seen)) == 1, _shown(seen)
    assert sum("FROM audit_head" in s for s in seen) == 1, _shown(seen)
    # nothing written is read back after its flush
    written = seen.index(next(s for s in seen if s.startswith("INSERT INTO randomizations")))
    checks = _commit_reads(seen, "randomizations")
    assert len(checks) == 1, _shown(checks)
    assert not any(t in s for s in checks for t in (*UNCHECKED, "FROM administrations")), checks
    assert not any("FROM patients" in s for s in checks), _shown(checks)
    # (the visit-window edit check joins the randomization to the patient's questionnaires:
    # that reads the questionnaires, not the row back)
    assert not any(s.startswith("SELECT") and "FROM randomizations" in s for s in seen[written:]), (
        _shown(seen)
    )


def test_a_laboratory_result_takes_a_bounded_number_of_statements(engine: Engine) -> None:
    first, second = ready_patients(engine, 2)
    with work(engine, NURSE) as ctx:
        safety.record_lab(ctx, first, dict(LAB))
    person, trial = actor(engine, NURSE), trial_on()
    with statements(engine) as seen, writing(engine, person, trial) as ctx:
        safety.record_lab(ctx, second, dict(LAB))
    assert len(seen) <= _budget(engine, LAB_BUDGET), f"{len(seen)} statements:\n{_shown(seen)}"
    assert len(_audit_inserts(seen)) == 1, _shown(seen)
    checks = _commit_reads(seen, "lab_results")
    # one statement for the platelet check; the patient is not read again at commit, and the
    # checks that read no laboratory result (visit windows, SAE awareness) are not evaluated
    assert len(checks) == 1, _shown(checks)
    assert not any(t in s for s in checks for t in (*UNCHECKED, "qol_questionnaires")), checks
    assert not any("FROM patients" in s for s in checks), _shown(checks)


def test_a_batch_of_results_reads_the_patient_once_and_audits_in_one_insert(
    engine: Engine,
) -> None:
    """Five results of one sample: the same statements as one result, plus the rows' insert
    (one per row on SQLite, one executemany on PostgreSQL): the dates are read once, not per
    result, and the audit rows go in one insert."""
    (code,) = ready_patients(engine, 1)
    results = [{"test": "alt", "value": str(20 + i), "unit": "U/L", "uln": "40"} for i in range(5)]
    person, trial = actor(engine, NURSE), trial_on()
    with statements(engine) as seen, writing(engine, person, trial) as ctx:
        rows = records.record_labs(
            ctx, {"patient_id": code, "date": "2025-03-04", "results": results}
        )
    assert len(rows) == 5
    reads = [s for s in seen if s.startswith(("SELECT", "WITH"))]
    assert len(reads) <= _budget(engine, LAB_BUDGET) - 2, _shown(seen)  # no insert among them
    assert len(_audit_inserts(seen)) == 1, _shown(seen)
