"""Reliability under concurrency and crashes: 32 workers randomize 400 patients (threads on
SQLite, processes on PostgreSQL); a worker killed mid-randomization leaves nothing behind."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, select
from storekit import (
    INVESTIGATOR,
    STAT,
    add_users,
    opened,
    ready_patients,
    ready_patients_parallel,
    work,
)

from reluth.db import audit
from reluth.db.engine import make_engine
from reluth.db.session import read_session
from reluth.errors import Conflict
from reluth.patients.models import Patient
from reluth.randomization import service as rnd
from reluth.randomization.models import AllocationSlot, AllocationStratum, Randomization

WORKERS = 32
PATIENTS = 400
SEED = "concurrency-test-seed-0123456789"

_worker_engine: Engine | None = None


def _worker_randomize(url: str, code: str, request: str) -> tuple[str, str, str, bool]:
    global _worker_engine
    if _worker_engine is None:
        _worker_engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with work(_worker_engine, INVESTIGATOR) as ctx:
            r = rnd.randomize(ctx, code, request)
        return code, request, r.arm, r.replayed
    except Conflict as exc:
        return code, request, f"conflict: {exc}", False


def _init_process() -> None:
    global _worker_engine
    _worker_engine = None


def _setup(engine: Engine, url: str) -> list[str]:
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, SEED, 60)
    centres = ("C01", "C02", "C03", "C04")
    if url.startswith("sqlite"):
        return ready_patients(engine, PATIENTS, centres=centres)
    engine.dispose()
    return ready_patients_parallel(url, PATIENTS, centres=centres)


def test_32_workers_randomize_400_patients_exactly_once(store_url: str) -> None:
    t0 = time.perf_counter()
    engine = make_engine(store_url)
    codes = _setup(engine, store_url)
    engine.dispose()
    # Every patient once, plus retries of 100 requests (same id) and 50 second attempts with
    # a new request id (must be refused), all interleaved.
    tasks = [(c, f"req-{c}") for c in codes]
    tasks += [(c, f"req-{c}") for c in codes[::4]]
    tasks += [(c, f"other-{c}") for c in codes[1::8]]
    tasks.sort(key=lambda t: hash(t) % 997)
    print(f"set-up {time.perf_counter() - t0:.1f} s")
    start = time.perf_counter()
    if store_url.startswith("sqlite"):
        pool_engine = make_engine(store_url, pool_size=WORKERS, max_overflow=0)

        def run(task: tuple[str, str]) -> tuple[str, str, str, bool]:
            global _worker_engine
            try:
                with work(pool_engine, INVESTIGATOR) as ctx:
                    r = rnd.randomize(ctx, *task)
                return task[0], task[1], r.arm, r.replayed
            except Conflict as exc:
                return task[0], task[1], f"conflict: {exc}", False

        with ThreadPoolExecutor(WORKERS) as ex:
            results = list(ex.map(run, tasks))
        pool_engine.dispose()
    else:
        with mp.get_context("fork").Pool(WORKERS, initializer=_init_process) as pool:
            results = pool.starmap(_worker_randomize, [(store_url, c, r) for c, r in tasks])
    elapsed = time.perf_counter() - start

    # Per patient: one request id won; all its retries got the same arm; the other was refused.
    won: dict[str, set[tuple[str, str]]] = {}
    for code, request, arm, _ in results:
        if arm.startswith("conflict"):
            assert "already randomized" in arm, arm
        else:
            won.setdefault(code, set()).add((request, arm))
    assert len(won) == PATIENTS and all(len(w) == 1 for w in won.values())

    engine = make_engine(store_url)
    with read_session(engine) as s:
        rands = s.scalars(select(Randomization)).all()
        slots = {x.id: x for x in s.scalars(select(AllocationSlot))}
        cursors = {c.stratum_key: c for c in s.scalars(select(AllocationStratum))}
    assert len(rands) == PATIENTS
    stored = {r.patient_id: (r.request_id, r.arm) for r in rands}
    with read_session(engine) as s:
        ids = {p.patient_code: p.id for p in s.scalars(select(Patient))}
    assert all(stored[ids[c]] == next(iter(w)) for c, w in won.items())
    assert len({r.patient_id for r in rands}) == PATIENTS  # no patient twice
    assert len({r.slot_id for r in rands}) == PATIENTS  # no slot twice
    used_by_key: dict[str, list[int]] = {}
    for r in rands:
        slot = slots[r.slot_id]  # type: ignore[index]
        assert (slot.patient_id, opened(slot)["arm"], slot.stratum_key) == (
            r.patient_id,
            r.arm,
            r.stratum_key,
        )
        used_by_key.setdefault(slot.stratum_key, []).append(slot.position)
    assert len(used_by_key) == 16  # every stratum was exercised
    for key, positions in used_by_key.items():  # each list consumed in order, without gaps
        assert sorted(positions) == list(range(1, len(positions) + 1)), key
        assert cursors[key].next_position == len(positions) + 1
    unused_taken = [
        x
        for x in slots.values()
        if x.patient_id is not None and x.id not in {r.slot_id for r in rands}
    ]
    assert unused_taken == []
    with engine.connect() as conn:
        assert audit.verify(conn).ok
    engine.dispose()
    print(f"{len(tasks)} requests by {WORKERS} workers in {elapsed:.1f} s")


# ------------------------------------------------------------------------------- SIGKILL


def _die_before_commit(url: str, code: str, ready: Any) -> None:  # pragma: no cover - child
    original = audit.append

    def append_then_hang(conn: Any, entries: Any) -> None:
        original(conn, entries)  # everything of the randomization is written, not committed
        ready.set()
        time.sleep(600)

    audit.append = append_then_hang  # type: ignore[assignment]
    engine = make_engine(url)
    with work(engine, INVESTIGATOR) as ctx:
        rnd.randomize(ctx, code, "killed-request")


def test_worker_killed_mid_randomization_leaves_no_trace_and_retry_succeeds(
    store_url: str,
) -> None:
    engine = make_engine(store_url)
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, SEED, 8)
    (code,) = ready_patients(engine, 1)
    with engine.connect() as conn:
        audit_rows = audit.count(conn)
    engine.dispose()

    ctx = mp.get_context("fork")
    ready = ctx.Event()
    child = ctx.Process(target=_die_before_commit, args=(store_url, code, ready))
    child.start()
    assert ready.wait(60), "the child never reached the commit"
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join(10)
    assert child.exitcode == -signal.SIGKILL

    engine = make_engine(store_url)
    with read_session(engine) as s:
        assert s.scalars(select(Randomization)).all() == []
        assert all(x.patient_id is None for x in s.scalars(select(AllocationSlot)))
        assert {c.next_position for c in s.scalars(select(AllocationStratum))} == {1}
    with engine.connect() as conn:
        assert audit.count(conn) == audit_rows and audit.verify(conn).ok
    # The lock died with the worker: a retry of the same request succeeds at once.
    done = threading.Event()
    with work(engine, INVESTIGATOR) as ctx:
        result = rnd.randomize(ctx, code, "killed-request")
        done.set()
    assert not result.replayed
    with read_session(engine) as s:
        taken = s.scalars(select(AllocationSlot).where(AllocationSlot.patient_id.is_not(None)))
        assert [x.position for x in taken] == [1]
    with engine.connect() as conn:
        assert audit.verify(conn).ok
    engine.dispose()
    assert Counter([result.arm])  # an arm was given


def test_concurrent_minimization_serializes_decisions(store_url: str) -> None:
    """8 workers minimize 24 patients at once: no deadlock, each decision saw all earlier
    ones (the counts stored with decision k add up to k - 1 patients)."""
    engine = make_engine(store_url)
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization", stratify_by_centre=True)
    codes = ready_patients(engine, 24)
    engine.dispose()
    tasks = [(c, f"m-{c}") for c in codes]
    if store_url.startswith("sqlite"):
        pool_engine = make_engine(store_url, pool_size=8, max_overflow=0)

        def run(task: tuple[str, str]) -> str:
            with work(pool_engine, INVESTIGATOR) as ctx:
                return rnd.randomize(ctx, *task).arm

        with ThreadPoolExecutor(8) as ex:
            list(ex.map(run, tasks))
        pool_engine.dispose()
    else:
        with mp.get_context("fork").Pool(8, initializer=_init_process) as pool:
            results = pool.starmap(_worker_randomize, [(store_url, c, r) for c, r in tasks])
        assert not any(arm.startswith("conflict") for _, _, arm, _ in results)
    engine = make_engine(store_url)
    with read_session(engine) as s:
        rands = s.scalars(select(Randomization).order_by(Randomization.randomized_at)).all()
    engine.dispose()
    assert len(rands) == 24
    seen = sorted(
        sum(
            json.loads(r.details_json or "")["counts_before"]["centre"][a]
            for a in ("experimental", "control")
        )
        for r in rands
    )
    # per centre, the counts seen by successive decisions are 0, 1, 2, ... without repeats
    by_centre: dict[str, list[int]] = {}
    for r in rands:
        d = json.loads(r.details_json or "")["counts_before"]["centre"]
        by_centre.setdefault(d["level"], []).append(d["experimental"] + d["control"])
    for counts in by_centre.values():
        assert sorted(counts) == list(range(len(counts)))
    assert seen[0] == 0
