"""The audited write path: what one randomization and one laboratory entry cost (client CPU,
SQL statements, wall time) against the floor of a plain SQLAlchemy Core insert of the same row
without audit; then randomizations per second and p50/p99 latency with 1, 8 and 32 concurrent
clients, on SQLite (threads) and PostgreSQL (processes), with the invariants checked after each
run.

    .venv/bin/python benchmarks/bench_randomization.py [--serial 200] [--per-level 160] [--postgres URL]
    .venv/bin/python benchmarks/bench_randomization.py --serial 200 --per-level 0   # cost only

Each randomization is one full ``randomize`` unit of work (policy check, preconditions,
stratum lock, slot, audited randomization row, audit-chain append, commit with fsync); each lab
entry one ``record_lab`` unit of work (CTCAE grading, date checks, audited row, chain append,
commit). Patients are prepared through the services beforehand, and each client first
randomizes one warm-up patient (not timed). CPU is this process's (``time.process_time``);
on PostgreSQL the backend's CPU is read from /proc (the server must run on this machine).
The 1-minute load average is printed beside every wall-clock number: on a shared machine wall
time measures the machine, CPU time measures the code.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The audit chain's and the allocation list's keys, as a deployment gives them (before reluth
# reads its settings).
os.environ.setdefault("RELUTH_AUDIT_KEY", "reluth-benchmark-audit-key-000000000000")
os.environ.setdefault("RELUTH_ALLOCATION_KEY", "reluth-benchmark-allocation-key-0000000")
os.environ.setdefault("RELUTH_DATA_DIR", tempfile.mkdtemp(prefix="reluth-bench-data-"))

from rich.progress import Progress
from sqlalchemy import Column, Engine, MetaData, Table, create_engine, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))

from storekit import (
    INVESTIGATOR,
    NURSE,
    STAT,
    actor,
    add_users,
    ready_patients,
    statements,
    trial_on,
)

from reluth.core.context import writing
from reluth.db import audit
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.db.session import read_session
from reluth.randomization import service as rnd
from reluth.randomization.models import AllocationSlot, Randomization
from reluth.safety import service as safety
from reluth.safety.models import LabResult

LEVELS = (1, 8, 32)
CENTRES = ("C01", "C02", "C03", "C04")
#: The laboratory result each lab entry records (as the web benchmark's API write).
LAB = {
    "test": "platelets",
    "value": "180000",
    "unit": "/mm3",
    "lln": "150000",
    "date": "2025-03-04",
}
_engine: Engine | None = None
_who: dict[str, Any] = {}


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _context(engine: Engine, username: str) -> Any:
    """The cached (actor, trial) of ``username``: a long-lived server has both at hand."""
    if username not in _who:
        _who[username] = (actor(engine, username), trial_on())
    return _who[username]


def randomize(engine: Engine, code: str) -> None:
    person, trial = _context(engine, INVESTIGATOR)
    with writing(engine, person, trial) as ctx:
        rnd.randomize(ctx, code, f"bench-{code}")


def record_lab(engine: Engine, code: str) -> None:
    person, trial = _context(engine, NURSE)
    with writing(engine, person, trial) as ctx:
        safety.record_lab(ctx, code, dict(LAB))


def _one(url: str, code: str) -> float:
    global _engine
    if _engine is None:
        _engine = make_engine(url, pool_size=1, max_overflow=0)
    start = time.perf_counter()
    randomize(_engine, code)
    return time.perf_counter() - start


def _connect(url: str) -> None:
    """Pool initializer: open this worker's connection before the clock starts."""
    global _engine
    _who.clear()
    _engine = make_engine(url, pool_size=1, max_overflow=0)
    with _engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _prepare_chunk(url: str, n: int, start: int) -> list[str]:
    eng = make_engine(url)
    try:
        return ready_patients(eng, n, centres=CENTRES, start=start)
    finally:
        eng.dispose()


