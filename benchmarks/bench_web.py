"""Load benchmark of the web eCRF on loopback: page renders and API writes under 20 concurrent
users with a think time, against the app in one process (uvicorn), on SQLite, with the demo's
full synthetic trial (176 included patients over 22 centres, their follow-up, labs, adverse
events and questionnaires) loaded through the services as the demo does.

    .venv/bin/python benchmarks/bench_web.py [--users 20] [--think-ms 1000] [--seconds 30] [--runs 3] [--out DIR]

The trial is loaded once into ``--out`` (reused when present) and copied afresh for each run;
each run starts its own server. Every simulated user logs in first (argon2 is deliberately
slow; the clock starts when all are in), then loops with ``--think-ms`` (random 0.5-1.5 x) after
each request: 19 investigators over the dashboard, their centre's patient list, one patient's
timeline and one audited API write (a laboratory result, graded by the CTCAE engine); one data
manager over the dashboard, the status grid of all 176 patients and the patient list. The
peer in the same run is the login page (no database work): what the server and the loopback
cost at least. Latencies are wall-clock per request as the client sees them; the 1-minute load
average is printed with each run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

KEYS = {
    "RELUTH_AUDIT_KEY": "reluth-benchmark-audit-key-000000000000",
    "RELUTH_ALLOCATION_KEY": "reluth-benchmark-allocation-key-0000000",
}
PREFIX = "reluth-demo-"  # the demo accounts' published passwords (reluth.simulation.replay)


def load_trial(workdir: Path) -> Path:
    """The demo's trial (cohort seed 2021) replayed through the services into ``bench.db``."""
    db = workdir / "bench.db"
    if db.exists():
        return db
    from rich.progress import Progress

    from reluth.core.trial import Trial
    from reluth.db.engine import make_engine
    from reluth.db.migrate import upgrade
    from reluth.protocol.definition import load_protocol
    from reluth.simulation.cohort import CohortConfig, generate_cohort
    from reluth.simulation.replay import Replayer, events, play

    tmp = workdir / "loading.db"
    tmp.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{tmp}")
    upgrade(engine)
    trial = Trial(load_protocol())
    cohort = generate_cohort(CohortConfig(trial.protocol, seed=2021))
    replayer = Replayer(engine, cohort, 2021, trial)
    replayer.setup()
    timeline = events(cohort)
    with Progress() as progress:
        task = progress.add_task("loading the trial", total=len(timeline))
        for _day, _order, kind, patient in timeline:
            play(replayer, kind, patient)
            progress.advance(task)
    engine.dispose()
    tmp.rename(db)
    return db


