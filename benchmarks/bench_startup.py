"""Whole-process start-up of ``reluth`` commands against the peer ``git --version``, in the same
run (issue 20: ``reluth --help`` <= 0.25 s, ``reluth eligibility check FILE`` <= 0.4 s).

    .venv/bin/python benchmarks/bench_startup.py --runs 15
    .venv/bin/python benchmarks/bench_startup.py --runs 15 --profile   # + python -X importtime

The commands run in rounds (one run of each command per round, so that a change of load hits
them alike) after two warm-up rounds; each run is timed from spawn to exit, and its CPU time
(user + system, from ``getrusage`` of the children) is reported alongside, as wall time on a
shared machine mostly measures the other jobs. The package's bytecode is compiled first, as an
installation does (``PYTHONDONTWRITEBYTECODE`` would otherwise make every run compile the
sources again). ``--profile`` prints, for each reluth command, the imports that cost most
(cumulative microseconds from ``-X importtime``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATIENT = ROOT / "examples" / "patients" / "eligible.json"


def _reluth() -> str:
    found = Path(sys.executable).with_name("reluth")
    return str(found) if found.exists() else shutil.which("reluth") or "reluth"


def commands(baseline: Path | None = None) -> dict[str, list[str]]:
    reluth = _reluth()
    table = {
        "git --version (peer)": ["git", "--version"],
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "reluth --help": [reluth, "--help"],
        "reluth eligibility --help": [reluth, "eligibility", "--help"],
        "reluth eligibility check FILE": [reluth, "eligibility", "check", str(PATIENT)],
    }
    if baseline is not None:  # the same commands from another checkout's src/ (e.g. before)
        run = f"import sys; sys.path.insert(0, {str(baseline)!r}); from reluth.cli import main; main()"
        for name in [n for n in table if n.startswith("reluth")]:
            table[f"{name} [baseline]"] = [sys.executable, "-c", run, *table[name][1:]]
    return table


def _once(argv: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(
    table: dict[str, list[str]], runs: int, warmup: int = 2
) -> dict[str, tuple[list[float], list[float]]]:
    for _ in range(warmup):
        for argv in table.values():
            _once(argv)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in table}
    for _ in range(runs):
        for name, argv in table.items():
            wall, cpu = _once(argv)
            times[name][0].append(wall)
            times[name][1].append(cpu)
    return times


def profile(argv: list[str], top: int = 12) -> list[tuple[int, int, str]]:
    """The ``top`` imports by cumulative time (self us, cumulative us, module)."""
    python = [sys.executable, "-X", "importtime", "-c", "from reluth.cli import main; main()"]
    done = subprocess.run(
        python + argv[1:], capture_output=True, text=True, check=False, cwd=ROOT, env=os.environ
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        rows.append((int(self_us), int(cumulative_us), name.rstrip()))
    return sorted(rows, key=lambda r: r[1], reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command (>= 10)")
    parser.add_argument("--profile", action="store_true", help="print -X importtime profiles")
    parser.add_argument(
        "--baseline", type=Path, help="also time another checkout's src/ (e.g. the code before)"
    )
    args = parser.parse_args()
    table = commands(args.baseline)
    for src in [ROOT / "src", *([args.baseline] if args.baseline else [])]:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(src / "reluth")], check=True)
    load_before = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    times = measure(table, args.runs)
    load_after = os.getloadavg()[0]
    peer = statistics.median(times["git --version (peer)"][0])
    print(
        f"{started}; {args.runs} runs each, interleaved; "
        f"load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores\n"
    )
    print("| command | median wall s | min wall s | median CPU s | wall / peer |")
    print("|---|---|---|---|---|")
    for name, (walls, cpus) in times.items():
        median = statistics.median(walls)
        print(
            f"| `{name}` | {median:.3f} | {min(walls):.3f} | {statistics.median(cpus):.3f} "
            f"| {median / peer:.0f}x |"
        )
    if args.profile:
        for name, argv in commands().items():
            if name not in ("reluth --help", "reluth eligibility check FILE"):
                continue
            print(f"\n{name}: top imports by cumulative time (python -X importtime)")
            for self_us, cumulative_us, module in profile(argv):
                print(
                    f"  {cumulative_us / 1000:7.1f} ms cumulative {self_us / 1000:6.1f} ms self  {module}"
                )


if __name__ == "__main__":
    main()
