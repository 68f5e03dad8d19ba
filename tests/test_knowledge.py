"""The knowledge tables agree with one another and cover the machines in the fixtures."""

from __future__ import annotations

import re

import pytest
from evidence_helpers import fixture, judge_all

from gpudoctor import compat, kb
from gpudoctor.gpus import capability_of, gpu_devices
from gpudoctor.host import RecordedHost


def test_every_cuda_release_has_a_driver_and_drivers_rise_with_cuda():
    cuda = kb.load("cuda")
    drivers = [compat.version_key(d) for _, d in sorted(cuda["toolkit_driver"].items(), key=lambda kv: compat.version_key(kv[0]))]
    assert drivers == sorted(drivers)
    for release in kb.load("torch")["releases"].values():
        for variant in release["variants"].values():
            assert variant["cuda"] in cuda["toolkit_driver"], variant
            assert compat.minimum_driver(variant["cuda"]), variant
    for major, floor in cuda["minor_version_compat"].items():
        assert cuda["toolkit_driver"][f"{major}.0"] == floor or major == "11"  # 11.0's GA driver predates the MVC floor


def test_builds_do_not_claim_architectures_their_cuda_dropped():
    dropped = kb.load("cuda")["dropped_cc"]
    for version, release in kb.load("torch")["releases"].items():
        for name, variant in release["variants"].items():
            assert variant["arch"] == sorted(variant["arch"], key=compat.version_key), (version, name)
            for cuda, removed in dropped.items():
                if compat.version_key(variant["cuda"]) >= compat.version_key(cuda):
                    assert not set(variant["arch"]) & set(removed), (version, name, cuda)
            assert not release["stable"] or set(release["stable"]) <= set(release["variants"]), version


def test_every_xid_and_distro_row_names_a_known_source():
    xid = kb.load("xid")
    assert all(row["source"] in xid["sources"] and row["severity"] in ("warn", "fail") for row in xid["codes"].values())
    distros = kb.load("distros")
    assert all(row["source"] in distros["sources"] for row in distros["supported"].values())
    family_members = {m for members in distros["families"].values() for m in members}
    assert set(distros["supported"]) <= family_members
    gpus = kb.load("gpus")
    assert all(row["source"] in gpus["sources"] and re.compile(row["match"]) for row in gpus["patterns"])


@pytest.mark.parametrize("name", ["h200-2026-11-26", "v100s-8gpu-training-460", "gtx1050-laptop-515"])
def test_every_gpu_in_the_fixtures_has_a_compute_capability(name):
    ev = fixture(name)
    results = judge_all(ev)
    host = RecordedHost(ev)
    from gpudoctor.checks.driver import collect_nvidia_smi

    smi = collect_nvidia_smi(host)
    devices = gpu_devices(host.nvml(), smi)
    assert devices and all(d["cc"] for d in devices), [(d["name"], d["cc"]) for d in devices]
    assert results["gpu.inventory"].status.value == "pass"


@pytest.mark.parametrize("product, cc", [
    ("NVIDIA H200", (9, 0)), ("Tesla V100S-PCIE-32GB", (7, 0)), ("NVIDIA GeForce GTX 1050", (6, 1)), ("NVIDIA L4", (8, 9)),
    ("NVIDIA A10G", (8, 6)), ("NVIDIA A100-SXM4-80GB", (8, 0)), ("NVIDIA GeForce RTX 5090", (12, 0)), ("Tesla T4", (7, 5)),
    ("NVIDIA B200", (10, 0)), ("NVIDIA GB10", (12, 1)), ("NVIDIA GeForce RTX 3090", (8, 6)), ("Tesla P100-PCIE-16GB", (6, 0)),
])
def test_product_names_from_real_machines_map_to_their_capability(product, cc):
    assert capability_of(product) == cc
