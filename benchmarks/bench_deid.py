"""Benchmark: reluth's de-identifier against dicognito on the same inputs, in one run.

dicognito is installed only in this benchmark's own virtual environment (default
/tmp/reluth-bench-dicognito, created on first use with `pip install dicognito`), never in the
project. Both tools read every input file from disk, de-identify it and write it to disk;
timing covers exactly that loop (median of --passes). Inputs:

  pydicom   pydicom's bundled test files that pydicom reads as DICOM
  synthetic 10 quantitative Lu-177 SPECT volumes (NM multi-frame 128^3) + 200 CT slices 512^2

--small uses a few pydicom files, 2 SPECT 32^3 and 20 CT 64^2, one pass (for CI).
After timing, correctness: reluth's outputs must pass `verify-deid`, and for each tool the
injection-to-acquisition interval of every SPECT is compared with the input.

    .venv/bin/python benchmarks/bench_deid.py            # full
    .venv/bin/python benchmarks/bench_deid.py --small    # CI
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_files

from reluth.imaging.batch import deidentify_tree, read_dataset
from reluth.imaging.deid import DeidError, DeidSettings
from reluth.imaging.profile import RELUTH_OPTIONS
from reluth.imaging.qc import combine_date_time, extract_header
from reluth.imaging.synthetic import (
    SyntheticOptions,
    SyntheticPatient,
    make_ct,
    make_spect,
)
from reluth.imaging.verify import verify_tree

KEY = b"benchmark-key-not-a-secret-0123456789abcdef"

DICOGNITO_RUNNER = r"""
import json, sys, time, warnings
from pathlib import Path
import pydicom
from dicognito.anonymizer import Anonymizer
warnings.simplefilter("ignore")
files = [Path(p) for p in json.loads(Path(sys.argv[1]).read_text())]
out = Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
failures = 0
c0 = time.process_time()
t0 = time.perf_counter()
anonymizer = Anonymizer(seed="reluth-benchmark")
for i, path in enumerate(files):
    try:
        ds = pydicom.dcmread(path)
        anonymizer.anonymize(ds)
        ds.save_as(out / f"{i:06d}.dcm")
    except Exception:
        failures += 1
