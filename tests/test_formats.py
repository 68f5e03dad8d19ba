"""--format junit, prometheus and markdown, rendered from the real H200 run (its recorded check.json, re-judged).

JUnit: the structure that Jenkins's xunit plugin validates against (jenkinsci/xunit-plugin,
src/main/resources/org/jenkinsci/plugins/xunit/types/model/xsd/junit-10.xsd) and GitLab reads
(https://docs.gitlab.com/ci/testing/unit_test_reports/): testsuites > testsuite > testcase, with the attributes that
schema requires. Prometheus: parsed by the Prometheus client's own parser, as a node-exporter textfile
(https://github.com/prometheus/node_exporter#textfile-collector: no timestamps, written atomically).
"""

from __future__ import annotations

import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpudoctor import cli
from gpudoctor.formats import AtomicFile

H200 = Path(__file__).parent / "fixtures" / "h200-firecracker-2026-11-27" / "check.json"

# junit-10.xsd, as rules: the children each element may have, the attributes it must and may carry.
CHILDREN = {"testsuites": {"testsuite"}, "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
            "testcase": {"skipped", "error", "failure", "system-out", "system-err"}, "properties": {"property"}}
REQUIRED = {"testsuite": {"name", "tests", "failures", "errors"}, "testcase": {"name"}, "property": {"name", "value"}}
ALLOWED = {"testsuites": {"name", "time", "tests", "failures", "errors"},
           "testsuite": {"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp", "hostname", "id", "package", "file", "log", "url"},
           "testcase": {"name", "time", "classname", "group"}, "failure": {"type", "message"}, "error": {"type", "message"},
           "skipped": {"type", "message"}, "property": {"name", "value"}, "properties": set(), "system-out": set(), "system-err": set()}
SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")


def schema_problems(element: ET.Element) -> list[str]:
    problems = []
    attributes = set(element.attrib)
    if attributes - ALLOWED[element.tag]:
        problems.append(f"{element.tag}: attributes {attributes - ALLOWED[element.tag]} not in the schema")
    if REQUIRED.get(element.tag, set()) - attributes:
        problems.append(f"{element.tag}: lacks {REQUIRED[element.tag] - attributes}")
    if element.tag in ("testsuites", "testsuite") and "time" in element.attrib and not SUREFIRE_TIME.fullmatch(element.attrib["time"]):
        problems.append(f"{element.tag}: time {element.attrib['time']!r}")
    for child in element:
        if child.tag not in CHILDREN.get(element.tag, set()):
            problems.append(f"{element.tag} may not hold {child.tag}")
        problems += schema_problems(child)
    return problems


@pytest.fixture(scope="module")
def h200_report(tmp_path_factory) -> Path:
    """The recorded run, with the bus id that that commit's NVML probe failed to decode (see the fixture's README)."""
    document = json.loads(H200.read_text())
    document["facts"]["nvml"]["devices"][0]["pci"]["busId"] = "00000000:00:06.0"
    path = tmp_path_factory.mktemp("h200") / "check.json"
    path.write_text(json.dumps(document))
    return path


def render(capsys, report: Path, fmt: str, *args) -> tuple[int, str]:
    code = cli.main(["check", "--from", str(report), "--format", fmt, *args])
    return code, capsys.readouterr().out


def test_junit_is_one_testcase_per_check_valid_for_jenkins_and_gitlab(h200_report, capsys):
    code, out = render(capsys, h200_report, "junit")
    document = json.loads(render(capsys, h200_report, "json")[1])  # the same re-judging, as JSON
    root = ET.fromstring(out)
    assert root.tag == "testsuites" and schema_problems(root) == []
    cases = root.findall("testsuite/testcase")
    assert len(cases) == int(root.attrib["tests"]) == len(document["results"])
    ld = next(c for c in cases if c.attrib["name"] == "driver.persistence")  # the capture's real warning: no failure without --strict
    assert ld.find("failure") is None and "warning:" in ld.find("system-out").text
    skipped = next(c for c in cases if c.attrib["name"] == "tensorflow.build").find("skipped")
    assert "TensorFlow is not installed" in skipped.attrib["message"]


def test_junit_failures_carry_summary_and_fix(h200_report, capsys):
    code, out = render(capsys, h200_report, "junit", "--strict", "--only", "driver")
    root = ET.fromstring(out)
    failure = next(c for c in root.iter("testcase") if c.attrib["name"] == "driver.persistence").find("failure")
    assert code == 1 and failure is not None and failure.attrib["type"] == "warn"
    assert failure.attrib["message"] in failure.text and "\nFix:\n" in failure.text
    assert root.attrib["failures"] == "1" and schema_problems(root) == []


def test_prometheus_textfile_parses_with_the_clients_parser(h200_report, capsys):
    code, out = render(capsys, h200_report, "prometheus")
    families = {f.name: f for f in text_string_to_metric_families(out)}
    status = {s.labels["check"]: (s.labels["status"], s.value) for s in families["gpudoctor_check_status"].samples}
    assert status["driver.persistence"] == ("warn", 2.0) and status["smoke.torch"] == ("pass", 0.0)
    matmul = {(s.labels["framework"], s.labels["dtype"]): s.value for s in families["gpudoctor_smoke_matmul_tflops"].samples}
    torch_device = json.loads(H200.read_text())["facts"]["smoke"]["runs"][0]["answer"]["devices"][0]
    assert matmul[("torch", "bfloat16")] == torch_device["matmul_tflops_bfloat16"]["value"]
    copy = families["gpudoctor_smoke_copy_gbps"].samples[0]
    assert copy.labels["gpu"] == "NVIDIA H200" and copy.labels["uuid"] == "GPU-52e27814-b51c-3b55-5af4-3239d4757d8d"
    assert {s.labels["direction"] for s in families["gpudoctor_smoke_pinned_gbps"].samples} == {"h2d", "d2h"}
    assert families["gpudoctor_run_duration_seconds"].samples[0].value == json.loads(H200.read_text())["duration_s"]  # the recorded run
    assert families["gpudoctor_run_timestamp_seconds"].samples[0].value > 1.7e9
    assert all(s.timestamp is None for f in families.values() for s in f.samples)  # the textfile collector refuses timestamps


def test_prometheus_file_is_written_whole_and_readable_by_the_exporter(h200_report, tmp_path, capsys):
    target = tmp_path / "gpudoctor.prom"
    target.write_text("old\n")
    assert cli.main(["check", "--from", str(h200_report), "--format", "prometheus", "-o", str(target)]) == 0
    assert target.read_text().startswith("# HELP gpudoctor_check_status")
    assert sorted(os.listdir(tmp_path)) == ["gpudoctor.prom"]  # no temporary file left behind
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    half = AtomicFile(str(target))
    half.write("gpudoctor_exit_code 1\n")
    assert target.read_text().startswith("# HELP")  # a collector reading now sees the previous whole file
    half.close()
    assert target.read_text() == "gpudoctor_exit_code 1\n"


def test_markdown_for_a_ticket(h200_report, capsys):
    code, out = render(capsys, h200_report, "markdown")
    assert out.startswith("## gpudoctor ") and "`vm`" in out.splitlines()[0]
    assert "| driver | ⚠️ warn: `driver.persistence` |" in out
    block = out.split("### ⚠️ `driver.persistence` warn", 1)[1]
    assert "```bash\n" in block and "systemctl enable --now nvidia-persistenced" in block
