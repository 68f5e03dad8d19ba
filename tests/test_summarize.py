"""gpudoctor summarize over a fleet made from the real H200 run (tests/fleet_helpers.py): failures grouped by cause,
software stacks counted, speed outliers named, the newest report per node, unreadable files listed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from fleet_helpers import node, rejudged, write_fleet


def summarize(*args, fmt="json"):
    return subprocess.run([sys.executable, "-m", "gpudoctor", "summarize", "--format", fmt, *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    folder, work = tmp_path_factory.mktemp("fleet"), tmp_path_factory.mktemp("work")
    written = write_fleet(folder, 50, work)
    # gpu0000's older report failed; the newer one (above) counts
    older = node(rejudged(work, "[gpus]\ncount = 8\n"), "gpu0000", started_at="2026-11-20T00:00:00+00:00")
    (folder / "gpu0000-20261120T000000Z.json").write_text(json.dumps(older))
    (folder / "broken.json").write_text("{not json")
    return folder, written


def test_failing_checks_grouped_by_cause_with_their_nodes(fleet):
    folder, _ = fleet
    proc = summarize(folder)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["nodes"] == 50
    assert result["failing_nodes"] == ["gpu0007", "gpu0017", "gpu0027", "gpu0037", "gpu0047"]
    (group,) = result["failures"]
    assert group["check"] == "policy.gpu_count" and group["cause"] == "N GPU(s) answer; the policy expects N"
    assert group["example"] == "1 GPU(s) answer; the policy expects 8" and len(group["nodes"]) == 5
    assert result["unreadable"][0]["path"].endswith("broken.json")


def test_software_stacks_and_how_many_nodes_run_each(fleet):
    result = json.loads(summarize(fleet[0]).stdout)
    stacks = {s["frameworks"]: len(s["nodes"]) for s in result["stacks"]}
    assert stacks == {"cupy 14.2.0, jax 0.11.2, torch 2.11.0+cu130": 49, "cupy 14.2.0, jax 0.11.2, torch 2.10.0+cu130": 1}
    first = result["stacks"][0]
    assert (first["driver"], first["cuda"], first["gpus"]) == ("580.159.04", "13.0", "1 × NVIDIA H200")


def test_smoke_figures_against_the_fleet_median_name_the_outliers(fleet):
    folder, written = fleet
    result = json.loads(summarize(folder).stdout)
    (model,) = result["speed"]
    recorded = written["gpu0001"]["facts"]["smoke"]["runs"][0]["answer"]["devices"][0]
    assert model["model"] == "NVIDIA H200" and model["gpus"] == 50
    assert model["median"] == {"bf16_tflops": recorded["matmul_tflops_bfloat16"]["value"], "copy_gbps": recorded["copy_gbps"]["value"]}
    assert [(o["node"], o["what"], o["share"]) for o in model["outliers"]] == [("gpu0009", "copy_gbps", 0.5), ("gpu0034", "copy_gbps", 0.5)]


def test_text_and_markdown(fleet):
    text = summarize(fleet[0], fmt="text").stdout
    assert text.startswith("50 node(s), 5 failing\n")
    assert "policy.gpu_count  5      1 GPU(s) answer; the policy expects 8" in text
    assert "gpu0009 cuda:0 copy" in text
    markdown = summarize(fleet[0], fmt="markdown").stdout
    assert "| check | nodes | cause (first node's words) | which |" in markdown
    assert "| policy.gpu_count | 5 | 1 GPU(s) answer; the policy expects 8 | gpu0007, gpu0017, gpu0027, gpu0037, gpu0047 |" in markdown


def test_nothing_readable_exits_2_in_one_line(tmp_path):
    (tmp_path / "x.json").write_text("[]")
    proc = summarize(tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "no readable report in" in proc.stderr and "x.json" in proc.stderr


def test_a_thousand_reports_in_seconds(tmp_path_factory):
    """The issue's figure is 2 s for 1,000 (scripts/bench.py --summarize measures it); here a loose bound against regressions."""
    folder = tmp_path_factory.mktemp("thousand")
    write_fleet(folder, 1000, tmp_path_factory.mktemp("work"))
    start = time.monotonic()
    proc = summarize(folder)
    assert proc.returncode == 1 and json.loads(proc.stdout)["nodes"] == 1000
    assert time.monotonic() - start < 10