def writable_patients(db: Path) -> dict[str, list[tuple[str, str]]]:
    """Per centre, the patients who have a laboratory result, with its date (a lab entry on
    that date passes the date checks: it already did once)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.patient_code, max(l.sample_date) FROM patients p"
                " JOIN lab_results l ON l.patient_id = p.id GROUP BY p.patient_code"
            )
        ).all()
    engine.dispose()
    out: dict[str, list[tuple[str, str]]] = {}
    for code, day in rows:
        out.setdefault(code.split("-")[0], []).append((code, str(day)[:10]))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    def __init__(self) -> None:
        self.by_kind: dict[str, list[float]] = {}
        self.errors: list[str] = []

    def add(self, kind: str, seconds: float) -> None:
        self.by_kind.setdefault(kind, []).append(seconds)


async def login(client: httpx.AsyncClient, username: str) -> bool:
    form = await client.get("/login")
    token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = await client.post(
        "/login", data={"username": username, "password": PREFIX + username, "csrf_token": token}
    )
    if r.status_code != 303:
        return False
    page = (await client.get("/dashboard")).text
    client.headers["X-CSRF-Token"] = page.split('"X-CSRF-Token": "')[1].split('"')[0]
    return True


async def user(
    base: str,
    username: str,
    plan: list[str],
    patients: list[tuple[str, str]],
    seconds: float,
    think_s: float,
    rec: Recorder,
    ready: asyncio.Barrier,
) -> None:
    """Log in, wait for everyone, then loop over ``plan`` (paths; ``{code}`` a patient of the
    user's, ``LAB`` an API lab entry for one) with the think time after each request."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        if not await login(client, username):
            rec.errors.append(f"login {username}")
            await ready.abort()
            return
        rng = random.Random(username)
        try:
            await ready.wait()
        except asyncio.BrokenBarrierError:
            return
        until = time.perf_counter() + seconds
        await asyncio.sleep(rng.uniform(0, think_s))  # arrivals spread over one think time
        while time.perf_counter() < until:
            for step in plan:
                code, day = rng.choice(patients) if patients else ("", "")
                t0 = time.perf_counter()
                if step == "LAB":
                    r = await client.post(
                        f"/api/v1/patients/{code}/labs",
                        json={
                            "test": "platelets",
                            "value": str(rng.randint(50, 300) * 1000),
                            "unit": "/mm3",
                            "lln": "150000",
                            "date": day,
                        },
                    )
                    kind, ok = "write: POST /api/v1/patients/{code}/labs", r.status_code == 201
                else:
                    r = await client.get(step.format(code=code))
                    kind, ok = f"page: {step}", r.status_code == 200
                rec.add(kind, time.perf_counter() - t0)
                if not ok:
                    rec.errors.append(f"{kind} {code}: {r.status_code} {r.text[:120]}")
                if think_s:
                    await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def one_run(db: Path, workdir: Path, args: argparse.Namespace, run: int) -> dict[str, Any]:
    copy = workdir / f"run-{run}.db"
    shutil.copyfile(db, copy)
    url = f"sqlite:///{copy}"
    port = free_port()
    env = {**os.environ, **KEYS, "RELUTH_DATABASE_URL": url, "RELUTH_DATA_DIR": str(workdir)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "reluth.web.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    rec = Recorder()
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/login", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        by_centre = writable_patients(copy)
        centres = sorted(by_centre)[: args.users - 1]
        investigator = ["/dashboard", "/patients", "/patients/{code}", "LAB", "/login"]
        users: list[tuple[str, list[str], list[tuple[str, str]]]] = [
            (f"investigator-{c.lower()}", investigator, by_centre[c]) for c in centres
        ]
        users.append(("datamanager", ["/dashboard", "/status", "/patients"], []))
        load0 = os.getloadavg()[0]

        async def go() -> None:
            ready = asyncio.Barrier(len(users))
            await asyncio.gather(
                *(
                    user(base, name, plan, pts, args.seconds, args.think_ms / 1000, rec, ready)
                    for name, plan, pts in users
                )
            )

        asyncio.run(go())
        load1 = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(timeout=20)
        copy.unlink(missing_ok=True)
    pages = [v for k, vs in rec.by_kind.items() if k.startswith("page") and "/login" not in k
             for v in vs]  # fmt: skip
    writes = [v for k, vs in rec.by_kind.items() if k.startswith("write") for v in vs]
    return {
        "run": run,
        "load": f"{load0:.1f}-{load1:.1f}",
        "users": len(users),
        "pages": len(pages),
        "page_p50_ms": round(pct(pages, 50), 1),
        "page_p95_ms": round(pct(pages, 95), 1),
        "writes": len(writes),
        "write_p50_ms": round(pct(writes, 50), 1),
        "write_p95_ms": round(pct(writes, 95), 1),
        "errors": len(rec.errors),
        "first_errors": rec.errors[:3],
        "by_kind_n_p50_p95_ms": {
            k: [len(v), round(pct(v, 50), 1), round(pct(v, 95), 1)]
            for k, v in sorted(rec.by_kind.items())
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--think-ms", type=float, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="keeps the loaded trial")
    args = parser.parse_args()
    os.environ.update(KEYS)
    workdir = Path(args.out or tempfile.mkdtemp(prefix="reluth-bench-web-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RELUTH_DATA_DIR", str(workdir))
    t0 = time.perf_counter()
    db = load_trial(workdir)
    print(f"trial ready in {time.perf_counter() - t0:.1f} s: {db}", flush=True)
    print("| run | load | pages | page p50 / p95 ms | writes | write p50 / p95 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for run in range(1, args.runs + 1):
        r = one_run(db, workdir, args, run)
        results.append(r)
        print(
            f"| {run} | {r['load']} | {r['pages']} | {r['page_p50_ms']} / {r['page_p95_ms']} "
            f"| {r['writes']} | {r['write_p50_ms']} / {r['write_p95_ms']} | {r['errors']} |",
            flush=True,
        )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
