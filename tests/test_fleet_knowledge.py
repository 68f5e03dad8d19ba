"""Reference speeds per GPU model and Xid classes: knowledge as data, each row with its public source.

Xid classes from NVIDIA's Xid catalog (https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html), where
13, 31 and 43 are listed with user application errors as a cause; the Xid lines are real (tests/test_gpu_checks.py
names their threads).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

import gpudoctor
from evidence_helpers import command, fixture
from gpudoctor import kb
from gpudoctor.host import RecordedHost
from gpudoctor.models import Status
from gpudoctor.loader import load_plugins
from gpudoctor.policy import Policy
from gpudoctor.policy_checks import policy_plugin
from gpudoctor.runner import Selection, run_checks
from gpudoctor.speed import reference

XID_79 = "[81234.5] NVRM: Xid (PCI:0000:00:06): 79, pid=0, GPU has fallen off the bus.\n"  # NVIDIA/open-gpu-kernel-modules#507
XID_13 = "[77.1] NVRM: Xid (PCI:0000:00:06): 13, pid=4242, name=python, Graphics Exception: ESR 0x50df30=0x107000e\n"
XID_43 = "[78.3] NVRM: Xid (PCI:0000:00:06): 43, pid=4242, name=python, Ch 00000010\n"
# NVML product names as the driver reports them (nvidia-smi -L on each model; the V100S and H200 are in tests/fixtures)
NAMES = {"NVIDIA A100-SXM4-40GB": "A100 SXM4 40GB", "NVIDIA A100-SXM4-80GB": "A100 SXM4 80GB", "NVIDIA A100-PCIE-40GB": "A100 PCIe 40GB",
         "NVIDIA A100 80GB PCIe": "A100 PCIe 80GB", "NVIDIA H100 80GB HBM3": "H100 SXM5 80GB", "NVIDIA H100 PCIe": "H100 PCIe",
         "NVIDIA H100 NVL": "H100 NVL", "NVIDIA H200": "H200 SXM 141GB", "NVIDIA B200": "B200", "NVIDIA L40S": "L40S", "NVIDIA L4": "L4",
         "NVIDIA A10": "A10", "NVIDIA GeForce RTX 4090": "GeForce RTX 4090", "NVIDIA GeForce RTX 5090": "GeForce RTX 5090",
         "Tesla V100-SXM2-32GB": "V100 SXM2", "Tesla V100S-PCIE-32GB": "V100S PCIe 32GB", "Tesla V100-PCIE-16GB": "V100 PCIe",
         "NVIDIA L40": None, "NVIDIA A10G": None}


@pytest.mark.parametrize("name, row", NAMES.items())
def test_each_model_people_train_on_has_its_row(name, row):
    assert (reference(name) or {}).get("name") == row


def test_every_row_names_its_source_and_is_the_datasheet_times_the_h200s_measured_share():
    table = kb.load("speed")
    for row in table["models"]:
        assert row["source"] in table["sources"] and row["datasheet"].startswith("https://")
        if row["source"] == "datasheet_share":
            assert row["bf16_tflops"] == round(row["datasheet_bf16_tflops"] * 788 / 989, 1)
            assert row["copy_gbps"] == round(row["datasheet_bandwidth_gbps"] * 4290 / 4800)
    h200 = reference("NVIDIA H200")
    assert (h200["bf16_tflops"], h200["copy_gbps"]) == (788, 4290)  # measured, shared/design.md


def _smoke_probe():
    path = Path(gpudoctor.__file__).parent / "probes" / "smoke_probe.py"
    spec = importlib.util.spec_from_file_location("smoke_probe_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_low_figure_is_measured_once_more_and_the_better_kept():
    probe = _smoke_probe()
    ref = probe.speed_reference("NVIDIA H200")  # the probe reads the same table, from beside its own folder
    assert ref["bf16_tflops"] == 788 and ref["floor"] == 0.7
    facts = {"copy_gbps": {"value": 1800.0, "s": 0.1}, "matmul_tflops_bfloat16": {"value": 780.0, "s": 0.1}}
    calls = []
    probe.second_look(facts, "copy_gbps", 0.7 * ref["copy_gbps"], lambda: calls.append(1) or 4100.0)
    probe.second_look(facts, "matmul_tflops_bfloat16", 0.7 * ref["bf16_tflops"], lambda: calls.append(1) or 1.0)
    assert calls == [1]  # the matmul was fine: not measured again
    assert facts["copy_gbps"]["value"] == 4100.0 and facts["copy_gbps"]["first"] == 1800.0
    facts = {"copy_gbps": {"value": 1800.0}}
    probe.second_look(facts, "copy_gbps", 3003, lambda: 1700.0)
    assert facts["copy_gbps"] == {"value": 1800.0, "again": 1700.0}  # slow twice: the warning stands


def test_smoke_speed_says_a_figure_was_measured_twice():
    """The H200 run's smoke answer with a copy that was slow at first and fine the second time."""
    document = json.loads((Path(__file__).parent / "fixtures" / "h200-firecracker-2026-11-27" / "check.json").read_text())
    smoke = document["facts"]["smoke"]
    smoke["runs"][0]["answer"]["devices"][0]["copy_gbps"]["first"] = 1500.0
    results, _, _ = run_checks(load_plugins(external=False), None, Selection(only=frozenset({"smoke.speed"})), facts={"smoke": smoke, "nvml": None})
    (speed,) = results
    assert speed.status == Status.PASS and "(measured twice: copy 1500.0 then" in speed.details[0]


def _xid(dmesg: str, classes: dict | None = None):
    evidence = fixture("h200-2026-11-26")
    command(evidence, "dmesg", stdout=dmesg)
    plugins = load_plugins(external=False)
    if classes is not None:
        plugins.append(policy_plugin(Policy("p.toml", "node", xid_classes=classes)))
    results, _, _ = run_checks(plugins, RecordedHost(evidence), Selection(only=frozenset({"gpu.xid"})))
    return next(r for r in results if r.id == "gpu.xid")


def test_application_xids_never_fail_the_node_by_themselves():
    result = _xid(XID_13 + XID_43)
    assert result.status == Status.WARN
    assert [re.sub(r" on .*?\(", " (", d).split(":")[0] for d in result.details] == ["Xid 13 × 1 (application)", "Xid 43 × 1 (application)"]


def test_a_hardware_xid_fails_beside_application_ones():
    result = _xid(XID_13 + XID_79)
    assert result.status == Status.FAIL and "(hardware)" in result.details[1]


def test_the_policy_changes_the_class_of_any_xid():
    assert _xid(XID_13, {13: "hardware"}).status == Status.FAIL
    assert "(hardware, by the policy)" in _xid(XID_13, {13: "hardware"}).details[0]
    assert _xid(XID_79, {79: "application"}).status == Status.WARN


def test_every_xid_row_has_a_class():
    assert {row["class"] for row in kb.load("xid")["codes"].values()} == {"hardware", "driver", "application"}
    assert {code for code, row in kb.load("xid")["codes"].items() if row["class"] == "application"} >= {"13", "31", "43"}
