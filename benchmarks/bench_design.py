"""Benchmark of the design simulation (`reluth design simulate`).

Measures, on this machine:
1. the vectorized primary-endpoint simulation (100 000 trials, 73 per arm, the analysis-plan test:
   chi-square without correction / Fisher when an expected count < 5), including building the
   p-value table for every possible 2×2 table;
2. the same analysis done the plain way — one trial at a time calling ``scipy.stats`` — on a subset
   of trials, extrapolated linearly to 100 000 (the per-trial cost does not depend on the count);
3. the vectorized stratified log-rank (PFS) against a per-trial loop calling statsmodels'
   ``survdiff`` with strata, on a subset, extrapolated the same way;
4. the command itself, end to end (process start, imports, both simulations of the primary test).

Run: ``.venv/bin/python benchmarks/bench_design.py [--loop-trials 2000] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats
from statsmodels.duration.survfunc import survdiff

from reluth.simulation.design import (
    PrimaryDesign,
    SurvivalDesign,
    simulate_primary,
    simulate_primary_tables,
    simulate_survival,
    simulate_survival_trials,
)

N_SIM = 100_000


def _best_of(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


def scipy_loop_primary(design: PrimaryDesign, n_trials: int, seed: int) -> tuple[float, int]:
    """One trial at a time: the analysis-plan test with scipy.stats, as a plain script would."""
    rng = np.random.default_rng(seed)
    x_e, x_c, _ = simulate_primary_tables(design, n_trials, rng)
    t0 = time.perf_counter()
    rejections = 0
    for a, b in zip(x_e.tolist(), x_c.tolist(), strict=True):
        table = np.array([[a, design.n_experimental - a], [b, design.n_control - b]])
        if (table.sum(axis=0) == 0).any():
            p = 1.0
        elif (stats.contingency.expected_freq(table) < 5).any():
            p = stats.fisher_exact(table).pvalue
        else:
            p = stats.chi2_contingency(table, correction=False).pvalue
        rejections += p < design.alpha
    return time.perf_counter() - t0, rejections


def statsmodels_loop_pfs(design: SurvivalDesign, n_trials: int, seed: int) -> float:
    trials = simulate_survival_trials(design, n_trials, np.random.default_rng(seed))
    t0 = time.perf_counter()
    for i in range(n_trials):
        survdiff(
            trials.time_months[i],
            trials.event[i].astype(int),
            trials.arm,
            strata=trials.stratum[i],
        )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop-trials", type=int, default=2000)
    parser.add_argument("--pfs-loop-trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    design = PrimaryDesign()
    vec_best, vec_all = _best_of(
        lambda: simulate_primary(design, N_SIM, np.random.default_rng(1)), args.repeats
    )
    loop_s, _ = scipy_loop_primary(design, args.loop_trials, 2)
    loop_extrapolated = loop_s / args.loop_trials * N_SIM

    sdesign = SurvivalDesign()
    n_pfs = 20_000
    pfs_best, _ = _best_of(
        lambda: simulate_survival(sdesign, n_pfs, np.random.default_rng(3)), args.repeats
    )
    pfs_loop = statsmodels_loop_pfs(sdesign, args.pfs_loop_trials, 4)
    pfs_loop_extrapolated = pfs_loop / args.pfs_loop_trials * n_pfs

    reluth = Path(sys.executable).with_name("reluth")
    cli_cmd = [str(reluth), "design", "simulate", "--n-sim", str(N_SIM), "--seed", "1", "--no-pfs"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([*cli_cmd, "--json"], check=True, capture_output=True)
    cli_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli_cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu0 = time.process_time()
    simulate_primary(design, N_SIM, np.random.default_rng(1))
    vec_cpu_s = time.process_time() - cpu0

    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_1m": os.getloadavg()[0],
        },
        "primary_vectorized_100k_s": {"best": vec_best, "median": statistics.median(vec_all)},
        "primary_scipy_loop": {
            "trials_run": args.loop_trials,
            "seconds": loop_s,
            "extrapolated_100k_s": loop_extrapolated,
        },
        "primary_speedup_x": loop_extrapolated / vec_best,
        "pfs_vectorized_20k_s": pfs_best,
        "pfs_statsmodels_loop": {
            "trials_run": args.pfs_loop_trials,
            "seconds": pfs_loop,
            "extrapolated_20k_s": pfs_loop_extrapolated,
        },
        "pfs_speedup_x": pfs_loop_extrapolated / pfs_best,
        "primary_vectorized_100k_cpu_s": vec_cpu_s,
        "cli_end_to_end_s": cli_s,
        "cli_end_to_end_cpu_s": cli_cpu_s,
        "cli_command": " ".join(["reluth", *cli_cmd[1:]]),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"machine: {out['machine']}")
    print(
        f"primary, vectorized, {N_SIM} trials: best {vec_best:.3f} s "
        f"(median {statistics.median(vec_all):.3f} s of {args.repeats})"
    )
    print(
        f"primary, scipy per-trial loop: {loop_s:.2f} s for {args.loop_trials} trials "
        f"-> {loop_extrapolated:.1f} s extrapolated to {N_SIM} -> speed-up "
        f"{out['primary_speedup_x']:.0f}x"
    )
    print(
        f"PFS stratified log-rank, vectorized, {n_pfs} trials: {pfs_best:.2f} s; statsmodels loop "
        f"{pfs_loop:.2f} s for {args.pfs_loop_trials} -> {pfs_loop_extrapolated:.1f} s "
        f"extrapolated -> speed-up {out['pfs_speedup_x']:.0f}x"
    )
    print(f"primary, vectorized, CPU time (user+sys) of one run: {vec_cpu_s:.3f} s")
    print(
        f"CLI end to end ({out['cli_command']}): wall {cli_s:.2f} s, CPU {cli_cpu_s:.2f} s "
        "(process start, imports, power and type I error simulations)"
    )


if __name__ == "__main__":
    main()