def prepare(url: str, total: int, parallel: bool) -> list[str]:
    eng = make_engine(url)
    upgrade(eng)
    add_users(eng, CENTRES)
    with writing(eng, actor(eng, STAT), trial_on()) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "benchmark-seed-0123456789", total // 8 + 8)
    eng.dispose()
    chunk = 40
    starts = list(range(0, total, chunk))
    codes: list[str] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("preparing patients", total=total)
        if parallel:
            with mp.get_context("fork").Pool(2) as pool:
                for part in pool.starmap(
                    _prepare_chunk, [(url, min(chunk, total - s), s) for s in starts]
                ):
                    codes += part
                    progress.advance(task, len(part))
        else:
            for s in starts:
                codes += _prepare_chunk(url, min(chunk, total - s), s)
                progress.advance(task, chunk)
    return codes


# ----------------------------------------------------------------------- cost of one write


def _backend_pid(engine: Engine) -> int | None:
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _backend_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor_table(source: Table, metadata: MetaData) -> Table:
    """A table with ``source``'s columns and none of its constraints, indexes or audit: what
    the database costs to store the same row at the least."""
    return Table(
        f"bench_floor_{source.name}",
        metadata,
        *[Column(c.name, c.type, primary_key=c.primary_key) for c in source.columns],
    )


#: Writes per batch: the best batch's CPU per write is the least disturbed by other processes
#: on a shared machine (every process there runs with caches others keep evicting).
BATCH = 10


