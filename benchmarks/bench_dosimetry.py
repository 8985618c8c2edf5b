"""Voxel dosimetry benchmark: voxel-wise mono-exponential fit of a SPECT series (4 time points)
plus local deposition and Lu-177 kernel convolution (FFT), on the analytic phantom.

    .venv/bin/python benchmarks/bench_dosimetry.py --sizes 128 256 --repeat 2

Prints one line per grid size with the wall-clock time of each stage (best of --repeat) and
checks the result against the closed form (liver voxels, local deposition)."""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from reluth.dosimetry import voxel
from reluth.dosimetry.kinetics import voxel_tia_mono
from reluth.dosimetry.phantom import PhantomSpec, render


def bench(n: int, repeat: int) -> dict[str, float]:
    data = render(PhantomSpec(shape=(n, n, n), voxel_mm=4.42))
    images = data.images_bq_per_ml
    kern = voxel.kernel_for((4.42, 4.42, 4.42))
    v_ml = 4.42**3 / 1000
    best: dict[str, float] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        tia = voxel_tia_mono(data.spec.times_h, images)
        t1 = time.perf_counter()
        local = voxel.local_deposition_dose_gy(tia)
        t2 = time.perf_counter()
        kdose = voxel.kernel_dose_gy(tia, v_ml, kern)
        t3 = time.perf_counter()
        for key, value in (("fit_s", t1 - t0), ("local_s", t2 - t1), ("kernel_s", t3 - t2),
                           ("total_s", t3 - t0)):  # fmt: skip
            best[key] = min(best.get(key, float("inf")), value)
    liver = data.masks["liver"]
    truth = data.truth["vois"]["liver"]["local_deposition_dose_gy"]
    best["liver_local_max_rel_err"] = float(np.max(np.abs(local[liver] / truth - 1)))
    best["liver_kernel_centre_rel_err"] = float(np.median(kdose[liver]) / truth - 1)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}"
    )
    for n in args.sizes:
        r = bench(n, args.repeat)
        print(
            f"{n}^3 x 4 time points: fit {r['fit_s']:.2f} s, local {r['local_s']:.2f} s, "
            f"kernel {r['kernel_s']:.2f} s, total {r['total_s']:.2f} s "
            f"(liver local max rel. err {r['liver_local_max_rel_err']:.1e}, "
            f"kernel median rel. err {r['liver_kernel_centre_rel_err']:.1e})"
        )


if __name__ == "__main__":
    main()
