"""Randomizations per second and p50/p99 latency with 1, 8 and 32 concurrent clients, on
SQLite (threads) and PostgreSQL (processes), with the invariants checked after each run.

    .venv/bin/python benchmarks/bench_randomization.py [--per-level 160] [--postgres URL]

Each request is one full ``randomize`` unit of work (preconditions, lock, slot, audit row,
commit). Patients are prepared through the services beforehand, and each client first
randomizes one warm-up patient (not timed).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.progress import Progress
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))

from storekit import INVESTIGATOR, STAT, add_users, ready_patients

from reluth.db import audit
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.db.session import read_session, unit_of_work
from reluth.randomization import service as rnd
from reluth.randomization.models import AllocationSlot, Randomization

LEVELS = (1, 8, 32)
_engine = None


def _one(url: str, code: str) -> float:
    global _engine
    if _engine is None:
        _engine = make_engine(url, pool_size=1, max_overflow=0)
    start = time.perf_counter()
    with unit_of_work(_engine, INVESTIGATOR) as uow:
        rnd.randomize(uow.session, INVESTIGATOR, code, f"bench-{code}")
    return time.perf_counter() - start


def _connect(url: str) -> None:
    """Pool initializer: open this worker's connection before the clock starts."""
    global _engine
    _engine = make_engine(url, pool_size=1, max_overflow=0)
    with _engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _prepare_chunk(url: str, n: int, start: int) -> list[str]:
    eng = make_engine(url)
    try:
        return ready_patients(eng, n, centres=("C01", "C02", "C03", "C04"), start=start)
    finally:
        eng.dispose()


def prepare(url: str, total: int, parallel: bool) -> list[str]:
    eng = make_engine(url)
    upgrade(eng)
    add_users(eng)
    with unit_of_work(eng, STAT) as uow:
        rnd.configure(uow.session, STAT, "blocks")
        rnd.generate_list(uow.session, STAT, "benchmark-seed-0123456789", total // 8 + 8)
    ready_patients(eng, 0, centres=("C01", "C02", "C03", "C04"))  # centres only
    eng.dispose()
    chunk = 40
    starts = list(range(0, total, chunk))
    codes: list[str] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("preparing patients", total=total)
        if parallel:
            with mp.get_context("fork").Pool(2) as pool:
                for part in pool.starmap(_prepare_chunk, [(url, chunk, s) for s in starts]):
                    codes += part
                    progress.advance(task, len(part))
        else:
            for s in starts:
                codes += _prepare_chunk(url, chunk, s)
                progress.advance(task, chunk)
    return codes


def run_level(url: str, codes: list[str], clients: int) -> tuple[float, float, float]:
    if url.startswith("sqlite"):
        global _engine
        _engine = make_engine(url, pool_size=clients, max_overflow=0)
        warmup, codes = codes[:clients], codes[clients:]
        with ThreadPoolExecutor(clients) as ex:  # warm-up, not timed (connections, statements)
            list(ex.map(lambda c: _one(url, c), warmup))
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as ex:
            latencies = list(ex.map(lambda c: _one(url, c), codes))
        _engine.dispose()
        _engine = None
    else:
        warmup, codes = codes[:clients], codes[clients:]
        with mp.get_context("fork").Pool(clients, initializer=_connect, initargs=(url,)) as pool:
            # Warm-up (not timed): each worker compiles its statements once, as a long-lived
            # server process would have done long before.
            pool.starmap(_one, [(url, c) for c in warmup], chunksize=1)
            start = time.perf_counter()
            latencies = pool.starmap(_one, [(url, c) for c in codes], chunksize=1)
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return len(codes) / elapsed, q[49] * 1000, q[98] * 1000


def check_invariants(url: str) -> None:
    eng = make_engine(url)
    with read_session(eng) as s:
        rands = s.scalars(select(Randomization)).all()
        slots = s.scalars(select(AllocationSlot).where(AllocationSlot.patient_id.is_not(None)))
        used = list(slots)
    assert len({r.patient_id for r in rands}) == len(rands) == len(used)
    assert len({r.slot_id for r in rands}) == len(rands)
    by_key: dict[str, list[int]] = {}
    for slot in used:
        by_key.setdefault(slot.stratum_key, []).append(slot.position)
    for positions in by_key.values():
        assert sorted(positions) == list(range(1, len(positions) + 1))
    with eng.connect() as conn:
        assert audit.verify(conn).ok
    eng.dispose()


def bench(url: str, label: str, per_level: int, parallel_prep: bool) -> list[str]:
    codes = prepare(url, per_level * len(LEVELS) + sum(LEVELS), parallel_prep)
    rows = []
    for clients in LEVELS:
        part, codes = codes[: per_level + clients], codes[per_level + clients :]
        rate, p50, p99 = run_level(url, part, clients)
        rows.append(f"| {label} | {clients} | {per_level} | {rate:.0f} | {p50:.1f} | {p99:.1f} |")
        print(rows[-1], flush=True)
    check_invariants(url)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-level", type=int, default=160)
    parser.add_argument("--postgres", help="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print("| database | clients | randomizations | per second | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{tmp}/bench.db", "SQLite (threads)", args.per_level, False)
    if args.postgres:
        name = f"reluth_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
        try:
            bench(url, "PostgreSQL (processes)", args.per_level, True)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
