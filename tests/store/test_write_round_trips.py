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
#: patient (with its centre), the settings (share-locked), the screening, the stratum cursor
#: (locked), the preconditions' facts with the request's replay check, the milestones (one
#: UNION), the slot, the lifecycle's flags; the slot, cursor and randomization writes; the
#: audit head (locked) and one bulk insert of the audit rows. (Before issue 20: 36.)
RANDOMIZE_BUDGET = 13 + 7
#: The 7 added by main's commit-time checks (merged 2026-12-01, lifecycle2: the lock re-check
#: and the edit checks' auto-queries read the patient, the active locks, the open queries and
#: the patient's cycles, labs, questionnaires and adverse events at every commit; on PostgreSQL
#: one more, the lock re-check's shared advisory lock, see :func:`_budget`).
#: Statements of one laboratory result: the patient, the milestones (inclusion and dates, one
#: UNION), the lifecycle's flags, the insert, the audit head and the audit rows. (Before: 27.)
LAB_BUDGET = 6 + 7  # the same commit-time checks
LAB = {
    "test": "platelets",
    "value": "180000",
    "unit": "/mm3",
    "lln": "150000",
    "date": "2025-03-04",
}


def _budget(engine: Engine, budget: int) -> int:
    """PostgreSQL's commit-time lock re-check also takes a shared advisory lock (one statement)."""
    return budget + (engine.dialect.name == "postgresql")


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
    assert not any(s.startswith("SELECT") and "randomizations" in s for s in seen[written:]), (
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
