"""Time the status grid (patients x visits) on a demo database, as the data manager sees it:
the service alone and the page rendered through the web app.

    .venv/bin/python benchmarks/bench_status_grid.py demo-output/reluth-demo.db
"""

from __future__ import annotations

import sys
import time
from collections import Counter

from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.core.context import reading
from reluth.core.trial import Trial
from reluth.db.engine import make_engine
from reluth.forms import service as forms


def main(path: str) -> None:
    engine = make_engine(f"sqlite:///{path}")
    trial = Trial.default()
    actor = Actor("bench", Role.DATA_MANAGER)
    timings = []
    for _ in range(5):
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


if __name__ == "__main__":
    main(sys.argv[1])
