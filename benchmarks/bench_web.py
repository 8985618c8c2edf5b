"""Load benchmark of the web eCRF on loopback: page renders and API writes under 20 concurrent
users, on SQLite, with a full trial loaded (176 included patients over 22 centres, 146
randomized) through the same services as the pages.

    .venv/bin/python benchmarks/bench_web.py [--users 20] [--seconds 20] [--out DIR]

The server runs in its own process (uvicorn, one worker); the load generator is httpx async.
Each simulated user logs in once, then loops: dashboard page, patient list page, one patient's
timeline page, and one API write (a laboratory result, audited). Latencies are wall-clock
per request as seen by the client. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx
from rich.progress import Progress

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "benchmark password 2026"


def load_trial(
    url: str, centres: int = 22, per_centre: int = 8, randomized: int = 146
) -> list[str]:
    from reluth.auth import service as auth
    from reluth.db.session import Actor, unit_of_work
    from reluth.patients import service as patients
    from reluth.randomization import service as randomization
    from reluth.web.app import prepare_database

    engine = prepare_database(url)
    admin = Actor("bench-admin", "admin")
    stat = Actor("bench-stat", "statistician")
    example = json.loads((REPO / "examples" / "patients" / "eligible.json").read_text())
    codes: list[str] = []
    with unit_of_work(engine, actor=admin) as uow:
        for c in range(1, centres + 1):
            patients.add_centre(uow.session, f"C{c:02d}", f"Centre {c}")
    with unit_of_work(engine, actor=stat) as uow:
        randomization.configure(uow.session, stat, "blocks")
    with unit_of_work(engine, actor=stat) as uow:
        randomization.generate_list(uow.session, stat, "benchmark-secret-seed-42", 160)
    total = centres * per_centre
    with Progress() as progress:
        task = progress.add_task("loading trial", total=total)
        for c in range(1, centres + 1):
            inv = Actor(f"inv{c:02d}", "investigator")
            for _ in range(per_centre):
                with unit_of_work(engine, actor=inv) as uow:
                    s = uow.session
                    code = patients.register_patient(
                        s, f"C{c:02d}", sex="female", birth_year=1960
                    ).patient_code
                    patients.screen_patient(s, {**example, "patient_id": code})
                    patients.include_patient(s, code, consent_date=dt.date(2024, 10, 28))
                    for n, day in ((1, "2024-11-04"), (2, "2024-12-30")):
                        patients.record_cycle(
                            s,
                            code,
                            n,
                            dt.date.fromisoformat(day),
                            Decimal("7.4"),
                            f"LOT{n}",
                        )
                    patients.record_pre_randomization(s, code, dt.date(2025, 2, 24), False, "SD")
                codes.append(code)
                progress.advance(task)
    with Progress() as progress:
        task = progress.add_task("randomizing", total=randomized)
        for i, code in enumerate(codes[:randomized]):
            inv = Actor(f"inv{code[1:3]}", "investigator")
            with unit_of_work(engine, actor=inv) as uow:
                randomization.randomize(uow.session, inv, code, f"bench-{i}")
            progress.advance(task)
    from sqlalchemy.orm import sessionmaker

    with sessionmaker(engine)() as db:
        for c in range(1, centres + 1):
            auth.create_user(db, f"inv{c:02d}", "investigator", PASSWORD, [f"C{c:02d}"])
        auth.create_user(db, "dm", "data_manager", PASSWORD)
        db.commit()
    engine.dispose()
    return codes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def user(
    base: str,
    username: str,
    codes: list[str],
    until: float,
    pages: list[float],
    writes: list[float],
    errors: list[str],
    think_s: float = 0.0,
    by_page: dict[str, list[float]] | None = None,
    ready: asyncio.Barrier | None = None,
    seconds: float = 0.0,
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        form = await client.get("/login")
        token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
        r = await client.post(
            "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
        )
        if r.status_code != 303:
            errors.append(f"login {username}: {r.status_code}")
            if ready is not None:
                await ready.abort()  # the others stop waiting for this user
            return
        client.headers["X-CSRF-Token"] = (
            (await client.get("/dashboard")).text.split('"X-CSRF-Token": "')[1].split('"')[0]
        )
        rng = random.Random(username)
        if ready is not None:  # time only after every user has logged in (argon2 at login)
            try:
                await ready.wait()
            except asyncio.BrokenBarrierError:
                return
            until = time.perf_counter() + seconds
        if think_s:  # users arrive spread over one think time, not all in the same millisecond
            await asyncio.sleep(rng.uniform(0, think_s))
        while time.perf_counter() < until:
            code = rng.choice(codes)
            for path in ("/dashboard", "/patients", f"/patients/{code}"):
                t0 = time.perf_counter()
                r = await client.get(path)
                pages.append(time.perf_counter() - t0)
                if by_page is not None:
                    kind = "/patients/{code}" if path.count("/") == 2 else path
                    by_page.setdefault(kind, []).append(pages[-1])
                if r.status_code != 200:
                    errors.append(f"GET {path}: {r.status_code}")
                if think_s:
                    await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
            t0 = time.perf_counter()
            r = await client.post(
                f"/api/v1/patients/{code}/labs",
                json={
                    "test": "platelets",
                    "value": str(rng.randint(50, 300) * 1000),
                    "unit": "/mm3",
                    "lln": "150000",
                    "date": "2025-03-11",
                },
            )
            writes.append(time.perf_counter() - t0)
            if r.status_code != 201:
                errors.append(f"POST labs: {r.status_code} {r.text[:100]}")
            if think_s:
                await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")


async def run_load(
    base: str, codes_by_user: dict[str, list[str]], seconds: float, think_s: float = 0.0
) -> dict[str, object]:
    pages: list[float] = []
    writes: list[float] = []
    errors: list[str] = []
    by_page: dict[str, list[float]] = {}
    until = time.perf_counter() + seconds
    ready = asyncio.Barrier(len(codes_by_user))
    await asyncio.gather(
        *(
            user(base, u, c, until, pages, writes, errors, think_s, by_page, ready, seconds)
            for u, c in codes_by_user.items()
        )
    )
    return {
        "page_requests": len(pages),
        "page_p50_ms": round(pct(pages, 50), 1),
        "page_p95_ms": round(pct(pages, 95), 1),
        "write_requests": len(writes),
        "write_p50_ms": round(pct(writes, 50), 1),
        "write_p95_ms": round(pct(writes, 95), 1),
        "errors": len(errors),
        "first_errors": errors[:3],
        "page_p50_p95_ms_by_page": {
            k: [round(pct(v, 50), 1), round(pct(v, 95), 1)] for k, v in sorted(by_page.items())
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean pause after each request (0: back-to-back saturation)",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    workdir = Path(args.out or tempfile.mkdtemp(prefix="reluth-bench-web-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'bench.db'}"
    t0 = time.perf_counter()
    codes = load_trial(url)
    print(f"loaded {len(codes)} patients in {time.perf_counter() - t0:.1f} s")
    port = free_port()
    env = {**os.environ, "RELUTH_DATABASE_URL": url}
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
            "--workers",
            str(args.workers),
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/login", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        by_centre: dict[str, list[str]] = {}
        for code in codes:
            by_centre.setdefault(f"inv{code[1:3]}", []).append(code)
        users = dict(list(by_centre.items())[: args.users])
        result = asyncio.run(run_load(base, users, args.seconds, args.think_ms / 1000))
    finally:
        server.terminate()
        server.wait(timeout=10)
    result.update(
        users=len(users),
        seconds=args.seconds,
        patients=len(codes),
        think_ms=args.think_ms,
        workers=args.workers,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
