"""The incident corpus: real, public incidents replayed as evidence and held to the fix that solved them.

Each tests/incidents/*.json names its source thread, the message people saw, the fix that worked there
and a base capture; its operations (tests/incident_ops.py) change that capture only where the incident
is about. The expectation comes from the thread: which check must fail or warn, and words its fix must
contain. Every other check must judge as it judges the unchanged capture, unless the incident names it
as a consequence, with the reason: no false alarms. Every fix must paste (evidence_helpers).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_helpers import fixture, judge_all, pasteable_problems
from incident_ops import apply

from gpudoctor import fixes
from gpudoctor.host import RecordedHost
from gpudoctor.loader import load_plugins
from gpudoctor.runner import run_checks

INCIDENTS = Path(__file__).parent / "incidents"
BAD = ("fail", "warn", "error")
REQUIRED = ("title", "source", "message", "thread_fix", "base", "changes", "expect")


def incidents() -> list[Path]:
    return sorted(INCIDENTS.glob("*.json"))


@functools.lru_cache(maxsize=None)
def baseline(base: str) -> dict[str, str]:
    return {i: r.status.value for i, r in judge_all(fixture(base)).items()}


def load(path: Path) -> dict:
    incident = json.loads(path.read_text())
    missing = [k for k in REQUIRED if k not in incident]
    assert not missing, f"{path.name} lacks {missing}"
    return incident


@pytest.mark.parametrize("path", incidents(), ids=lambda p: p.stem)
def test_incident(path):
    incident = load(path)
    expect = incident["expect"]
    evidence = apply(fixture(incident["base"]), incident["changes"])
    found, facts, _ = run_checks(load_plugins(external=False), RecordedHost(evidence))
    results = {r.id: r for r in found}
    before = baseline(incident["base"])
    for status in ("fail", "warn"):
        for check_id in expect.get(status, []):
            result = results[check_id]
            assert result.status.value == status, f"{check_id}: {result.status.value}: {result.summary}"
    for check_id, words in expect.get("fix_words", {}).items():
        for word in words:
            assert word.lower() in results[check_id].fix.lower(), f"{check_id} fix lacks {word!r}:\n{results[check_id].fix}"
    for check_id, words in expect.get("summary_words", {}).items():
        text = (results[check_id].summary + " " + " ".join(results[check_id].details)).lower()
        for word in words:
            assert word.lower() in text, f"{check_id} summary lacks {word!r}: {results[check_id].summary}"
    allowed = set(expect.get("fail", [])) | set(expect.get("warn", [])) | set(expect.get("consequences", {}))
    alarms = {i: r.summary for i, r in results.items() if r.status.value in BAD and before.get(i) not in BAD and i not in allowed}
    assert not alarms, f"false alarms: {alarms}"
    assert not [i for i, r in results.items() if r.status.value == "error"]
    family = fixes.family(facts.get("os"))
    for result in results.values():
        problems = pasteable_problems(result.fix, family)
        assert not problems, f"{result.id}: {problems}\n{result.fix}"


def test_the_corpus_is_large_and_sourced():
    loaded = [load(p) for p in incidents()]
    assert len(loaded) >= 55
    assert all(i["source"].startswith("https://") for i in loaded)
    assert len({i["source"] for i in loaded}) == len(loaded), "one incident per thread"


def test_readme_lists_the_corpus():
    script = Path(__file__).parent.parent / "scripts" / "incidents_table.py"
    proc = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, "README's incident list is out of date: run python scripts/incidents_table.py"
