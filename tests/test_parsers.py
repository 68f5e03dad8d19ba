"""Parsers on real outputs (captures and quoted incidents), and fuzzed: never an exception."""

from __future__ import annotations

import doctest
import xml.etree.ElementTree as ET

import pytest
from evidence_helpers import FIXTURES, NVIDIA_SMI_FAILURES
from hypothesis import given, settings
from hypothesis import strategies as st

from gpudoctor import parsers

H200 = FIXTURES / "h200-2026-11-26"
PARSERS = [parsers.parse_os_release, parsers.os_from_lsb, parsers.parse_uname, parsers.parse_glibc,
           parsers.parse_modules, parsers.parse_driver_version, parsers.parse_kernel_log, parsers.parse_smi_xml,
           parsers.parse_p2p_matrix]


def test_docstring_samples():
    assert doctest.testmod(parsers).failed == 0


def test_os_release_of_this_debian_and_quoting():
    text = ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
            'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')
    facts = parsers.os_from_release(parsers.parse_os_release(text))
    assert facts == {"id": "debian", "version": "12", "codename": "bookworm",
                     "pretty_name": "Debian GNU/Linux 12 (bookworm)", "like": ""}
    rocky = parsers.parse_os_release('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nBROKEN LINE\nX="unterminated')
    assert rocky["id_like"] == "rhel centos fedora" and rocky["x"] == "unterminated"


def test_lsb_release_of_the_h200_capture():
    facts = parsers.os_from_lsb((H200 / "files/etc/lsb-release").read_text())
    assert facts["id"] == "ubuntu" and facts["version"] == "24.04" and facts["pretty_name"] == "Ubuntu 24.04.3 LTS"


def test_uname_glibc_modules_and_driver_of_the_h200_capture():
    assert parsers.parse_uname((H200 / "cmd/uname.out").read_text()) == {
        "hostname": "vm", "release": "6.18.44-fc-v657-gpu", "arch": "x86_64"}
    assert parsers.parse_glibc((H200 / "cmd/glibc.out").read_text()) == "2.39"
    assert parsers.parse_glibc("ldd (GNU libc) 2.17\nCopyright (C) 2012 Free Software Foundation, Inc.") == "2.17"
    assert parsers.parse_modules((H200 / "cmd/lsmod.out").read_text()) == {"nvidia_uvm": "Live", "nvidia": "Live"}
    assert parsers.parse_driver_version((H200 / "files/proc/driver/nvidia/version").read_text()) == {
        "version": "580.159.04", "open": True}


def test_proprietary_module_version_line():
    # pytorch/pytorch#131312 quotes the proprietary module's /proc/driver/nvidia/version
    line = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  Fri May 31 09:35:42 UTC 2024"
    assert parsers.parse_driver_version(line) == {"version": "550.90.07", "open": False}


@pytest.mark.parametrize("category", sorted(NVIDIA_SMI_FAILURES))
def test_nvidia_smi_failures_from_incident_reports(category):
    rc, output = NVIDIA_SMI_FAILURES[category]
    assert parsers.classify_smi_failure(rc, output) == category
    assert parsers.classify_smi_failure(12, "") == "nvml_missing"  # the exit code alone, when nothing was printed


def test_kernel_log_of_the_h200_capture_has_no_xid_but_flags_legacy_persistence():
    log = parsers.parse_kernel_log((H200 / "cmd/dmesg-xid.out").read_text())
    assert log["xids"] == [] and "legacy_persistence" in log["flags"]


