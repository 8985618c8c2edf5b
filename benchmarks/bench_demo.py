"""Wall time of the main job: `reluth demo` in a fresh process (176 included patients).

Usage: .venv/bin/python benchmarks/bench_demo.py [--repeat N]
Prints wall and CPU seconds per run and the machine's load average at the start.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--n-included", type=int, default=None)
    args = parser.parse_args()
    reluth = Path(sys.executable).with_name("reluth")
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [str(reluth), "demo", "--out", tmp]
            if args.n_included:
                cmd += ["--n-included", str(args.n_included)]
            load = os.getloadavg()[0]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            print(
                f"run {i + 1}: wall {wall:.1f} s, CPU {cpu:.1f} s, load average at start {load:.1f}"
            )


if __name__ == "__main__":
    main()
