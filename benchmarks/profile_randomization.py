"""Where a randomization's time goes (companion of bench_randomization.py).

    .venv/bin/python benchmarks/profile_randomization.py --postgres URL [--clients 32] [--n 300]
    .venv/bin/python benchmarks/profile_randomization.py --cprofile randomize|lab [--postgres URL] [--n 200]

``--cprofile``: the Python profile (cProfile) of ``--n`` serial randomizations or lab entries
with one client (SQLite unless ``--postgres``): the functions with the most own time and the
most cumulative time, per write.

1. CPU per randomization with one client: this process (Python) and its PostgreSQL backend
   (read from /proc, so the server must run on this machine).
2. With ``--clients`` concurrent clients (processes, as the benchmark): pg_stat_activity sampled
   every 5 ms; prints how many backends were, on average, in each state / wait event and on
   which statement (a row lock wait names the locking SELECT: the stratum or the audit head).
Each part uses its own scratch database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_randomization as bench

from reluth.db.engine import make_engine

_ACTIVITY = text(
    "SELECT state, coalesce(wait_event_type, '-'), coalesce(wait_event, '-'),"
    " left(regexp_replace(query, '\\s+', ' ', 'g'), 60)"
    " FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"
)


@contextmanager
def scratch_database(base: str) -> Iterator[tuple[str, str]]:
    name = f"reluth_profile_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False), name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_randomization(base: str, n: int) -> None:
    with scratch_database(base) as (url, _):
        codes = bench.prepare(url, n + 20, True)
        eng = make_engine(url, pool_size=1, max_overflow=0)
        with eng.connect() as conn:
            pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

        def run(batch: list[str]) -> None:
            for code in batch:
                bench.randomize(eng, code)

        run(codes[:20])  # warm-up
        c0, b0, w0 = time.process_time(), _backend_cpu(pid), time.perf_counter()
        run(codes[20:])
        c1, b1, w1 = time.process_time(), _backend_cpu(pid), time.perf_counter()
        eng.dispose()
    per = 1000 / n
    print(
        f"1 client, {n} randomizations: wall {per * (w1 - w0):.1f} ms, client CPU"
        f" {per * (c1 - c0):.1f} ms, PostgreSQL backend CPU {per * (b1 - b0):.1f} ms each"
    )


def wait_profile(base: str, clients: int, n: int) -> None:
    counts: collections.Counter[tuple[str, ...]] = collections.Counter()
    samples = 0
    stop = threading.Event()
    with scratch_database(base) as (url, name):

        def sample() -> None:
            nonlocal samples
            eng = create_engine(base, isolation_level="AUTOCOMMIT")
            with eng.connect() as conn:
                while not stop.is_set():
                    for state, wtype, wevent, query in conn.execute(_ACTIVITY, {"d": name}):
                        shown = query if (wtype == "Lock" or state == "active") else ""
                        counts[(state, wtype, wevent, shown)] += 1
                    samples += 1
                    time.sleep(0.005)
            eng.dispose()

        codes = bench.prepare(url, n + clients, True)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rate, p50, p99 = bench.run_level(url, codes, clients)
        stop.set()
        sampler.join()
    print(f"{clients} clients: {rate:.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms; {samples} samples")
    print("| backends (mean) | state | wait | statement |")
    print("|---|---|---|---|")
    for (state, wtype, wevent, query), k in counts.most_common(8):
        print(f"| {k / max(samples, 1):.2f} | {state} | {wtype}:{wevent} | {query} |")


def cprofile(url: str, what: str, n: int, top: int) -> None:
    import cProfile
    import pstats

    codes = bench.prepare(url, n + 20, url.startswith("postgresql"))
    eng = make_engine(url, pool_size=1, max_overflow=0)
    op = bench.randomize if what == "randomize" else bench.record_lab
    for code in codes[:20]:  # warm-up: compiled statements, caches
        op(eng, code)
    profiler = cProfile.Profile(time.process_time)  # CPU, not waiting for a core
    c0 = time.process_time()
    profiler.enable()
    for code in codes[20:]:
        op(eng, code)
    profiler.disable()
    cpu = (time.process_time() - c0) * 1000 / n
    eng.dispose()
    stats = pstats.Stats(profiler)
    calls = stats.total_calls / n  # type: ignore[attr-defined]
    print(
        f"{what}: {n} writes, {cpu:.2f} ms client CPU each under the profiler;"
        f" {calls:.0f} Python function calls each (deterministic: a measure of the work that"
        " the machine's load does not change)"
    )
    for order in ("tottime", "cumulative"):
        print(f"\n--- by {order} (ms per write) ---")
        entries = sorted(
            stats.stats.items(),  # type: ignore[attr-defined]
            key=lambda kv: kv[1][2 if order == "tottime" else 3],
            reverse=True,
        )
        for (file, line, name), (_cc, calls, tt, ct, _callers) in entries[:top]:
            where = f"{Path(file).name}:{line}({name})"
            print(
                f"{tt * 1000 / n:7.3f} own {ct * 1000 / n:7.3f} cum {calls / n:7.1f} calls  {where}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--cprofile", choices=("randomize", "lab"))
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    if args.cprofile:
        if args.postgres:
            with scratch_database(args.postgres) as (url, _):
                cprofile(url, args.cprofile, args.n, args.top)
        else:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                cprofile(f"sqlite:///{tmp}/profile.db", args.cprofile, args.n, args.top)
        return
    if not args.postgres:
        parser.error("--postgres is required without --cprofile")
    cpu_per_randomization(args.postgres, args.n)
    wait_profile(args.postgres, args.clients, args.n)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
