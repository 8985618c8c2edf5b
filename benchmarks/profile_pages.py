"""What each page of the web benchmark costs inside the server (companion of bench_web.py):
SQL statements, server CPU and wall per request, one request at a time in this process
(Starlette's test client, no network), on the trial bench_web.py loaded.

    .venv/bin/python benchmarks/profile_pages.py /tmp/reluth-web/bench.db [--n 20] [--cprofile PATH]

``--service NAME`` instead profiles, in this thread (cProfile, CPU time), the service a page
calls: ``dashboard`` or ``status`` as the data manager, ``timeline`` or ``patients`` as an
investigator — the page's server CPU minus the service's is the framework and the template.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_web import KEYS, PREFIX, writable_patients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db", type=Path)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--service", choices=("dashboard", "status", "timeline", "patients"))
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--user", help="with --service: this account instead")
    parser.add_argument("--patient", help="the investigator's patient (default: the first)")
    parser.add_argument(
        "--cprofile",
        help="a request of the table (e.g. 'GET /status'): its whole server side profiled, the "
        "app's thread pool run inline in the event loop's thread",
    )
    args = parser.parse_args()
    os.environ.update(KEYS)
    tmp = Path(tempfile.mkdtemp(prefix="reluth-profile-pages-"))
    os.environ.setdefault("RELUTH_DATA_DIR", str(tmp))
    copy = tmp / "pages.db"
    shutil.copyfile(args.db, copy)
    from sqlalchemy import event
    from starlette.testclient import TestClient

    from reluth.web.app import create_app

    app = create_app(f"sqlite:///{copy}", daily_checkpoints=False, mail_drain=False)
    engine = app.state.engine
    profiler = cProfile.Profile(time.process_time) if args.cprofile else None
    if profiler is not None:
        import anyio.to_thread

        async def inline(func: Any, *fargs: Any, **_kw: Any) -> Any:
            return func(*fargs)

        anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    if args.service:
        profile_service(engine, copy, args.service, args.n, args.top, args.user)
        return
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    centre, patients = sorted(writable_patients(copy).items())[0]
    code, day = patients[0]
    if args.patient:
        centre = args.patient.split("-")[0]
        code, day = next(p for p in writable_patients(copy)[centre] if p[0] == args.patient)
    plans = {
        f"investigator-{centre.lower()}": [
            "/dashboard",
            "/patients",
            f"/patients/{code}",
            ("LAB", code, day),
        ],
        "datamanager": ["/dashboard", "/status", "/patients"],
    }
    print(f"load average {os.getloadavg()[0]:.1f}; {args.n} requests each, after 3 warm-up")
    print("| user | request | statements | server CPU ms | wall ms |")
    print("|---|---|---|---|---|")
    for username, plan in plans.items():
        with TestClient(app) as client:
            form = client.get("/login").text
            token = form.split('name="csrf_token" value="')[1].split('"')[0]
            r = client.post(
                "/login",
                data={"username": username, "password": PREFIX + username, "csrf_token": token},
                follow_redirects=False,
            )
            assert r.status_code == 303, r.text[:200]
            page = client.get("/dashboard").text
            client.headers["X-CSRF-Token"] = page.split('"X-CSRF-Token": "')[1].split('"')[0]
            for step in plan:

                def call(step: Any = step) -> Any:
                    if isinstance(step, tuple):
                        _lab, c, d = step
                        body = {"test": "platelets", "value": "180000", "unit": "/mm3"}
                        body |= {"lln": "150000", "date": d}
                        return client.post(f"/api/v1/patients/{c}/labs", json=body)
                    return client.get(step)

                label = "POST lab" if isinstance(step, tuple) else f"GET {step}"
                for _ in range(3):
                    assert call().status_code in (200, 201), label
                profiling = profiler is not None and label == args.cprofile
                if profiling:
                    client.portal.call(profiler.enable)  # type: ignore[union-attr]
                seen.clear()
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(args.n):
                    call()
                c1, w1 = time.process_time(), time.perf_counter()
                if profiling:
                    client.portal.call(profiler.disable)  # type: ignore[union-attr]
                print(
                    f"| {username} | {label} | {len(seen) / args.n:.1f} "
                    f"| {(c1 - c0) * 1000 / args.n:.1f} | {(w1 - w0) * 1000 / args.n:.1f} |",
                    flush=True,
                )
                if profiling:
                    _show(profiler, args.n, args.top)  # type: ignore[arg-type]
    shutil.rmtree(tmp, ignore_errors=True)


def profile_service(engine: Any, db: Path, name: str, n: int, top: int, user: str | None) -> None:
    from reluth.auth import service as auth
    from reluth.auth.actor import AuthMethod
    from reluth.auth.models import User
    from reluth.core.context import reading
    from reluth.core.trial import Trial
    from reluth.db.session import read_session
    from reluth.forms import service as forms
    from reluth.records import dashboard, views

    centre, patients = sorted(writable_patients(db).items())[0]
    code = patients[0][0]
    username = user or (
        "datamanager" if name in ("dashboard", "status") else f"investigator-{centre.lower()}"
    )
    with read_session(engine) as s:
        user = s.query(User).filter_by(username=username).one()
        actor = auth.actor_for(user, AuthMethod.PASSWORD)
    trial = Trial.default()
    calls = {
        "dashboard": dashboard.build,
        "status": forms.status_grid,
        "timeline": lambda ctx: views.timeline(ctx, code),
        "patients": views.patient_list,
    }
    call = calls[name]
    for _ in range(2):
        with reading(engine, actor, trial) as ctx:
            call(ctx)
    profiler = cProfile.Profile(time.process_time)
    c0 = time.process_time()
    profiler.enable()
    for _ in range(n):
        with reading(engine, actor, trial) as ctx:
            call(ctx)
    profiler.disable()
    print(
        f"{name} as {username}: {(time.process_time() - c0) * 1000 / n:.1f} ms CPU each (profiled)"
    )
    _show(profiler, n, top)


def _show(profiler: cProfile.Profile, n: int, top: int) -> None:
    stats = pstats.Stats(profiler)
    for order, index in (("own", 2), ("cumulative", 3)):
        print(f"\n--- by {order} time (ms per request, under the profiler) ---")
        entries = sorted(
            stats.stats.items(),  # type: ignore[attr-defined]
            key=lambda kv: kv[1][index],
            reverse=True,
        )
        for (file, line, name), (_cc, calls, tt, ct, _callers) in entries[:top]:
            where = f"{Path(file).name}:{line}({name})"
            print(f"{tt * 1000 / n:8.2f} own {ct * 1000 / n:8.2f} cum {calls / n:8.1f}  {where}")
    print()


if __name__ == "__main__":
    main()
