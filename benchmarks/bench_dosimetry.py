"""Voxel dosimetry benchmark: voxel-wise mono-exponential fit of a SPECT series (4 time points)
plus local deposition and Lu-177 kernel convolution (FFT), on the analytic phantom; and one
patient-cycle from the DICOM store (issue 19: 4 SPECT 128³ + 4 CT, registration, voxel dose).

    .venv/bin/python benchmarks/bench_dosimetry.py --sizes 128 256 --repeat 2
    .venv/bin/python benchmarks/bench_dosimetry.py --from-store --matrix 128 --ct-matrix 256

Prints one line per grid size with the wall-clock time of each stage (best of --repeat) and
checks the result against the closed form (liver voxels, local deposition)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

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


PTX_SCRIPT = r"""
import json, sys, time, importlib.util
from pathlib import Path
import numpy as np, SimpleITK as sitk
from scipy import signal
root = Path(importlib.util.find_spec("doodle").submodule_search_locations[0])
tia = sitk.ReadImage(sys.argv[1])
arr = sitk.GetArrayFromImage(tia).astype(np.float64)
v_ml = float(np.prod(tia.GetSpacing())) / 1000.0
t0 = time.perf_counter()
kernel = np.fromfile(root / "kernels" / "DK_softtissueICRP_mGyperMBqs.img", dtype=np.float32)
kernel = kernel.reshape((51, 51, 51)).astype(np.float64)
tia_mbq_s = arr * v_ml / 1e6 * 3600.0
dose_mgy = signal.fftconvolve(tia_mbq_s, kernel, mode="same", axes=None)  # doodle.dosimetry.dvk
seconds = time.perf_counter() - t0
out = sitk.GetImageFromArray((dose_mgy / 1000.0).astype(np.float32))
out.CopyInformation(tia)
sitk.WriteImage(out, sys.argv[2])
print(json.dumps({"seconds": seconds, "kernel_centre": float(kernel[25, 25, 25])}))
"""


def pytheranostics_side_by_side(venv: Path, out: Path, spec: Any) -> dict[str, Any]:
    """PyTheranostics 0.1 (PyPI), in its own virtual environment: its dosimetry classes do not
    import (the release lacks doodle.MiscTools and doodle.ImagingDS), so what its API allows
    is its shipped Lu-177 soft-tissue kernel (51³ voxels of 4.7952 mm) with its own
    convolution (``DoseVoxelKernel.tia_to_dose``: scipy ``fftconvolve(mode="same")``) applied
    to reluth's TIA map; the voxel doses are compared per VOI."""
    import json
    import subprocess

    import nibabel as nib

    from reluth.dosimetry import synthetic_study as ss

    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "pytheranostics==0.1"], check=True
        )
    res = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PTX_SCRIPT, str(out / "tia_bq_h_per_ml.nii.gz"),
         str(out / "pytheranostics_dose_gy.nii.gz")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    info = json.loads(res.stdout.strip().splitlines()[-1])
    ptx = np.asarray(nib.load(str(out / "pytheranostics_dose_gy.nii.gz")).dataobj).transpose(
        2, 1, 0
    )
    ours = np.asarray(nib.load(str(out / "dose_kernel_gy.nii.gz")).dataobj).transpose(2, 1, 0)
    grid = ss.spect_grid(spec, spec.time_points[spec.reference_index])
    masks = ss.object_masks(grid)
    info["voi_mean_gy"] = {
        n: (float(ours[m].mean()), float(ptx[m].mean())) for n, m in masks.items() if n != "body"
    }
    return info


