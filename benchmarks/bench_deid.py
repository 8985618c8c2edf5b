"""Benchmark: `reluth images deidentify` against dicognito and GDCM's gdcmanon, whole
processes on the same inputs, in one run.

Each tool is timed as a whole process, start-up included, from launch to exit (median of
--passes; the order of the tools rotates from pass to pass so drifting machine load hits all
alike):

  reluth          `reluth images deidentify IN OUT --patient-id --key --workers N` (the CLI)
  reluth-images   the same command through `reluth.imaging.cli`'s own Typer app: what the
                  command costs without the top-level CLI's start-up (issue 20 item 1 makes
                  that start-up lazy; until then `reluth` pays it on every command)
  dicognito       `python -m dicognito --output-directory OUT --seed S IN`, in its own venv
                  (default /tmp/reluth-bench-dicognito, created with `pip install dicognito`)
  gdcmanon        `gdcmanon -e -c CERT -r -i IN -o OUT --continue` (PS3.15 E.1 basic profile;
                  from Debian's libgdcm-tools, installed here with apt-get when missing; the
                  certificate it encrypts the original attributes to is made for the run)

Inputs (synthetic Lu-177 patient exports, as `reluth images synthesize DIR --ct-slices N`):

  series-404   4 SPECT (NM multi-frame 128^3) + 400 CT slices 512^2, 218 MB
  series-4000  4 SPECT + 3996 CT slices 512^2, 2.1 GB
  pydicom      pydicom's bundled test files that reluth accepts, one per SOP Instance UID

--small (CI): a 44-file series (4 SPECT 32^3 + 40 CT 64^2) and 40 pydicom files, one pass.
After timing, correctness: reluth's outputs must give 0 `verify-deid` findings (exit 1
otherwise), and for each tool the injection-to-scan interval of every SPECT is compared with
the input.

    .venv/bin/python benchmarks/bench_deid.py            # full
    .venv/bin/python benchmarks/bench_deid.py --small    # CI
    .venv/bin/python benchmarks/bench_deid.py --sets series-404 --passes 3 --callgrind

--callgrind also counts each tool's user-space instructions once under valgrind's callgrind
(reluth with one worker): on a shared machine the wall time measures the queue for a core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_files

from reluth.imaging.batch import read_dataset
from reluth.imaging.deid import DeidError
from reluth.imaging.qc import combine_date_time, extract_header
from reluth.imaging.synthetic import SyntheticOptions, SyntheticPatient, write_patient
from reluth.imaging.verify import verify_tree

KEY = b"benchmark-key-not-a-secret-0123456789abcdef"
PATIENT = "C99-0001"
TOOLS = ("reluth", "reluth-images", "dicognito", "gdcmanon")
IMAGES_APP = (
    "import sys; from reluth.imaging.cli import app; app(sys.argv[1:], prog_name='reluth images')"
)


def compile_reluth() -> None:
    """reluth's modules byte-compiled into their __pycache__, as pip does when a site installs
    it (and did for dicognito in its venv): with PYTHONDONTWRITEBYTECODE set, a source tree's
    modules would otherwise be compiled again by every run (about 0.13 G instructions)."""
    import compileall

    import reluth

    compileall.compile_dir(Path(reluth.__file__).parent, quiet=1)


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


def _apt_install(package: str, command: str) -> str:
    """The path of a command, installing its Debian package with apt-get when missing."""
    found = shutil.which(command)
    if found:
        return found
    print(f"installing Debian's {package} for {command}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", package]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=True)
    found = shutil.which(command)
    if not found:
        raise SystemExit(f"{package} installed but {command} not on PATH")
    return found


def ensure_gdcmanon() -> str:
    """gdcmanon from Debian's libgdcm-tools."""
    return _apt_install("libgdcm-tools", "gdcmanon")