def measure(
    engine: Engine, label: str, op: Callable[[str], None], items: list[str]
) -> dict[str, Any]:
    """Client CPU, backend CPU, statements and wall time per call of ``op`` over ``items``
    (one warm-up call first, not counted)."""
    op(items[0])
    items = items[1:]
    pid = _backend_pid(engine) if engine.pool.size() == 1 else None
    load0 = load()
    batches: list[float] = []  # client CPU per write of each batch of BATCH writes
    with statements(engine, control=True) as seen:
        c0, b0, w0 = time.process_time(), _backend_cpu(pid), time.perf_counter()
        for start in range(0, len(items), BATCH):
            part = items[start : start + BATCH]
            t0 = time.process_time()
            for item in part:
                op(item)
            batches.append((time.process_time() - t0) / len(part))
        c1, b1, w1 = time.process_time(), _backend_cpu(pid), time.perf_counter()
    n = len(items)
    return {
        "label": label,
        "n": n,
        "statements": len(seen) / n,
        "cpu_ms": (c1 - c0) * 1000 / n,
        "best_ms": min(batches) * 1000,
        "backend_ms": (b1 - b0) * 1000 / n if pid is not None else None,
        "wall_ms": (w1 - w0) * 1000 / n,
        "load": f"{load0}-{load()}",
        "sql": seen[: len(seen) // n] if n else [],
    }


def serial_costs(url: str, n: int, parallel_prep: bool, show_sql: bool) -> list[str]:
    """One client, ``n`` randomizations then ``n`` lab entries, each against its floor."""
    codes = prepare(url, n + 1, parallel_prep)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    results = [
        measure(engine, "randomization (randomize)", lambda c: randomize(engine, c), codes),
        measure(engine, "lab entry (record_lab)", lambda c: record_lab(engine, c), codes),
    ]
    metadata = MetaData()
    floors = {
        t.name: floor_table(t, metadata) for t in (Randomization.__table__, LabResult.__table__)
    }
    metadata.create_all(engine)
    with read_session(engine) as s:
        rows = {
            "randomizations": [_row(r) for r in s.scalars(select(Randomization))],
            "lab_results": [_row(r) for r in s.scalars(select(LabResult))],
        }

    def core_insert(table: Table, row: dict[str, Any]) -> None:
        with engine.begin() as conn:
            conn.execute(table.insert(), row)

    for name, label in (("randomizations", "randomization"), ("lab_results", "lab entry")):
        table, values = floors[name], iter(rows[name])
        results.append(
            measure(
                engine,
                f"floor: Core insert of the same {label} row, no audit",
                lambda _c, t=table, v=values: core_insert(t, next(v)),  # type: ignore[misc]
                codes[: len(rows[name])],
            )
        )
    metadata.drop_all(engine)
    engine.dispose()
    out = []
    floor = {r["label"].split(" same ")[1].split(" row")[0]: r for r in results[2:]}
    for r in results:
        kind = "randomization" if r["label"].startswith("random") else "lab entry"
        ratio = (
            "" if r["label"].startswith("floor") else f"{r['cpu_ms'] / floor[kind]['cpu_ms']:.1f}x"
        )
        backend = "" if r["backend_ms"] is None else f"{r['backend_ms']:.2f}"
        out.append(
            f"| {r['label']} | {r['n']} | {r['statements']:.1f} | {r['cpu_ms']:.2f} "
            f"| {r['best_ms']:.2f} | {ratio} "
            f"| {backend} | {r['wall_ms']:.2f} | {r['load']} |"
        )
        print(out[-1], flush=True)
    if show_sql:
        for r in results[:2]:
            print(f"\n{r['label']}: {len(r['sql'])} statements")
            for sql in r["sql"]:
                print("   ", " ".join(sql.split())[:150])
    return out


def _row(obj: Any) -> dict[str, Any]:
    return {c.key: getattr(obj, c.key) for c in obj.__mapper__.column_attrs if c.key != "id"}


# ---------------------------------------------------------------------------- throughput


def run_level(url: str, codes: list[str], clients: int) -> tuple[float, float, float]:
    global _engine
    if url.startswith("sqlite"):
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
        _engine = None
        _who.clear()
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


def throughput(url: str, label: str, per_level: int, parallel_prep: bool) -> list[str]:
    codes = prepare(url, per_level * len(LEVELS) + sum(LEVELS), parallel_prep)
    rows = []
    for clients in LEVELS:
        part, codes = codes[: per_level + clients], codes[per_level + clients :]
        load0 = load()
        rate, p50, p99 = run_level(url, part, clients)
        rows.append(
            f"| {label} | {clients} | {per_level} | {rate:.0f} | {p50:.1f} | {p99:.1f} "
            f"| {load0}-{load()} |"
        )
        print(rows[-1], flush=True)
    check_invariants(url)
    return rows


@contextmanager
def scratch_postgres(base: str) -> Iterator[str]:
    name = f"reluth_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serial", type=int, default=200, help="writes per cost row (0: none)")
    parser.add_argument("--per-level", type=int, default=160, help="0: no throughput runs")
    parser.add_argument("--postgres", help="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--sql", action="store_true", help="list the statements of each write")
    args = parser.parse_args()
    databases: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_sqlite:
            databases.append(("SQLite", f"sqlite:///{tmp}/bench"))
        if args.postgres:
            databases.append(("PostgreSQL", args.postgres))
        if args.serial:
            print(f"\none client, load average {load()}")
            print(
                "| database: write | writes | statements each | client CPU ms each "
                f"| best batch of {BATCH} | CPU / floor | backend CPU ms | wall ms | load |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            for name, url in databases:
                print(f"| **{name}** |")
                if url.startswith("sqlite"):
                    serial_costs(f"{url}-serial.db", args.serial, False, args.sql)
                else:
                    with scratch_postgres(url) as scratch:
                        serial_costs(scratch, args.serial, True, args.sql)
        if args.per_level:
            print("\n| database | clients | randomizations | per second | p50 ms | p99 ms | load |")
            print("|---|---|---|---|---|---|---|")
            for _name, url in databases:
                if url.startswith("sqlite"):
                    throughput(f"{url}-load.db", "SQLite (threads)", args.per_level, False)
                else:
                    with scratch_postgres(url) as scratch:
                        throughput(scratch, "PostgreSQL (processes)", args.per_level, True)


if __name__ == "__main__":
    main()
