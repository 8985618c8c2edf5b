"""Time the status grid (patients x visits) on a demo database, as the data manager sees it:
the service alone, then the page rendered through the web app (in-process, on a copy of the
database, so the data manager's session does not change the demo's); ``--profile`` shows with
cProfile where the service's time goes; the load average is printed with the numbers (the
machine is shared).

    .venv/bin/python benchmarks/bench_status_grid.py demo-output/reluth-demo.db [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.core.context import reading
from reluth.core.trial import Trial
from reluth.db.engine import make_engine
from reluth.forms import service as forms

RUNS = 5


def _service(path: str, profile: bool) -> None:
    engine = make_engine(f"sqlite:///{path}")
    trial = Trial.default()
    actor = Actor("bench", Role.DATA_MANAGER)
    timings = []
    for _ in range(RUNS):
        with reading(engine, actor, trial) as ctx:
            start = time.perf_counter()
            grid = forms.status_grid(ctx)
            timings.append(time.perf_counter() - start)
    cells = sum(len(r.visits) for r in grid.rows)
    print(f"patients {len(grid.rows)}, visit cells {cells}, columns {len(grid.columns)}")
    print(f"status_grid: best {min(timings) * 1000:.0f} ms, first {timings[0] * 1000:.0f} ms")
    print("visit cells by status:", dict(Counter(grid.counts).most_common()))
    print("overdue forms:", dict(Counter(
        f.form for r in grid.rows for c in r.visits.values() for f in c.forms
        if f.status == "overdue"
    )))  # fmt: skip
    if profile:
        with reading(engine, actor, trial) as ctx:
            prof = cProfile.Profile()
            prof.enable()
            forms.status_grid(ctx)
            prof.disable()
        print("\ncProfile of one status_grid call (top 15 by cumulative time):")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
        print("top 10 by own time:")
        pstats.Stats(prof).sort_stats("tottime").print_stats(10)
    engine.dispose()


def _page(path: str) -> None:
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from reluth.auth import service as auth
    from reluth.auth.models import User
    from reluth.db.session import exempt_transaction
    from reluth.web.app import create_app
    from reluth.web.deps import SESSION_COOKIE

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "grid.db"
        shutil.copy(path, copy)
        app = create_app(f"sqlite:///{copy}")
        with exempt_transaction(app.state.engine) as db:
            user = db.scalars(
                select(User).where(User.role == Role.DATA_MANAGER.value, User.active.is_(True))
            ).first()
            if user is None:
                print("page: no data manager account in this database; not measured")
                return
            opened = auth.open_session(db, user, app.state.trial.now())
        client = TestClient(app)
        client.cookies.set(SESSION_COOKIE, opened.cookie_token)
        for url in ("/status?centre=C01", "/status", "/dashboard"):
            timings = []
            for _ in range(RUNS):
                start = time.perf_counter()
                r = client.get(url)
                timings.append(time.perf_counter() - start)
                assert r.status_code == 200, (url, r.status_code)
            print(
                f"page {url}: best {min(timings) * 1000:.0f} ms, "
                f"first {timings[0] * 1000:.0f} ms, {len(r.content) // 1024} KiB"
            )
        app.state.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", help="a demo SQLite database (reluth demo)")
    parser.add_argument("--profile", action="store_true", help="cProfile one grid")
    parser.add_argument("--no-page", action="store_true", help="the service only")
    args = parser.parse_args()
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    _service(args.db, args.profile)
    if not args.no_page:
        _page(args.db)
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