def test_kernel_log_incident_lines():
    log = parsers.parse_kernel_log(
        "[ 9.1] NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping, reset gpu to activate.\n"
        "[ 9.2] NVRM: Xid (PCI:0000:08:00): 31, Ch 0000003b, intr 10000000. MMU Fault: ENGINE GRAPHICS HUBCLIENT_SCC faulted\n"
        "[ 9.3] NVRM: The NVIDIA GPU 0000:b3:00.0 (PCI ID: 10de:26b5) installed in this system has fallen off the bus and is not responding to commands.\n"
        "[ 9.4] NVRM: API mismatch: the client has the version 570.133.07, but this kernel module has the version 570.124.06\n")
    assert [(x["xid"], x["pci"]) for x in log["xids"]] == [(63, "0000:10:1c.0"), (31, "0000:08:00.0"), (79, "0000:b3:00.0")]
    assert "api_mismatch" in log["flags"]


def test_a_gpu_off_the_bus_counts_once():
    # newer drivers log Xid 79 and a plain "fallen off the bus" line for the same event (NVIDIA/open-gpu-kernel-modules#1010)
    log = parsers.parse_kernel_log("[ 1.0] NVRM: Xid (PCI:0000:01:00): 79, pid=6755, name=vivaldi-bin, GPU has fallen off the bus.\n"
                                   "[ 1.0] NVRM: GPU 0000:01:00.0: GPU has fallen off the bus.\n")
    assert [(x["xid"], x["pci"]) for x in log["xids"]] == [(79, "0000:01:00.0")]


def test_smi_xml_of_three_real_machines():
    h200 = parsers.parse_smi_xml((H200 / "cmd/nvidia-smi-qx.out").read_text())
    gpu = h200["devices"][0]
    assert (h200["driver_version"], h200["cuda_version"], gpu["name"]) == ("580.159.04", "13.0", "NVIDIA H200")
    assert gpu["memory"]["total"] == 143771 << 20 and gpu["remapped_rows"] == [0, 0, False, False]
    assert gpu["throttle_reasons"] == 0x1 and gpu["ecc_mode"] == [1, 1] and gpu["mig_mode"] == [0, 0]
    v100 = parsers.parse_smi_xml((FIXTURES / "v100s-8gpu-training-460/nvidia-smi-q-x.xml").read_text())
    assert v100["device_count"] == 8 and {d["persistence_mode"] for d in v100["devices"]} == {0}
    assert [d["throttle_reasons"] for d in v100["devices"]].count(0x4) == 2
    assert v100["devices"][7]["processes"] == [{"pid": 37305, "name": "python", "used_memory": 29495 << 20}]
    assert v100["devices"][0]["remapped_rows"] == {"error": "N/A"} and v100["devices"][0]["retired_pages_pending"] is False
    gtx = parsers.parse_smi_xml((FIXTURES / "gtx1050-laptop-515/nvidia-smi-q-x.xml").read_text())["devices"][0]
    assert (gtx["pcie_width_cur"], gtx["pcie_width_max"], gtx["performance_state"]) == (8, 16, 3)
    assert gtx["ecc_mode"] == [{"error": "N/A"}, {"error": "N/A"}] and gtx["ecc_uncorrected_volatile"] == {"error": "N/A"}


def test_smi_xml_rejects_what_is_not_nvidia_smi():
    assert parsers.parse_smi_xml("") is None
    assert parsers.parse_smi_xml("<html><body>502</body></html>") is None
    assert parsers.parse_smi_xml("NVIDIA-SMI has failed because it couldn't communicate") is None


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_no_parser_raises_on_any_text(text):
    for parse in PARSERS:
        parse(text)
    parsers.classify_smi_failure(None, text)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_smi_xml_survives_mangled_real_output(data):
    real = (H200 / "cmd/nvidia-smi-qx.out").read_text()
    root = ET.fromstring(real)
    elements = list(root.iter())
    for _ in range(data.draw(st.integers(1, 8))):
        element = elements[data.draw(st.integers(0, len(elements) - 1))]
        element.text = data.draw(st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["N/A", "-1", "Yes", "99999 MiB"])))
    parsers.parse_smi_xml(ET.tostring(root, encoding="unicode"))
    cut = data.draw(st.integers(0, len(real)))
    assert parsers.parse_smi_xml(real[:cut]) is None or cut > len(real) - 20
