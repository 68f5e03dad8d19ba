"""Time gpudoctor's commands as a user runs them: median, min and max of N runs.

    python scripts/bench.py [--runs 5] [--gpudoctor PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "--version": ["--version"],
    "list": ["list"],
    "check": ["check"],
    "check --format json": ["check", "--format", "json"],
    "report": ["report", "-o", os.path.join(tempfile.gettempdir(), "gpudoctor-bench-report.tar.gz")],
}


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gpudoctor", default=str(Path(sys.executable).parent / "gpudoctor"))
    args = parser.parse_args()
    exe = args.gpudoctor if Path(args.gpudoctor).exists() else shutil.which("gpudoctor")
    if not exe:
        sys.exit("bench: gpudoctor is not installed here")
    time_once([exe, "--version"])  # warm the file cache once
    print(f"{'command':<30}{'median':>9}{'min':>9}{'max':>9}   ({args.runs} runs)")
    for name, rest in COMMANDS.items():
        times = [time_once([exe, *rest]) for _ in range(args.runs)]
        print(f"gpudoctor {name:<20}{statistics.median(times):>8.3f}s{min(times):>8.3f}s{max(times):>8.3f}s")


if __name__ == "__main__":
    main()
