"""Every real `nvidia-smi -q -x` in tests/fixtures/smi-xml (other projects' test data, unedited), read by gpudoctor
and, independently, by ElementTree here: field by field they must agree, and NVIDIA's no-value words
("N/A", "Not Found") must come out as absent with the word kept, never as a value. Sources: that folder's README."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from evidence_helpers import FIXTURES, fixture, judge

from gpudoctor.evidence import command_key
from gpudoctor.gpus import driver_cuda, gpu_devices
from gpudoctor.novalue import WORDS, known, no_value
from gpudoctor.parsers import parse_smi_xml

CORPUS = sorted((FIXTURES / "smi-xml").glob("*.xml"))


def theirs(path: Path) -> tuple[ET.Element, list[ET.Element]]:
    root = ET.parse(path).getroot()
    return root, root.findall("gpu")


def text(node, tag):
    found = node.find(tag)
    return found.text.strip() if found is not None and found.text else None


def test_the_corpus_is_the_one_the_readme_lists():
    listed = set(re.findall(r"^\| `([^`]+\.xml)`", (FIXTURES / "smi-xml/README.md").read_text(), re.M))
    assert listed == {p.name for p in CORPUS} and len(CORPUS) >= 15


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_each_gpu_reads_as_the_xml_says(path):
    root, gpus = theirs(path)
    ours = gpu_devices(None, {"parsed": parse_smi_xml(path.read_text())})
    assert len(ours) == len(gpus) >= 1
    for mine, gpu in zip(ours, gpus):
        assert mine["name"] == text(gpu, "product_name")
        domain, rest = gpu.get("id").lower().split(":", 1)  # 00000000:01:00.0 (newer) or 0000:01:00.0 (352)
        assert mine["bus"] == f"{domain[-4:]}:{rest}"
        total = text(gpu, "fb_memory_usage/total")
        assert mine["memory"]["total"] == (int(total.split()[0]) * 1024 * 1024 if total and total[0].isdigit() else None)
        persistence = text(gpu, "persistence_mode")
        expected = {"Enabled": 1, "Disabled": 0}.get(persistence)
        assert mine["persistence_mode"] == expected
        if expected is None:  # N/A: neither on nor off, and the word is kept as the reason
            assert mine["no_value"]["persistence_mode"] == (persistence or "missing")
        device_id = text(gpu, "pci/pci_device_id")
        hex_id = device_id if device_id and re.fullmatch(r"(0x)?[0-9A-Fa-f]{8}", device_id) else None  # '[REDACTED]' in one
        assert mine["pci"]["pciDeviceId"] == (int(hex_id, 16) if hex_id else None)
        for key, tag in (("pcie_width_cur", "current_link_width"), ("pcie_width_max", "max_link_width")):
            width = text(gpu, f"pci/pci_gpu_link_info/link_widths/{tag}")
            assert mine[key] == (int(width.rstrip("x")) if width and width[0].isdigit() else None)
        util = text(gpu, "utilization/gpu_util")
        assert mine["utilization_gpu"] == (int(util.split()[0]) if util and util[0].isdigit() else None)
        draw = next((text(gpu, f"{group}/{tag}") for group, tag in (("gpu_power_readings", "instant_power_draw"),
                     ("gpu_power_readings", "power_draw"), ("power_readings", "power_draw")) if text(gpu, f"{group}/{tag}")), None)
        assert mine["power_usage_mw"] == (round(float(draw.split()[0]) * 1000) if draw and draw[0].isdigit() else None)
    cuda = text(root, "cuda_version")
    parsed = parse_smi_xml(path.read_text())
    assert parsed["cuda_version"] == (None if cuda is None or no_value(cuda) else cuda)
    assert parsed["driver_version"] == text(root, "driver_version")


@pytest.mark.parametrize("word", sorted(WORDS) + ["[N/A]", "[Not Supported]", "[Insufficient Permissions]", "[Unknown Error]", " N/A "])
def test_every_no_value_word_is_absent_with_the_word_kept(word):
    assert no_value(word) == word.strip() and known(word) is None
    assert known({"busId": word, "pciDeviceId": 7}) == {"busId": None, "pciDeviceId": 7}
    assert known([word, word]) is None and no_value({"error": "NVMLError_NotSupported: Not Supported"}).startswith("NVMLError")
    assert no_value("Enabled") is None and no_value(0) is None and known("None") == "None"  # <mig_devices>None</mig_devices> is zero


@pytest.mark.parametrize("name, driver, cuda", [
    ("pai-4x-k80-cuda-not-found.xml", "430.26", "10.1"),        # <cuda_version>Not Found</cuda_version>
    ("pai-gt-730-384-trimmed.xml", "384.111", "9.0"),           # schema 9: no cuda_version element
    ("rai-grid-k520-352-v7-a.xml", "352.99", "7.5"),            # schema 7
])
def test_a_driver_without_its_cuda_version_gets_it_from_nvidias_table(name, driver, cuda):
    parsed = parse_smi_xml((FIXTURES / "smi-xml" / name).read_text())
    assert parsed["driver_version"] == driver and parsed["cuda_version"] is None
    assert driver_cuda(None, {"parsed": parsed}) == cuda  # CUDA Toolkit Release Notes, Table 3


@pytest.mark.parametrize("name, cc, chip", [
    ("telegraf-gt-1030.xml", (6, 1), "GP108 [GeForce GT 1030]"),
    ("telegraf-quadro-p2000-v12.xml", (6, 1), "GP106GL [Quadro P2000]"),
    ("telegraf-quadro-p400.xml", (6, 1), "GP107GL [Quadro P400]"),
    ("telegraf-grid-p4-1q-vgpu.xml", (6, 1), "GP104GL [Tesla P4]"),
    ("telegraf-gtx-1660-ti-graphics-device.xml", (7, 5), "TU116 [GeForce GTX 1660]"),
    ("datakit-gtx-1050-mobile-hp-laptop.xml", (6, 1), "GP107M [GeForce GTX 1050 Mobile]"),
])
def test_gpus_the_name_table_misses_are_known_by_their_pci_device_id(name, cc, chip):
    [gpu] = gpu_devices(None, {"parsed": parse_smi_xml((FIXTURES / "smi-xml" / name).read_text())})
    assert (gpu["cc"], gpu["chip"]) == (cc, chip)


def _judged_from_xml(name: str, check_id: str, folder: Path = FIXTURES / "smi-xml"):
    """The H200 capture with NVML's library missing, so the GPUs come from this XML, as on a machine where only nvidia-smi answers."""
    evidence = fixture("h200-2026-11-26")
    evidence.data["nvml"] = {"error": {"name": "NVMLError_LibraryNotFound", "code": 12, "message": "NVML Shared Library Not Found"}}
    evidence.data["commands"][command_key(["nvidia-smi", "-q", "-x"])].update(
        rc=0, stdout=(folder / name).read_text(), stderr="", error=None)
    return judge(evidence, check_id)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_no_gpu_check_crashes_on_any_real_xml(path):
    for check_id in ("gpu.inventory", "gpu.ecc", "gpu.memory_health", "gpu.pcie_link", "gpu.thermal", "gpu.mig",
                     "gpu.compute_mode", "gpu.processes", "driver.persistence", "driver.module_flavor"):
        assert _judged_from_xml(path.name, check_id).status.value != "error", check_id


@pytest.mark.parametrize("name", ["telegraf-tesla-t4-windows.xml", "telegraf-rtx-3080-windows-v12.xml", "telegraf-grid-p4-1q-vgpu.xml"])
def test_persistence_na_is_neither_on_nor_off(name):
    result = _judged_from_xml(name, "driver.persistence")
    assert result.status.value == "skip" and "does not apply" in result.summary and "'N/A'" in result.summary


def test_gpus_from_nvidia_smi_are_not_called_answering_nvml():
    """The H200's own XML (same bus as the capture's driver) with NVML missing: the count says where it came from."""
    result = _judged_from_xml("nvidia-smi-q-x.xml", "gpu.visible", FIXTURES / "h200-firecracker-2026-11-27")
    assert result.summary == "1 GPU(s): 1 claimed by the driver, 1 listed by nvidia-smi (NVML did not answer)"
