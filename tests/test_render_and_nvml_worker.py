"""The verdict renderers on the H200 capture's run, and the NVML worker on the capture's NVML values."""

from __future__ import annotations

import io
import json
import sys
import types

from evidence_helpers import FIXTURES, fixture

from gpudoctor import nvml_probe, render
from gpudoctor.host import RecordedHost
from gpudoctor.models import Run
from gpudoctor.loader import load_plugins
from gpudoctor.runner import run_checks


def h200_run() -> Run:
    results, facts, _ = run_checks(load_plugins(external=False), RecordedHost(fixture("h200-2026-11-26")))
    return Run(results, facts, "2026-11-26T06:10:25+00:00", 0.4, "vm")


def test_plain_verdict_lists_areas_then_problems_with_fixes():
    run = h200_run()
    stream = io.StringIO()
    render.write_text(render.verdict_lines(run, run.exit_code()), stream, colour=False)
    text = stream.getvalue()
    assert text.splitlines()[0] == "gpudoctor 0.1.0  vm, Ubuntu 24.04.3 LTS  (0.4 s)"
    assert "✓ system" in text and "! driver" in text and "✓ gpu " in text and "\x1b[" not in text
    assert "  ! driver.persistence" in text and "        sudo systemctl enable --now nvidia-persistenced" in text
    assert text.rstrip().endswith("exit code 0")


def test_verbose_verdict_shows_key_facts_and_colour_on_request():
    run = h200_run()
    lines = ["".join(t for t, _ in line) for line in render.verdict_lines(run, 0, verbose=True)]
    assert "  Driver  580.159.04 open" in lines and "  CUDA    13.0 (the newest the driver supports)" in lines
    assert "  GPU0    NVIDIA H200, 140.4 GiB, sm_90, 0000:00:06.0" in lines and any("✓ gpu.ecc" in l for l in lines)
    stream = io.StringIO()
    render.write_text(render.verdict_lines(run, 0), stream, colour=True)
    assert "driver.persistence" in stream.getvalue()


def test_json_document_of_the_capture():
    run = h200_run()
    document = json.loads(render.to_json(run, run.exit_code()))
    assert document["summary"]["fail"] == 0 and document["summary"]["warn"] == 1 and document["exit_code"] == 0
    assert document["facts"]["nvml"]["driver_version"] == "580.159.04"


class _Struct:
    def __init__(self, **fields):
        self.__dict__.update(fields)


CAPTURE = json.loads((FIXTURES / "h200-2026-11-26/nvml-and-driver.json").read_text())["nvml"]
REAL_RUN = fixture("h200-firecracker-2026-11-27").data["nvml"]  # what this worker answered on a real H200


