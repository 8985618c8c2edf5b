"""What each page of the web benchmark costs inside the server (companion of bench_web.py):
SQL statements, server CPU and wall per request, one request at a time in this process
(Starlette's test client, no network), on the trial bench_web.py loaded.

    .venv/bin/python benchmarks/profile_pages.py /tmp/reluth-web/bench.db [--n 20] [--cprofile PATH]

``--cprofile PATH`` prints the Python profile (cProfile, CPU time) of that page, e.g.
``/status`` or ``/dashboard``, by own and cumulative time per request.
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
    parser.add_argument("--cprofile", default=None)
    parser.add_argument("--top", type=int, default=35)
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
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    centre, patients = sorted(writable_patients(copy).items())[0]
    code, day = patients[0]
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
                profiler = None
                if args.cprofile and label == f"GET {args.cprofile}":
                    profiler = cProfile.Profile(time.process_time)
                    profiler.enable()
                seen.clear()
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(args.n):
                    call()
                c1, w1 = time.process_time(), time.perf_counter()
                if profiler is not None:
                    profiler.disable()
                print(
                    f"| {username} | {label} | {len(seen) / args.n:.1f} "
                    f"| {(c1 - c0) * 1000 / args.n:.1f} | {(w1 - w0) * 1000 / args.n:.1f} |",
                    flush=True,
                )
                if profiler is not None:
                    _show(profiler, args.n, args.top)
    shutil.rmtree(tmp, ignore_errors=True)


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