def make_certificate(work: Path) -> Path:
    """A throw-away self-signed certificate: gdcmanon -e encrypts the original attributes
    (PS3.15 E.1.1 Encrypted Attributes Sequence) to it."""
    key, cert = work / "gdcm.key", work / "gdcm.pem"
    req = [_apt_install("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
    req += ["-days", "2", "-subj", "/CN=reluth-benchmark", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(req, check=True, capture_output=True)
    return cert


def series_input(root: Path, ct_per_timepoint: int, matrix: int, ct_size: int) -> Path:
    """One patient's export: 4 time points, each a SPECT and ct_per_timepoint CT slices."""
    opts = SyntheticOptions(matrix=matrix, ct_slices=ct_per_timepoint, ct_size=ct_size)
    write_patient(root, SyntheticPatient(), opts)
    return root


def pydicom_input(root: Path, limit: int | None) -> Path:
    root.mkdir(parents=True)
    seen: set[str] = set()
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, name in enumerate(get_testdata_files()):
            src = Path(name)
            if not src.is_file():
                continue
            try:
                ds = read_dataset(src)
            except DeidError:
                continue  # not DICOM, truncated, DICOMDIR: refused by reluth, given to none
            sop = str(ds.get("SOPInstanceUID", ""))
            if not sop or sop in seen:
                continue  # one encoding per instance: reluth never writes a UID twice
            seen.add(sop)
            shutil.copy(src, root / f"{i:03d}_{src.name}")
            n += 1
            if limit and n >= limit:
                break
    return root


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Tool:
    name: str
    argv: list[str]  # {src} and {out} are replaced
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    written: int = 0
    returncode: int = 0

    def run(self, src: Path, out: Path) -> None:
        argv = [a.replace("{src}", str(src)).replace("{out}", str(out)) for a in self.argv]
        c0 = _children_cpu()
        t0 = time.perf_counter()
        res = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.walls.append(time.perf_counter() - t0)
        self.cpus.append(_children_cpu() - c0)
        self.returncode = res.returncode
        self.written = sum(len(f) for _, _, f in os.walk(out))
        if self.written == 0:
            raise SystemExit(f"{self.name} wrote nothing (exit {res.returncode}):\n{res.stderr}")


def tools(args: argparse.Namespace, key_file: Path, cert: Path, dicognito: Path) -> list[Tool]:
    reluth = Path(sys.executable).with_name("reluth")
    cli = [str(reluth)] if reluth.exists() else [sys.executable, "-m", "reluth.cli"]
    deid = ["deidentify", "{src}", "{out}", "--patient-id", PATIENT, "--key", str(key_file)]
    deid += ["--workers", str(args.workers)]
    dcg = [str(dicognito), "-m", "dicognito", "-q", "--seed", "bench"]
    dcg += ["--output-directory", "{out}", "{src}"]
    gdcm = [ensure_gdcmanon(), "-e", "-c", str(cert), "-r", "-i", "{src}", "-o", "{out}"]
    gdcm += ["--continue"]
    return [
        Tool("reluth", [*cli, "images", *deid]),
        Tool("reluth-images", [sys.executable, "-c", IMAGES_APP, *deid]),
        Tool("dicognito", dcg),
        Tool("gdcmanon", gdcm),
    ]


def instructions(tool: Tool, src: Path, out: Path) -> int:
    """User-space instructions of one run of ``tool`` under callgrind (Debian's valgrind,
    installed when missing), one reluth worker so that every instruction is in one process:
    a measure the other jobs on a shared machine do not change."""
    valgrind = _apt_install("valgrind", "valgrind")
    argv = [a.replace("{src}", str(src)).replace("{out}", str(out)) for a in tool.argv]
    if "--workers" in argv:
        argv[argv.index("--workers") + 1] = "1"
    shutil.rmtree(out, ignore_errors=True)
    run = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
    done = subprocess.run(run, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{tool.name} under callgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def startup(argv: list[str], passes: int) -> float:
    walls = []
    for _ in range(passes):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def spect_intervals(root: Path) -> dict[str, tuple[float, float]]:
    """Per SPECT (keyed by its rescale slope, which every tool keeps): the injection-to-scan
    interval in seconds from the DT attributes (RadiopharmaceuticalStartDateTime to
    AcquisitionDateTime) and from the DA+TM attributes (start DateTime's date with
    RadiopharmaceuticalStartTime, to AcquisitionDate + AcquisitionTime); NaN where absent."""
    out: dict[str, tuple[float, float]] = {}
    for path in (p for p in root.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if ds.get("Modality") != "NM":
            continue
        by_dt = by_tm = math.nan
        try:
            h = extract_header(ds)
            if h.injection and h.acquisition:
                by_dt = (h.acquisition - h.injection).total_seconds()
            rp = ds.RadiopharmaceuticalInformationSequence[0]
            inj = combine_date_time(
                str(rp.get("RadiopharmaceuticalStartDateTime", ""))[:8],
                rp.get("RadiopharmaceuticalStartTime"),
            )
            acq = combine_date_time(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"))
            if inj and acq:
                by_tm = (acq - inj).total_seconds()
        except Exception:
            pass  # a tool removed what the interval needs: NaN
        out[str(ds.get("RescaleSlope"))] = (by_dt, by_tm)
    return out


def _kept(before: dict[str, tuple[float, float]], root: Path) -> str:
    after = spect_intervals(root)
    by_dt = sum(1 for k, v in before.items() if k in after and after[k][0] == v[0])
    by_tm = sum(1 for k, v in before.items() if k in after and after[k][1] == v[1])
    return f"{by_dt}/{by_tm} of {len(before)}"


def load() -> str:
    one, five, _ = os.getloadavg()
    pressure = ""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        pressure = ", cpu pressure " + line.split()[1]
    except (OSError, IndexError):
        pass
    return f"load {one:.1f}/{five:.1f}{pressure}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--small", action="store_true", help="small inputs, one pass (CI)")
    ap.add_argument("--passes", type=int, default=None, help="timed passes (median); default 5")
    ap.add_argument("--workers", type=int, default=2, help="reluth worker processes")
    ap.add_argument("--sets", default=None, help="comma-separated input sets (default: all)")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/reluth-bench-dicognito"))
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument(
        "--callgrind",
        action="store_true",
        help="also count each tool's instructions once under valgrind (reluth: 1 worker)",
    )
    args = ap.parse_args()
    passes = args.passes or (1 if args.small else 5)
    dicognito = ensure_dicognito(args.venv)
    ensure_gdcmanon()
    compile_reluth()
    work = Path(tempfile.mkdtemp(prefix="reluth-bench-"))
    try:
        key_file = work / "site.key"
        key_file.write_bytes(KEY)
        cert = make_certificate(work)
        makers = {
            "series-44": lambda: series_input(work / "in-series-44", 10, 32, 64),
            "series-404": lambda: series_input(work / "in-series-404", 100, 128, 512),
            "series-4000": lambda: series_input(work / "in-series-4000", 999, 128, 512),
            "pydicom": lambda: pydicom_input(work / "in-pydicom", 40 if args.small else None),
        }
        default = ["series-44", "pydicom"] if args.small else ["series-404", "series-4000"]
        default += [] if args.small else ["pydicom"]
        names = args.sets.split(",") if args.sets else default
        unknown = [n for n in names if n not in makers]
        if unknown:
            raise SystemExit(f"unknown set(s) {unknown}; known: {', '.join(makers)}")
        results: list[dict[str, object]] = []
        cli = tools(args, key_file, cert, dicognito)
        n = 1 if args.small else 5
        starts = {
            "reluth images deidentify --help": startup([*cli[0].argv[:2], "deidentify", "--help"], n),
            "reluth.imaging.cli app --help": startup([*cli[1].argv[:3], "deidentify", "--help"], n),
            'python -c "import pydicom"': startup([sys.executable, "-c", "import pydicom"], n),
            "gdcmanon --version": startup([ensure_gdcmanon(), "--version"], n),
        }  # fmt: skip
        print(f"start-up (median of {n}, whole process): " + "; ".join(
            f"{k} {v:.3f} s" for k, v in starts.items()
        ))  # fmt: skip
        print(f"{'input set':<12} {'tool':<14} {'files':>6} {'median s':>9} {'files/s':>9} "
              f"{'CPU s':>7}")  # fmt: skip
        for name in names:
            src = makers[name]()
            files = sum(len(f) for _, _, f in os.walk(src))
            mb = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) / 1e6
            print(f"[{name}: {files} files, {mb:.0f} MB; before: {load()}]", flush=True)
            set_tools = tools(args, key_file, cert, dicognito)
            outs = {t.name: work / f"out-{name}-{t.name}" for t in set_tools}
            for i in range(passes):
                k = i % len(set_tools)
                for tool in set_tools[k:] + set_tools[:k]:  # rotate who goes first
                    shutil.rmtree(outs[tool.name], ignore_errors=True)
                    tool.run(src, outs[tool.name])
            row: dict[str, object] = {"set": name, "files": files, "megabytes": round(mb)}
            by = {t.name: t for t in set_tools}
            for tool in set_tools:
                wall = statistics.median(tool.walls)
                cpu = statistics.median(tool.cpus)
                print(f"{name:<12} {tool.name:<14} {tool.written:>6} {wall:>9.3f} "
                      f"{files / wall:>9.1f} {cpu:>7.2f}")  # fmt: skip
                row[tool.name] = {
                    "median_s": round(wall, 3),
                    "cpu_s": round(cpu, 2),
                    "written": tool.written,
                    "exit": tool.returncode,
                }
            ratios: dict[str, float] = {}
            for reluth in ("reluth", "reluth-images"):
                r = statistics.median(by[reluth].walls)
                ratios[f"dicognito/{reluth}"] = statistics.median(by["dicognito"].walls) / r
                ratios[f"{reluth}/gdcmanon"] = r / statistics.median(by["gdcmanon"].walls)
            row["ratios"] = {k: round(v, 2) for k, v in ratios.items()}
            print(f"{name:<12} speed-up over dicognito (goal >= 3): "
                  f"reluth {ratios['dicognito/reluth']:.2f}x, "
                  f"reluth-images {ratios['dicognito/reluth-images']:.2f}x; "
                  f"time relative to gdcmanon (goal <= 2): reluth "
                  f"{ratios['reluth/gdcmanon']:.2f}x, reluth-images "
                  f"{ratios['reluth-images/gdcmanon']:.2f}x")  # fmt: skip
            if args.callgrind:
                counts = {t.name: instructions(t, src, outs[t.name]) for t in set_tools}
                row["instructions"] = counts
                print(f"{name:<12} instructions (callgrind, reluth 1 worker): "
                      + ", ".join(f"{k} {v / 1e6:.0f} M" for k, v in counts.items())
                      + f"; dicognito / reluth {counts['dicognito'] / counts['reluth']:.2f}x, "
                      f"reluth / gdcmanon {counts['reluth'] / counts['gdcmanon']:.2f}x")  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                findings = [len(verify_tree(outs[t]).findings) for t in ("reluth", "reluth-images")]
            row["reluth_verify_findings"] = sum(findings)
            print(f"{name:<12} reluth outputs: {sum(findings)} verify-deid findings")
            if name.startswith("series"):
                before = spect_intervals(src)
                kept = {t.name: _kept(before, outs[t.name]) for t in set_tools}
                row["spect_intervals_kept_dt_tm"] = kept
                print(f"{name:<12} SPECT injection-to-scan intervals unchanged (DT / DA+TM): "
                      + ", ".join(f"{k} {v}" for k, v in kept.items()))  # fmt: skip
            print(f"[after: {load()}]", flush=True)
            results.append(row)
            for out in outs.values():
                shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(src, ignore_errors=True)
        print(
            f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
            f"pydicom {pydicom.__version__}; reluth workers {args.workers}; passes {passes}"
        )
        if args.json:
            args.json.write_text(json.dumps({"startup_s": starts, "sets": results}, indent=2))
        bad = [r for r in results if r["reluth_verify_findings"]]
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
