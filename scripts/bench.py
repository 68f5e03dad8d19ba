"""Time gpudoctor's commands as a user runs them: median, min and max of N runs.

    python scripts/bench.py [--runs 5] [--gpudoctor PATH]
    python scripts/bench.py --python /opt/torch/.venv [--runs 5]     # check against collect_env and a bare import
    python scripts/bench.py --summarize 1000                          # summarize a fleet made from the real H200 run

With --python, four commands run side by side, one round at a time so that a slow phase of the machine hits all:
`gpudoctor check --python VENV`, `python -m torch.utils.collect_env`, the bare `import torch` (with
`torch.cuda.init()` where a GPU is visible) that no check of torch can be faster than, and `gpudoctor check --quick`.
The bare import is the floor: the check should stay within 0.25 s of it on a machine without GPUs, and within 0.5 s
of it plus the smoke test's own time (the seconds it trained and measured, read from the check's JSON) on a GPU
machine.
"""

from __future__ import annotations

import argparse
import json
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
    "check --quick": ["check", "--quick"],
    "check --format json": ["check", "--format", "json"],
    "report": ["report", "-o", os.path.join(tempfile.gettempdir(), "gpudoctor-bench-report.tar.gz")],
}
BUDGET_NO_GPU_S, BUDGET_GPU_S = 0.25, 0.5


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=600)
    return time.perf_counter() - start


def _row(name: str, times: list[float]) -> str:
    return f"{name:<44}{statistics.median(times):>8.3f}s{min(times):>8.3f}s{max(times):>8.3f}s"


def _smoke_seconds(exe: str, python: str) -> float:
    """The smoke test's own time in one full check: seconds spent training and measuring, without imports and start-up."""
    out = subprocess.run([exe, "check", "--python", python, "--format", "json"], capture_output=True, text=True, timeout=600).stdout
    runs = (json.loads(out)["facts"].get("smoke") or {}).get("runs") or []
    return sum(r["answer"].get("smoke_s") or 0 for r in runs)


def side_by_side(exe: str, python: str, runs: int) -> None:
    gpu = bool(os.path.isdir("/proc/driver/nvidia/gpus") and os.listdir("/proc/driver/nvidia/gpus"))
    bare = "import torch; torch.cuda.init()" if gpu else "import torch"
    commands = {f"gpudoctor check --python {python}": [exe, "check", "--python", python],
                "python -m torch.utils.collect_env": [python, "-m", "torch.utils.collect_env"],
                f"python -c '{bare}'": [python, "-c", bare],
                "gpudoctor check --quick": [exe, "check", "--quick"]}
    for argv in commands.values():  # warm the file cache once
        time_once(argv)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(time_once(argv))
    print(f"{'command':<44}{'median':>9}{'min':>9}{'max':>9}   ({runs} rounds, {'GPU' if gpu else 'no GPU'})")
    for name, values in times.items():
        print(_row(name, values))
    check, floor = list(times.values())[::2]
    # the median of each round's difference: a slow phase of the machine hits both commands of a round alike
    over = statistics.median(c - f for c, f in zip(check, floor))
    smoke = _smoke_seconds(exe, python) if gpu else 0.0
    allowed = smoke + (BUDGET_GPU_S if gpu else BUDGET_NO_GPU_S)
    print(f"check - bare import = {over:+.3f} s (median of the rounds' differences); smoke's own time {smoke:.3f} s; "
          f"budget: +{allowed:.3f} s: {'met' if over <= allowed else 'MISSED'}")


def summarize_fleet(exe: str, count: int, runs: int) -> None:
    """`gpudoctor summarize` over `count` reports made from the real H200 run (tests/fleet_helpers.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from fleet_helpers import write_fleet

    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as work:
        write_fleet(Path(folder), count, Path(work))
        times = [time_once([exe, "summarize", folder]) for _ in range(runs)]
    print(_row(f"gpudoctor summarize ({count} reports)", times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gpudoctor", default=str(Path(sys.executable).parent / "gpudoctor"))
    parser.add_argument("--python", help="a torch environment (its bin/python or its folder): compare check with collect_env and a bare import")
    parser.add_argument("--summarize", type=int, metavar="N", help="time summarize over N reports made from the real H200 run")
    args = parser.parse_args()
    exe = args.gpudoctor if Path(args.gpudoctor).exists() else shutil.which("gpudoctor")
    if not exe:
        sys.exit("bench: gpudoctor is not installed here")
    if args.summarize:
        summarize_fleet(exe, args.summarize, args.runs)
        return
    if args.python:
        python = os.path.join(args.python, "bin", "python") if os.path.isdir(args.python) else args.python
        side_by_side(exe, python, args.runs)
        return
    time_once([exe, "--version"])  # warm the file cache once
    print(f"{'command':<30}{'median':>9}{'min':>9}{'max':>9}   ({args.runs} runs)")
    for name, rest in COMMANDS.items():
        times = [time_once([exe, *rest]) for _ in range(args.runs)]
        print(f"gpudoctor {name:<20}{statistics.median(times):>8.3f}s{min(times):>8.3f}s{max(times):>8.3f}s")


if __name__ == "__main__":
    main()