seconds = time.perf_counter() - t0
cpu = time.process_time() - c0
print(json.dumps({"seconds": seconds, "cpu": cpu, "failures": failures}))
"""


def ensure_dicognito(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", "import dicognito"], capture_output=True)
        if probe.returncode == 0:
            return python
    print(f"creating {venv} and installing dicognito there (not in the project)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "dicognito"], check=True)
    return python


def pydicom_inputs(root: Path, limit: int | None) -> list[Path]:
    root.mkdir(parents=True)
    out: list[Path] = []
    seen: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, name in enumerate(get_testdata_files()):
            src = Path(name)
            if not src.is_file():
                continue
            try:
                ds = read_dataset(src)
            except DeidError:
                continue  # not DICOM, truncated, DICOMDIR: refused by reluth, given to neither
            sop = str(ds.get("SOPInstanceUID", ""))
            if not sop or sop in seen:
                continue  # one encoding per instance: reluth never writes a UID twice
            seen.add(sop)
            dst = root / f"{i:03d}_{src.name}"
            shutil.copy(src, dst)
            out.append(dst)
            if limit and len(out) >= limit:
                break
    return out


def synthetic_inputs(
    root: Path, n_spect: int, matrix: int, ct_slices: int, ct_size: int
) -> list[Path]:
    out: list[Path] = []
    for i in range(n_spect):
        p = SyntheticPatient(hospital_id=f"IPP{48213 + i:07d}")
        opts = SyntheticOptions(matrix=matrix, ct_slices=0, seed=i)
        ds = make_spect(
            p,
            (4, 24, 96, 168)[i % 4],
            f"1.2.826.0.1.3680043.8.498.9{i}",
            f"1.2.826.0.1.3680043.8.498.8{i}",
            opts,
        )
        folder = root / f"patient{i:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / "NM00001.dcm")
        out.append(folder / "NM00001.dcm")
    p = SyntheticPatient()
    opts = SyntheticOptions(ct_slices=ct_slices, ct_size=ct_size)
    folder = root / "ct"
    folder.mkdir(parents=True, exist_ok=True)
    for ds in make_ct(p, 24, "1.2.826.0.1.3680043.8.498.71", "1.2.826.0.1.3680043.8.498.72", opts):
        path = folder / f"CT{int(ds.InstanceNumber):05d}.dcm"
        ds.save_as(path)
        out.append(path)
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_reluth(src: Path, out: Path, workers: int) -> tuple[float, float, dict[str, int]]:
    """Wall seconds, CPU seconds (this process and its worker processes), outcome counts."""
    settings = DeidSettings(key=KEY, patient_id="C99-0001", options=RELUTH_OPTIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c0, k0 = time.process_time(), _children_cpu()
        t0 = time.perf_counter()
        report = deidentify_tree(src, out, settings, workers=workers)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0 + _children_cpu() - k0
    return (
        seconds,
        cpu,
        {
            "written": report.written,
            "skipped": report.skipped,
            "collisions": report.collisions,
        },
    )


def run_dicognito(
    python: Path, files: list[Path], out: Path, work: Path
) -> tuple[float, float, int]:
    listing = work / "files.json"
    listing.write_text(json.dumps([str(f) for f in files]))
    runner = work / "run_dicognito.py"
    runner.write_text(DICOGNITO_RUNNER)
    res = subprocess.run(
        [str(python), str(runner), str(listing), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(res.stdout.strip().splitlines()[-1])
    return float(data["seconds"]), float(data["cpu"]), int(data["failures"])


def spect_intervals(root: Path) -> dict[str, tuple[float, float]]:
    """Per SPECT (keyed by its rescale slope, which both tools keep): the injection-to-scan
    interval in seconds computed from the DT attributes (RadiopharmaceuticalStartDateTime to
    AcquisitionDateTime) and from the DA+TM attributes (start DateTime's date with
    RadiopharmaceuticalStartTime, to AcquisitionDate + AcquisitionTime)."""
    out: dict[str, tuple[float, float]] = {}
    for path in root.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.get("Modality") != "NM":
            continue
        rp = ds.RadiopharmaceuticalInformationSequence[0]
        h = extract_header(ds)
        by_dt = (
            (h.acquisition - h.injection).total_seconds()
            if h.injection and h.acquisition
            else float("nan")
        )
        inj = combine_date_time(
            str(rp.get("RadiopharmaceuticalStartDateTime", ""))[:8],
            rp.get("RadiopharmaceuticalStartTime"),
        )
        acq = combine_date_time(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"))
        by_tm = (acq - inj).total_seconds() if inj and acq else float("nan")
        out[str(ds.get("RescaleSlope"))] = (by_dt, by_tm)
    return out


def load() -> str:
    one, five, _ = os.getloadavg()
    pressure = ""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        pressure = ", cpu pressure " + line.split()[1]
    except (OSError, IndexError):
        pass
    return f"load {one:.1f}/{five:.1f}{pressure}"


def _kept(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> tuple[int, int]:
    by_dt = sum(1 for k, v in before.items() if k in after and after[k][0] == v[0])
    by_tm = sum(1 for k, v in before.items() if k in after and after[k][1] == v[1])
    return by_dt, by_tm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--small", action="store_true", help="small inputs, one pass (CI)")
    ap.add_argument("--passes", type=int, default=None, help="timed passes (median); default 5")
    ap.add_argument("--workers", type=int, default=2, help="reluth worker processes")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/reluth-bench-dicognito"))
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()
    passes = args.passes or (1 if args.small else 5)
    python = ensure_dicognito(args.venv)
    work = Path(tempfile.mkdtemp(prefix="reluth-bench-"))
    try:
        sets = {
            "pydicom": pydicom_inputs(work / "in-pydicom", 40 if args.small else None),
            "synthetic": synthetic_inputs(
                work / "in-synthetic",
                *((2, 32, 20, 64) if args.small else (10, 128, 200, 512)),
            ),
        }
        results: list[dict[str, object]] = []
        print(f"before: {load()}")
        print(
            f"{'input set':<10} {'tool':<10} {'files':>6} {'median s':>9} {'files/s':>9} "
            f"{'CPU ms/file':>10}"
        )
        for name, files in sets.items():
            src = files[0].parents[1] if name == "synthetic" else files[0].parent
            mb = sum(f.stat().st_size for f in files) / 1e6
            r_times, d_times, r_cpu, d_cpu = [], [], [], []
            r_counts: dict[str, int] = {}
            d_fail = 0
            for i in range(passes):
                r_out, d_out = work / f"out-r-{name}-{i}", work / f"out-d-{name}-{i}"
                # alternate which tool goes first, so drifting machine load hits both alike
                for tool in ("reluth", "dicognito") if i % 2 == 0 else ("dicognito", "reluth"):
                    if tool == "reluth":
                        secs, cpu, r_counts = run_reluth(src, r_out, args.workers)
                        r_times.append(secs)
                        r_cpu.append(cpu)
                    else:
                        secs, cpu, d_fail = run_dicognito(python, files, d_out, work)
                        d_times.append(secs)
                        d_cpu.append(cpu)
                if i < passes - 1:
                    shutil.rmtree(r_out)
                    shutil.rmtree(d_out)
            r_med, d_med = statistics.median(r_times), statistics.median(d_times)
            r_rate, d_rate = len(files) / r_med, len(files) / d_med
            r_ms = 1000 * statistics.median(r_cpu) / len(files)
            d_ms = 1000 * statistics.median(d_cpu) / len(files)
            for tool, med, rate, ms in (
                ("reluth", r_med, r_rate, r_ms),
                ("dicognito", d_med, d_rate, d_ms),
            ):
                print(f"{name:<10} {tool:<10} {len(files):>6} {med:>9.3f} {rate:>9.1f} {ms:>10.2f}")
            print(
                f"{name:<10} ratio reluth/dicognito = {r_rate / d_rate:.2f}x files/s, "
                f"{d_ms / r_ms:.2f}x less CPU per file  "
                f"({mb:.1f} MB; reluth {r_counts}; dicognito failures {d_fail})"
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                findings = len(verify_tree(r_out).findings)
            row: dict[str, object] = {
                "set": name,
                "files": len(files),
                "megabytes": round(mb, 1),
                "passes": passes,
                "reluth_s": round(r_med, 3),
                "reluth_files_per_s": round(r_rate, 1),
                "dicognito_s": round(d_med, 3),
                "dicognito_files_per_s": round(d_rate, 1),
                "ratio": round(r_rate / d_rate, 2),
                "reluth_cpu_ms_per_file": round(r_ms, 2),
                "dicognito_cpu_ms_per_file": round(d_ms, 2),
                "cpu_ratio": round(d_ms / r_ms, 2),
                "reluth_counts": r_counts,
                "dicognito_failures": d_fail,
                "reluth_verify_findings": findings,
            }
            if name == "synthetic":
                before = spect_intervals(src)
                r_dt, r_tm = _kept(before, spect_intervals(r_out))
                d_dt, d_tm = _kept(before, spect_intervals(d_out))
                row.update(
                    spect=len(before),
                    reluth_kept_dt=r_dt,
                    reluth_kept_tm=r_tm,
                    dicognito_kept_dt=d_dt,
                    dicognito_kept_tm=d_tm,
                )
                print(
                    f"{name:<10} SPECT injection-to-scan intervals unchanged (DT / DA+TM): "
                    f"reluth {r_dt}/{r_tm} of {len(before)}, dicognito {d_dt}/{d_tm} of "
                    f"{len(before)}"
                )
            print(f"{name:<10} reluth outputs: {findings} verify-deid findings")
            results.append(row)
        print(f"after: {load()}")
        print(
            f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
            f"pydicom {pydicom.__version__}; reluth workers {args.workers}"
        )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        bad = [r for r in results if r["reluth_verify_findings"]]
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
