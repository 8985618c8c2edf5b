"""Benchmark (not a test): the whole analysis of a 146-patient trial with the HTML report, and
`reluth stats km/logrank/cox` on 100 000 rows, each as a fresh `reluth` process.

    .venv/bin/python benchmarks/bench_analysis.py
"""

from __future__ import annotations

import os
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

RELUTH = str(Path(sys.executable).with_name("reluth"))


def bench_trial(tmp: Path) -> None:
    data = write_synthetic_csv(tmp / "trial", n_included=176, seed=20211001)
    t0 = time.perf_counter()
    ds = from_csv_dir(data)
    t1 = time.perf_counter()
    build_report(ds, tmp / "report")
    t2 = time.perf_counter()
    n_rand = int((ds.adsl["ITTFL"] == "Y").sum())
    print(f"trial: {len(ds.adsl)} included, {n_rand} randomized")
    print(
        f"  datasets from CSV: {t1 - t0:.2f} s; report (tables, 9 figures PNG+SVG, exports): "
        f"{t2 - t1:.2f} s; total {t2 - t0:.2f} s"
    )
    t3 = time.perf_counter()
    subprocess.run(
        [RELUTH, "analyze", "--data", str(data), "--out", str(tmp / "cli-report")],
        check=True,
        capture_output=True,
    )
    print(f"  `reluth analyze --data` as a process: {time.perf_counter() - t3:.2f} s")


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
    t0 = time.perf_counter()
    subprocess.run([RELUTH, "stats", "--help"], check=True, capture_output=True)
    print(f"`reluth stats --help` (process start-up only): {time.perf_counter() - t0:.2f} s")
    for name, args in runs.items():
        t0 = time.perf_counter()
        subprocess.run([RELUTH, "stats", *args], check=True, capture_output=True)
        print(f"`reluth stats {name}` on {n} rows: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as d:
        bench_trial(Path(d))
        bench_stats(Path(d))