def nvml_from_capture() -> types.ModuleType:
    """A pynvml that answers with the H200 capture's recorded NVML values (no NVML library here); the fields that
    capture did not read (clocks, utilization, slowdown threshold, MIG devices) with the values the worker read on
    the same kind of H200 the next day.

    Where the answer is a structure, it is nvidia-ml-py's own (`nvmlPciInfo_t` gives `busId` as str, as on the
    real H200), and calls keep nvidia-ml-py's signatures: a hand-made stand-in hid two bugs until the first run
    on a GPU (tests/fixtures/h200-firecracker-2026-11-27/README.md)."""
    import pynvml as real

    pci = real.nvmlPciInfo_t()
    pci.busId, pci.pciDeviceId = b"00000000:00:06.0", 0x233510DE
    dev, later = CAPTURE["devices"][0], REAL_RUN["devices"][0]

    class NVMLError(Exception):
        def __init__(self, value):
            self.value = value

    class NVMLError_NotSupported(NVMLError):
        def __str__(self):
            return "Not Supported"

    def unsupported(*_):
        raise NVMLError_NotSupported(3)

    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.c_nvmlGpuFabricInfo_t, m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM = real.c_nvmlGpuFabricInfo_t, real.NVML_CLOCK_SM, real.NVML_CLOCK_MEM
    for name in ("NVML_TEMPERATURE_GPU", "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED",
                 "NVML_MEMORY_ERROR_TYPE_CORRECTED", "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR"):
        setattr(m, name, name)
    m.NVML_VOLATILE_ECC, m.NVML_AGGREGATE_ECC = "volatile", "aggregate"
    errors = {("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", "volatile"): dev["ecc_uncorrected_volatile"],
              ("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", "aggregate"): dev["ecc_uncorrected_aggregate"],
              ("NVML_MEMORY_ERROR_TYPE_CORRECTED", "aggregate"): dev["ecc_corrected_aggregate"]}
    answers = {
        "nvmlInit": None, "nvmlShutdown": None, "nvmlDeviceGetCount": 1, "nvmlDeviceGetHandleByIndex": "h",
        "nvmlSystemGetDriverVersion": CAPTURE["driver_version"], "nvmlSystemGetNVMLVersion": CAPTURE["nvml_version"],
        "nvmlSystemGetCudaDriverVersion_v2": CAPTURE["cuda_driver_version_v2"], "nvmlDeviceGetName": dev["name"],
        "nvmlDeviceGetUUID": dev["uuid"], "nvmlDeviceGetMinorNumber": 0, "nvmlDeviceGetBrand": dev["brand"],
        "nvmlDeviceGetPciInfo": pci,
        "nvmlDeviceGetArchitecture": dev["architecture"], "nvmlDeviceGetCudaComputeCapability": tuple(dev["cuda_compute_capability"]),
        "nvmlDeviceGetMemoryInfo": _Struct(**dev["memory"]), "nvmlDeviceGetTemperature": dev["temperature_gpu"],
        "nvmlDeviceGetPowerUsage": dev["power_usage_mw"], "nvmlDeviceGetEnforcedPowerLimit": dev["power_limit_mw"],
        "nvmlDeviceGetPowerManagementDefaultLimit": dev["power_limit_mw"], "nvmlDeviceGetPerformanceState": 0,
        "nvmlDeviceGetCurrPcieLinkGeneration": dev["pcie_gen_cur"], "nvmlDeviceGetMaxPcieLinkGeneration": dev["pcie_gen_max"],
        "nvmlDeviceGetGpuMaxPcieLinkGeneration": dev["pcie_gen_gpu_max"], "nvmlDeviceGetCurrPcieLinkWidth": dev["pcie_width_cur"],
        "nvmlDeviceGetMaxPcieLinkWidth": dev["pcie_width_max"], "nvmlDeviceGetPersistenceMode": dev["persistence_mode"],
        "nvmlDeviceGetComputeMode": dev["compute_mode"], "nvmlDeviceGetEccMode": tuple(dev["ecc_mode"]),
        "nvmlDeviceGetRemappedRows": tuple(dev["remapped_rows"]), "nvmlDeviceGetMigMode": tuple(dev["mig_mode"]),
        "nvmlDeviceGetCurrentClocksEventReasons": dev["throttle_reasons"], "nvmlDeviceGetVbiosVersion": dev["vbios"],
        "nvmlDeviceGetVirtualizationMode": dev["virtualization_mode"], "nvmlDeviceGetComputeRunningProcesses": [],
        "nvmlDeviceGetTemperatureThreshold": later["temperature_slowdown"],
        "nvmlDeviceGetUtilizationRates": _Struct(gpu=later["utilization_gpu"], memory=0),
        "nvmlDeviceGetMaxMigDeviceCount": 7,  # an H200 holds up to 7 MIG devices (NVIDIA's MIG user guide)
    }
    for name, value in answers.items():
        setattr(m, name, lambda *_, v=value: v)
    m.nvmlDeviceGetTotalEccErrors = lambda h, kind, scope: errors[(kind, scope)]
    m.nvmlDeviceGetClockInfo = lambda h, kind: {real.NVML_CLOCK_SM: later["clock_sm_mhz"], real.NVML_CLOCK_MEM: later["clock_mem_mhz"]}[kind]

    def no_mig_device(*_):  # MIG is off: no MIG device behind any slot
        raise NVMLError(6)  # NVML_ERROR_NOT_FOUND

    m.nvmlDeviceGetMigDeviceHandleByIndex = no_mig_device
    for name in ("nvmlDeviceGetRetiredPages", "nvmlDeviceGetRetiredPagesPendingStatus"):  # Hopper retires no pages: remaps rows
        setattr(m, name, unsupported)

    def fabric(device, info):  # nvidia-ml-py's signature: the caller passes the structure to fill
        info._obj.state = 3
        return real.NVML_SUCCESS

    m.nvmlDeviceGetGpuFabricInfo = fabric
    return m


def test_nvml_worker_gives_the_real_runs_shape_from_the_captures_values(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", nvml_from_capture())
    answer = nvml_probe.collect()
    ours, captured, real = answer["devices"][0], CAPTURE["devices"][0], REAL_RUN["devices"][0]
    # every field the worker gave on the real H200, each with the value the fake was given for it
    expected = {field: captured.get(field, value) for field, value in real.items()}
    expected.update(pci={"busId": "00000000:00:06.0", "pciDeviceId": 0x233510DE, "pciSubSystemId": 0},
                    fabric_state=3)  # NVML_GPU_FABRIC_STATE_COMPLETED, read from the structure the call filled
    assert {field: ours.get(field, "missing") for field in real} == expected
    assert expected["retired_pages_pending"] == {"error": "NVMLError_NotSupported: Not Supported"}
    assert (answer["driver_version"], answer["device_count"], answer["cuda_driver_version"]) == ("580.159.04", 1, 13000)


def test_nvml_worker_reports_a_failed_init(monkeypatch):
    fake = nvml_from_capture()

    def init():
        raise fake.NVMLError(12)

    fake.nvmlInit = init
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert nvml_probe.collect()["error"]["code"] == 12
