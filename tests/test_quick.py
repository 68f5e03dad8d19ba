"""--quick: the profile for health checks that a scheduler kills (Slurm's HealthCheckProgram after 60 s,
https://slurm.schedmd.com/slurm.conf.html#OPT_HealthCheckProgram; node-problem-detector's plugin timeout).

Live on whatever machine runs the tests, asserting what holds on every machine: no interpreter is probed (so no
framework is imported), no smoke test runs, what was left out is said, and it ends within 5 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from gpudoctor.host import RecordedHost
from gpudoctor.models import Status
from gpudoctor.loader import load_plugins
from gpudoctor.runner import Selection, run_checks
from evidence_helpers import fixture
from gpudoctor.cli import QUICK_LEAVES_OUT


def test_quick_imports_no_framework_runs_no_smoke_and_says_what_it_left_out():
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "check", "--quick", "--format", "json"], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    document = json.loads(proc.stdout)
    assert proc.returncode in (0, 1), proc.stderr
    assert "python_envs" not in document["facts"] and "smoke" not in document["facts"]
    results = {r["id"]: r for r in document["results"]}
    for check_id in ("python.interpreter", "torch.build", "jax.install", "smoke.torch", "smoke.speed"):
        assert results[check_id]["status"] == "skip" and results[check_id]["summary"].startswith("left out by --quick"), results[check_id]
    assert elapsed < 5, f"--quick took {elapsed:.1f} s"


def test_quick_on_the_h200_evidence_judges_the_driver_and_gpus_and_leaves_the_rest():
    """The H200 recording replayed with the quick selection: NVML and nvidia-smi are judged; no probe is asked for."""
    evidence = fixture("h200-2026-11-26")
    host = RecordedHost(evidence, 3.0)
    asked = []
    original = host.probe
    host.probe = lambda *args, **kw: asked.append(args) or original(*args, **kw)
    results, facts, _ = run_checks(load_plugins(external=False), host, Selection(left_out=QUICK_LEAVES_OUT), 3.0)
    found = {r.id: r for r in results}
    assert asked == [] and "python_envs" not in facts
    assert found["driver.loaded"].status == Status.PASS and found["gpu.inventory"].status == Status.PASS
    assert found["torch.build"].summary.startswith("left out by --quick: judging an interpreter imports its frameworks")