def bench_from_store(
    matrix: int, ct_matrix: int, work: Path, voxel_mm: float = 4.42
) -> dict[str, Any]:
    """Synthetic study → de-identification → store (not timed as dosimetry), then
    ``runner.run_from_store`` timed by stage, TIA compared with the closed-form truth."""
    import datetime as dt
    from dataclasses import replace

    from reluth.auth.models import User
    from reluth.db.engine import make_engine
    from reluth.db.migrate import upgrade
    from reluth.db.session import Actor, read_session, unit_of_work
    from reluth.dosimetry import synthetic_study as ss
    from reluth.dosimetry.dicom_images import parse_calibrations
    from reluth.dosimetry.runner import run_from_store
    from reluth.dosimetry.vois import default_organ_table
    from reluth.imaging.batch import deidentify_tree
    from reluth.imaging.deid import DeidSettings
    from reluth.imaging.profile import RELUTH_OPTIONS
    from reluth.imaging.store import ingest
    from reluth.imaging.synthetic import SyntheticPatient

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.store.storekit import ready_patients

    # the patient moves by whole voxels at 96 h (a sub-voxel shift of this sharp-edged phantom
    # loses edge activity to linear resampling: docs/dosimetry.md)
    points = tuple(
        replace(tp, shift_mm=(2 * voxel_mm, -voxel_mm, voxel_mm)) if any(tp.shift_mm) else tp
        for tp in ss.DEFAULT_TIME_POINTS
    )
    spec = ss.StudySpec(matrix=matrix, voxel_mm=voxel_mm, ct_matrix=ct_matrix, time_points=points,
                        ct_pixel_mm=voxel_mm * matrix / ct_matrix,
                        patient=SyntheticPatient(injection=dt.datetime(2024, 12, 30, 9, 15)))  # fmt: skip
    t0 = time.perf_counter()
    written = ss.write_study(work / "export", spec)
    url = f"sqlite:///{work / 'trial.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine, Actor("admin", "admin")) as uow:
        uow.session.add(User(username="phys1", role="medical_physicist", password_hash="x"))
    code = ready_patients(engine, 1)[0]
    key = DeidSettings(key=b"b" * 32, patient_id=code, options=RELUTH_OPTIONS, cycle=2)
    deidentify_tree(work / "export", work / "deid", key, workers=2)
    ingest(work / "deid", url, work / "store", actor=Actor("phys1", "medical_physicist"))
    prep = time.perf_counter() - t0
    stages: dict[str, float] = {}
    last = [time.perf_counter()]

    def step(text: str) -> None:
        now = time.perf_counter()
        stages[text] = now - last[0]
        last[0] = now

    t1 = time.perf_counter()
    c1 = time.process_time()
    with read_session(engine) as session:
        doc = run_from_store(
            session, work / "store", code, 2, work / "out",
            calibrations=parse_calibrations(ss.calibration_doc(spec)),
            organ_table=default_organ_table(), on_progress=step,
        )  # fmt: skip
    total = time.perf_counter() - t1
    cpu = time.process_time() - c1
    step("end")
    engine.dispose()
    errors = {
        n: doc["vois"][n]["tia"]["tia_mbq_h"] / t["tia_mbq_h"] - 1
        for n, t in written.truth["vois"].items()
        if n != "body" and n in doc["vois"]
    }
    reg = [tp["registration"] for tp in doc["inputs"]["time_points"] if tp["registration"]]
    return {
        "prepare_s": prep,
        "total_s": total,
        "cpu_s": cpu,
        "stages": stages,
        "tia_rel_err": errors,
        "translations": [r["translation_mm"] for r in reg],
        "doc": doc,
        "spec": spec,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--from-store", action="store_true", help="one patient-cycle from the store")
    ap.add_argument("--matrix", type=int, default=128)
    ap.add_argument("--ct-matrix", type=int, default=256)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--voxel-mm", type=float, default=4.42)
    ap.add_argument("--pytheranostics", type=Path, default=None,
                    help="virtual environment for PyTheranostics (created if missing)")  # fmt: skip
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}"
    )
    if args.from_store:
        import tempfile

        work = args.work or Path(tempfile.mkdtemp(prefix="bench-dosi-"))
        r = bench_from_store(args.matrix, args.ct_matrix, work, args.voxel_mm)
        print(f"from the store, SPECT {args.matrix}^3 x 4 + CT {args.ct_matrix}^2 x "
              f"{args.matrix} x 4: total {r['total_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU (study written, de-identified "
              f"and ingested beforehand in {r['prepare_s']:.1f} s)")  # fmt: skip
        previous = "start"
        for name, seconds in r["stages"].items():
            print(f"  {previous} → {name}: {seconds:.2f} s")
            previous = name
        print("  TIA vs truth: " + ", ".join(f"{k} {v:+.2%}" for k, v in r["tia_rel_err"].items()))
        print(f"  registration translations (mm): {r['translations']}")
        print(f"  outputs in {work / 'out'}")
        if args.pytheranostics is not None:
            p = pytheranostics_side_by_side(args.pytheranostics, work / "out", r["spec"])
            print(f"PyTheranostics 0.1 kernel (centre {p['kernel_centre']:.4g} mGy/(MBq·s)) "
                  f"convolution: {p['seconds']:.2f} s; reluth kernel dose "
                  f"{r['stages'].get('writing outputs', float('nan')):.2f} s for the whole compute")  # fmt: skip
            for n, (a, b) in p["voi_mean_gy"].items():
                print(
                    f"  {n}: reluth {a:.4g} Gy, PyTheranostics kernel {b:.4g} Gy ({a / b - 1:+.1%})"
                )
        return
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
