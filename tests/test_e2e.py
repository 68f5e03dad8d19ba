"""The installed `gpudoctor check` on the machine running the tests, judged as its user would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path


def installed_gpudoctor() -> str:
    beside = Path(sys.executable).parent / "gpudoctor"
    return str(beside) if beside.exists() else shutil.which("gpudoctor")


def test_installed_check_on_this_machine():
    """What holds on every machine; the time it takes is scripts/bench.py's business (13 s on the H200, with the smoke test)."""
    proc = subprocess.run([installed_gpudoctor(), "check", "--format", "json"], capture_output=True, text=True, timeout=120)
    document = json.loads(proc.stdout)
    results = {r["id"]: r for r in document["results"]}
    assert proc.stderr == ""
    assert not [r for r in results.values() if r["status"] == "error"], "no check may crash on a real machine"
    assert all(r["fix"] for r in results.values() if r["status"] in ("warn", "fail"))
    failed = any(r["status"] in ("fail", "error") for r in results.values())
    assert proc.returncode == document["exit_code"] == (1 if failed else 0)
    if Path("/proc/driver/nvidia/version").exists():  # what holds on every machine: a loaded driver is seen
        assert results["driver.loaded"]["status"] == "pass"
    else:
        assert results["driver.loaded"]["status"] in ("fail", "skip") and proc.returncode == 1


def test_installed_check_prints_a_readable_verdict():
    proc = subprocess.run([installed_gpudoctor(), "check"], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("gpudoctor ") and any(line.startswith("✓ system") for line in lines)
    assert lines[-1].endswith(f"exit code {proc.returncode}") and "Traceback" not in proc.stdout + proc.stderr
    if proc.returncode == 1:
        assert any(line.strip() == "Fix:" for line in lines)
