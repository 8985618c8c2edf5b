"""Time the status grid (patients x visits) on a demo database, as the data manager sees it:
the service alone, the dashboard's counts, then the pages rendered through the web app
(in-process, on a copy of the database, so the data manager's session does not change the
demo's); ``--profile`` shows with cProfile where the service's time goes; ``--lifecycle``
first fills the lifecycle layers on a copy (SDV marks, e-signatures, locks, written through
the services as a monitor, the principal investigators and the data manager would) and
measures that copy. Each line gives the best wall time and the best CPU time
(``time.process_time``: this process's user + system, the SQLite engine included) of
``--runs`` runs; the load average is printed with the numbers (the machine is shared).

    .venv/bin/python benchmarks/bench_status_grid.py demo-output/reluth-demo.db [--profile]
    .venv/bin/python benchmarks/bench_status_grid.py demo-output/reluth-demo.db --lifecycle /tmp/grid-life.db
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.core.context import reading
from reluth.core.trial import Trial
from reluth.db.engine import make_engine
from reluth.forms import service as forms

RUNS = 5


def _timed(fn: Callable[[], Any], runs: int) -> tuple[Any, str]:
    walls, cpus = [], []
    out = None
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return out, (
        f"wall best {min(walls) * 1000:.0f} ms (first {walls[0] * 1000:.0f}), "
        f"CPU best {min(cpus) * 1000:.0f} ms"
    )


def _service(path: str, profile: bool, runs: int) -> None:
    from reluth.auth.policy import Action, Resource
    from reluth.records import dashboard

    engine = make_engine(f"sqlite:///{path}")
    trial = Trial.default()
    actor = Actor("bench", Role.DATA_MANAGER)

    def counts(ctx: Any) -> Any:
        with ctx.acting(Action.READ, Resource.VISIT):
            return forms.grid_counts(ctx)

    with reading(engine, actor, trial) as ctx:
        grid, took = _timed(lambda: forms.status_grid(ctx), runs)
        print(f"status_grid service: {took}")
        _, took = _timed(lambda: forms.status_grid(ctx, centre="C01"), runs)
        print(f"status_grid service, centre C01: {took}")
        if hasattr(forms, "grid_counts"):  # not before the set-based grid
            _, took = _timed(lambda: counts(ctx), runs)
            print(f"grid_counts (the dashboard's): {took}")
        _, took = _timed(lambda: dashboard.build(ctx), runs)
        print(f"dashboard service: {took}")
    cells = sum(len(r.visits) for r in grid.rows)
    print(f"patients {len(grid.rows)}, visit cells {cells}, columns {len(grid.columns)}")
    print("visit cells by status:", dict(Counter(grid.counts).most_common()))
    forms_by = Counter(
        f.status.value for r in grid.rows for c in r.visits.values() for f in c.forms
    )
    print("form cells by status:", dict(forms_by.most_common()))
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


def _page(path: str, runs: int) -> None:
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
        for url in ("/status?centre=C01", "/status", "/dashboard", "/api/v1/status"):
            r, took = _timed(lambda url=url: client.get(url), runs)  # type: ignore[misc]
            assert r.status_code == 200, (url, r.status_code)
            print(f"page {url}: {took}, {len(r.content) // 1024} KiB")
        app.state.engine.dispose()


def _fill_lifecycle(source: str, target: str) -> None:
    """A copy of ``source`` with the lifecycle layers full, written through the services: a
    monitor of every centre verifies every record of every other randomized patient (whole
    forms), each centre's investigator (made principal investigator) signs the casebook of
    every third patient, the data manager locks 200 form instances, 10 patients and one
    centre."""
    from sqlalchemy import select

    from reluth.auth import service as auth
    from reluth.auth.models import Centre
    from reluth.core.context import writing
    from reluth.db import auditkey
    from reluth.lifecycle import sdv_service as sdv
    from reluth.lifecycle import service as lifecycle
    from reluth.lifecycle import signature_service as signatures
    from reluth.simulation.replay import DEMO_PASSWORD_PREFIX as PREFIX

    shutil.copy(source, target)
    engine = make_engine(f"sqlite:///{target}")
    auditkey.bind(engine, auditkey.read_key_file(Path(source).parent / "audit.key"))
    trial = Trial.default()

    def login(name: str) -> Actor:
        return auth.password_login(engine, trial.now(), name, PREFIX + name)[0]

    with reading(engine, Actor("bench", Role.DATA_MANAGER), trial) as ctx:
        grid = forms.status_grid(ctx)
        centres = list(ctx.session.scalars(select(Centre.code).order_by(Centre.code)))
    tables = {f.id: f.table for f in ctx.trial.forms.forms}
    with writing(engine, login("admin"), trial) as ctx:
        auth.create_user(
            ctx, "bench-monitor", Role.MONITOR.value, PREFIX + "bench-monitor", centres
        )
        for c in centres:
            signatures.designate_principal_investigator(
                ctx, f"investigator-{c.lower()}", c, f"Dr {c}"
            )
    monitor = login("bench-monitor")
    records: dict[str, list[tuple[str, int]]] = {}
    for r in grid.rows:
        records[r.patient_code] = sorted(
            {(tables[f.form], i) for c in r.visits.values() for f in c.forms for i in f.record_ids}
        )
    started = time.perf_counter()
    randomized = [r for r in grid.rows if len(r.visits) > 1]
    for n, r in enumerate(randomized):
        if n % 2:
            continue
        with writing(engine, monitor, trial) as ctx:
            for table, rid in records[r.patient_code]:
                if table != "patients":
                    sdv.verify(ctx, r.patient_code, table, rid)
    print(f"SDV written in {time.perf_counter() - started:.0f} s")
    for n, r in enumerate(randomized):
        if n % 3 == 0:
            name = f"investigator-{r.centre.lower()}"
            with writing(engine, login(name), trial) as ctx:
                signatures.sign(ctx, r.patient_code, "patient", PREFIX + name)
    with writing(engine, login("datamanager"), trial) as ctx:
        some = [(r.patient_code, rec) for r in randomized[1::3] for rec in records[r.patient_code]]
        for _code, (table, rid) in some[:: max(1, len(some) // 200)][:200]:
            if table != "patients":
                lifecycle.lock(ctx, "form", f"{table}/{rid}", "reviewed (benchmark)")
        for r in randomized[2:40:4]:
            lifecycle.lock(ctx, "patient", r.patient_code, "casebook reviewed (benchmark)")
        lifecycle.lock(ctx, "centre", centres[-1], "centre closed out (benchmark)")
    print(f"lifecycle layers written into {target} in {time.perf_counter() - started:.0f} s")
    engine.dispose()


def _check(path: str) -> None:
    """The grid equals the cell-by-cell computation it replaced (tests/forms/grid_reference.py)
    on this database, cell by cell, for the data manager and each centre's investigator."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sqlalchemy import select
    from tests.forms import grid_reference

    from reluth.auth.models import Centre

    engine = make_engine(f"sqlite:///{path}")
    trial = Trial.default()

    def shape(grid: Any) -> Any:
        return (grid.counts, grid.by_centre, [(r.patient_code, r.visits) for r in grid.rows])

    with reading(engine, Actor("bench", Role.DATA_MANAGER), trial) as ctx:
        centres = dict(ctx.session.execute(select(Centre.id, Centre.code)).all())
        assert shape(forms.status_grid(ctx)) == shape(grid_reference.build_grid(ctx))
    for cid, code in sorted(centres.items()):
        who = Actor(f"investigator-{code.lower()}", Role.INVESTIGATOR, frozenset({cid}))
        with reading(engine, who, trial) as ctx:
            assert shape(forms.status_grid(ctx)) == shape(grid_reference.build_grid(ctx)), code
    print(f"check: the grid equals the reference computation ({len(centres) + 1} readers)")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", help="a demo SQLite database (reluth demo)")
    parser.add_argument("--profile", action="store_true", help="cProfile one grid")
    parser.add_argument("--no-page", action="store_true", help="the services only")
    parser.add_argument(
        "--check", action="store_true", help="compare with the old computation (tests/forms)"
    )
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each measurement")
    parser.add_argument(
        "--lifecycle",
        metavar="COPY",
        help="fill the lifecycle layers on COPY (made once; reused when it exists), measure it",
    )
    args = parser.parse_args()
    db = args.db
    if args.lifecycle:
        if not Path(args.lifecycle).exists():
            _fill_lifecycle(args.db, args.lifecycle)
        db = args.lifecycle
    print(f"database {db}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if args.check:
        _check(db)
    _service(db, args.profile, args.runs)
    if not args.no_page:
        _page(db, args.runs)
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
