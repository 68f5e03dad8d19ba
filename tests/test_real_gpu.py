"""What the first run on a real GPU recorded (tests/fixtures/h200-firecracker-2026-11-27), judged again.

That run found what no constructed case had: nvidia-ml-py 13 hands `busId` back as str and wants the
structure for the fabric call, and a single unreadable field then made 19 checks raise. These tests hold
the recorded answers, unedited, against gpudoctor: the NVML worker's real output and nvidia-smi's XML from
the same machine and minute.
"""

from __future__ import annotations

import json

import pytest
from evidence_helpers import FIXTURES, fixture

from gpudoctor.evidence import command_key
from gpudoctor.gpus import gpu_devices
from gpudoctor.host import RecordedHost
from gpudoctor.parsers import parse_smi_xml
from gpudoctor.loader import load_plugins
from gpudoctor.runner import run_checks

RUN = FIXTURES / "h200-firecracker-2026-11-27"
NVML = json.loads((RUN / "nvml-probe.json").read_text())
XML = (RUN / "nvidia-smi-q-x.xml").read_text()


def firecracker_h200():
    """The 2026-11-26 H200 capture with this run's NVML answer and XML in their places (same GPU, driver, bus id)."""
    evidence = fixture("h200-2026-11-26")
    evidence.data["nvml"] = json.loads(json.dumps(NVML))
    evidence.data["commands"][command_key(["nvidia-smi", "-q", "-x"])].update(rc=0, stdout=XML, stderr="", error=None)
    return evidence


def test_an_unreadable_nvml_field_costs_that_field_not_the_checks():
    results, _, _ = run_checks(load_plugins(external=False), RecordedHost(firecracker_h200()))
    assert [r.id for r in results if r.status.value == "error"] == []
    by_id = {r.id: r for r in results}
    assert by_id["gpu.inventory"].status.value == "pass" and "NVIDIA H200" in by_id["gpu.inventory"].summary


@pytest.mark.parametrize("source", ["nvml", "xml"])
def test_both_sources_of_one_machine_give_the_same_gpu(source):
    nvml = NVML if source == "nvml" else None
    [gpu] = gpu_devices(nvml, {"parsed": parse_smi_xml(XML)})
    assert (gpu["name"], gpu["uuid"], gpu["cc"]) == ("NVIDIA H200", "GPU-52e27814-b51c-3b55-5af4-3239d4757d8d", (9, 0))
    assert gpu["memory"]["total"] == 143771 * 1024 * 1024  # <total>143771 MiB</total>; NVML: 150754820096 bytes
    assert (gpu["pcie_gen_cur"], gpu["pcie_width_cur"], gpu["persistence_mode"], gpu["ecc_mode"]) == (5, 16, 1, [1, 1])
    assert gpu["mig_mode"] == [0, 0] and gpu["mig_devices"] == 0
    # the XML names the bus; the buggy NVML answer could not, and says why instead of crashing
    if source == "xml":
        assert gpu["bus"] == "0000:00:06.0"
    else:
        assert gpu["bus"] == "" and gpu["no_value"]["fabric_state"].startswith("TypeError")


def test_the_second_run_replays_as_it_ran_with_the_driver_folder_no_longer_flagged():
    """The report archive of the second run (after the fix), replayed, judges as the live run did on the H200.

    One exception, on purpose: the live run warned that LD_LIBRARY_PATH's /usr/local/nvidia/lib64 shadows the
    wheels, but that folder holds only libcuda, the driver, which no wheel bundles (NVIDIA's container images set it)."""
    live = json.loads((RUN / "live-statuses.json").read_text())
    results, _, _ = run_checks(load_plugins(external=False), RecordedHost(fixture("h200-firecracker-2026-11-27")))
    replayed = {r.id: r.status.value for r in results}
    assert live.pop("cuda.ld_library_path") == "warn" and replayed.pop("cuda.ld_library_path") == "pass"
    assert {k: v for k, v in replayed.items() if k in live} == live


def test_the_third_run_after_the_merges_replays_as_it_ran():
    """The report of the merged code on the H200 (ONNX Runtime probe, advice checks, GPU state, allow-listed
    environment, both redaction passes), replayed here: every check judges as it did there."""
    folder = FIXTURES / "h200-firecracker-2026-11-27-third-run"
    live = json.loads((folder / "live-statuses.json").read_text())
    results, _, _ = run_checks(load_plugins(external=False), RecordedHost(fixture(folder.name)))
    assert {r.id: r.status.value for r in results} == live
    assert live["gpu.state"] == live["advice.tensor_cores"] == live["onnxruntime.install"] == "pass"
