"""Benchmark (not a test): the whole analysis of a 146-patient trial with the HTML report, and
`reluth stats km/logrank/cox` on 100 000 rows, each as a fresh `reluth` process.

    .venv/bin/python benchmarks/bench_analysis.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reluth.analysis.datasets import from_csv_dir
from reluth.analysis.report import build_report
from reluth.analysis.synthetic import write_synthetic_csv
from reluth.protocol.definition import load_protocol

RELUTH = str(Path(sys.executable).with_name("reluth"))
PROTOCOL = load_protocol()


def run(args: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one `reluth` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([RELUTH, *args], check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def bench_trial(tmp: Path) -> None:
    data = write_synthetic_csv(tmp / "trial", n_included=176, seed=20211001, protocol=PROTOCOL)
    t0 = time.perf_counter()
    ds = from_csv_dir(data, protocol=PROTOCOL)
    t1 = time.perf_counter()
    build_report(ds, tmp / "report")
    t2 = time.perf_counter()
    n_rand = int((ds.adsl["ITTFL"] == "Y").sum())
    print(f"trial: {len(ds.adsl)} included, {n_rand} randomized")
    print(
        f"  datasets from CSV: {t1 - t0:.2f} s; report (tables, 9 figures PNG+SVG, exports): "
        f"{t2 - t1:.2f} s; total {t2 - t0:.2f} s"
    )
    wall, cpu = run(["analyze", "--data", str(data), "--out", str(tmp / "cli-report")])
    print(f"  `reluth analyze --data` as a process: {wall:.2f} s wall, {cpu:.2f} s CPU")


def bench_stats(tmp: Path, n: int = 100_000) -> None:
    rng = np.random.default_rng(1)
    g = rng.integers(0, 2, n)
    t = np.round(rng.exponential(12 * np.exp(0.3 * g)), 1) + 0.1
    c = rng.uniform(1, 40, n).round(1)
    df = pd.DataFrame(
        {
            "time": np.minimum(t, c),
            "event": (t <= c).astype(int),
            "arm": g,
            "s1": rng.integers(0, 2, n),
            "s2": rng.integers(0, 2, n),
        }
    )
    path = tmp / "big.csv"
    df.to_csv(path, index=False)
    base = ["--time", "time", "--event", "event"]
    runs = {
        "km": ["km", str(path), *base, "--group", "arm", "--at", "6,12,24"],
        "logrank (2 strata factors)": [
            "logrank",
            str(path),
            *base,
            "--group",
            "arm",
            "--strata",
            "s1,s2",
        ],
        "cox breslow (stratified)": [
            "cox",
            str(path),
            *base,
            "--group",
            "arm",
            "--strata",
            "s1,s2",
        ],
        "cox efron (stratified)": [
            "cox",
            str(path),
            *base,
            "--group",
            "arm",
            "--strata",
            "s1,s2",
            "--ties",
            "efron",
        ],
    }
    wall, cpu = run(["stats", "--help"])
    print(f"`reluth stats --help` (process start-up only): {wall:.2f} s wall, {cpu:.2f} s CPU")
    for name, args in runs.items():
        wall, cpu = run(["stats", *args])
        print(f"`reluth stats {name}` on {n} rows: {wall:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as d:
        bench_trial(Path(d))
        bench_stats(Path(d))
