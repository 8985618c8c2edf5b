"""Where the time of one `images deidentify` process goes: start-up phases and the batch.

Runs the command through `reluth.imaging.cli`'s Typer app in a fresh process (as
bench_deid.py's `reluth-images` row) and prints, from process start: the imaging CLI imported,
pydicom and the batch imported, the command's body reached (arguments parsed), the batch done,
exit; then gdcmanon's whole run on the same input for comparison (if installed).

    .venv/bin/python benchmarks/profile_deid.py                  # synthesizes the 404-file series
    .venv/bin/python benchmarks/profile_deid.py --input DIR --runs 5

--loop N instead de-identifies the first N CT slices under --input in this process, one worker
(nothing else): run it under `valgrind --tool=callgrind` with two values of N, and the
difference of the instruction counts divided by the difference of N is the user-space cost of
one slice (read, de-identify, write), whatever else the machine is doing. With --read-only the
loop only reads each slice with pydicom (`dcmread(path, defer_size=65536)`), for comparison.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import sys, time
t0 = time.perf_counter()
marks = []
def mark(what):
    marks.append((what, time.perf_counter() - t0))
from reluth.imaging.cli import app
mark("imaging CLI imported")
import reluth.imaging.batch as batch
mark("pydicom and the batch imported")
run = batch.deidentify_tree
def timed(*args, **kwargs):
    mark("arguments parsed, batch starts")
    report = run(*args, **kwargs)
    mark("batch done")
    return report
batch.deidentify_tree = timed
try:
    app(sys.argv[1:], prog_name="reluth images", standalone_mode=False)
finally:
    mark("exit")
    print(";".join(f"{w}={t:.4f}" for w, t in marks))
"""


def loop(src: Path | None, n: int, read_only: bool) -> int:
    """deidentify_tree, one worker, over links to the first n CT slices under src."""
    import pydicom

    from reluth.imaging.batch import deidentify_tree
    from reluth.imaging.deid import DeidSettings
    from reluth.imaging.profile import RELUTH_OPTIONS

    if src is None:
        raise SystemExit("--loop needs --input")
    if read_only:
        for path in sorted(src.rglob("CT*.dcm"))[:n]:
            pydicom.dcmread(path, defer_size=65536)
        return 0
    work = Path(tempfile.mkdtemp(prefix="reluth-profile-deid-"))
    try:
        (work / "in").mkdir()
        for path in sorted(src.rglob("CT*.dcm"))[:n]:
            (work / "in" / path.name).symlink_to(path.resolve())
        settings = DeidSettings(key=b"k" * 40, patient_id="C99-0001", options=RELUTH_OPTIONS)
        report = deidentify_tree(work / "in", work / "out", settings, workers=1)
        print(f"{report.written} written")
        return 0 if report.written == n else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--input", type=Path, help="folder to de-identify (default: synthesized)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loop", type=int, help="only de-identify N CT slices in this process")
    ap.add_argument("--read-only", action="store_true", help="--loop only reads the slices")
    args = ap.parse_args()
    if args.loop is not None:
        return loop(args.input, args.loop, args.read_only)
    work = Path(tempfile.mkdtemp(prefix="reluth-profile-deid-"))
    try:
        src = args.input
        if src is None:
            from reluth.imaging.synthetic import SyntheticOptions, SyntheticPatient, write_patient

            src = work / "in"
            write_patient(src, SyntheticPatient(), SyntheticOptions(ct_slices=100))
        key = work / "site.key"
        key.write_bytes(b"profile-key-not-a-secret-0123456789abcdef")
        runs: dict[str, list[float]] = {}
        for _ in range(args.runs):
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            argv = [sys.executable, "-c", CHILD, "deidentify", str(src), str(out)]
            argv += ["--patient-id", "C99-0001", "--key", str(key), "--workers", str(args.workers)]
            res = subprocess.run(argv, capture_output=True, text=True, check=True)
            for part in res.stdout.strip().splitlines()[-1].split(";"):
                what, at = part.rsplit("=", 1)
                runs.setdefault(what, []).append(float(at))
        print(f"images deidentify, {args.runs} runs, seconds from process start (median, min-max):")
        for what, ats in runs.items():
            print(f"  {what:<34} {statistics.median(ats):.3f}  ({min(ats):.3f}-{max(ats):.3f})")
        gdcm = shutil.which("gdcmanon")
        if gdcm:
            cert, pkey = work / "c.pem", work / "k.pem"
            req = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
            req += ["-subj", "/CN=profile", "-keyout", str(pkey), "-out", str(cert)]
            subprocess.run(req, check=True, capture_output=True)
            walls = []
            for _ in range(args.runs):
                out = work / "gdcm"
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                cmd = [gdcm, "-e", "-c", str(cert), "-r", "-i", str(src), "-o", str(out)]
                subprocess.run([*cmd, "--continue"], check=True, capture_output=True)
                walls.append(time.perf_counter() - t0)
            print(f"gdcmanon whole run: {statistics.median(walls):.3f} s "
                  f"({min(walls):.3f}-{max(walls):.3f})")  # fmt: skip
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
