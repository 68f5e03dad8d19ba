"""NVML worker: `python -m gpudoctor.nvml_probe` prints every NVML value the checks need.

It runs in its own process so that the caller can kill it when NVML hangs on a GPU that
fell off the bus. Each field is read on its own: a field NVML does not support on this
GPU becomes `{"error": ...}` and never hides the others. The output keys follow the
H200 capture (`tests/fixtures/h200-2026-11-26/nvml-and-driver.json`), so real captures
replay without translation.
"""

from __future__ import annotations

import json
import os
import re
import sys


def _err(exc: Exception) -> dict:
    return {"error": f"{type(exc).__name__}: {exc}"}


def _get(func, *args):
    try:
        value = func(*args)
    except Exception as exc:  # NVMLError subclasses, and ctypes trouble on old drivers
        return _err(exc)
    return _str(value)


def _pci(info) -> dict:
    """Bus id and PCI device id (`0x233510DE`: device 0x2335, vendor 0x10DE), the key to the chip.

    nvidia-ml-py 12 gives `busId` as bytes, 13 as str (seen on the H200: `.decode()` failed there)."""
    return {"busId": _get(lambda: _str(info.busId)), "pciDeviceId": _get(lambda: info.pciDeviceId),
            "pciSubSystemId": _get(lambda: info.pciSubSystemId)}


def _str(value):
    return value.decode() if isinstance(value, bytes) else value


def _fabric(nvml, handle):
    """The GPU's NVLink fabric registration (state, status): the call fills a structure it is given."""
    import ctypes

    info = nvml.c_nvmlGpuFabricInfo_t()
    nvml.nvmlDeviceGetGpuFabricInfo(handle, ctypes.byref(info))
    return info


def _library() -> dict:
    """Path and version of the libnvidia-ml this process mapped (mismatch diagnosis)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "libnvidia-ml.so" in line}
    except OSError:
        return {}
    for path in sorted(paths):
        real = os.path.realpath(path)
        match = re.search(r"libnvidia-ml\.so\.(\d+\.\d+(?:\.\d+)?)$", real)
        return {"library_path": real, "library_version": match.group(1) if match else None}
    return {}


def _processes(nvml, handle) -> list:
    procs = []
    for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
        try:
            with open(f"/proc/{proc.pid}/comm", encoding="utf-8", errors="replace") as comm:
                name = comm.read().strip()
        except OSError:
            name = None
        procs.append({"pid": proc.pid, "used_memory": proc.usedGpuMemory, "name": name})
    return procs


def _mig_count(nvml, handle) -> int:
    """MIG devices that exist on the GPU (a GPU in MIG mode with none gives CUDA no device)."""
    count = 0
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError:
            continue
        count += 1
    return count


def _device(nvml, index: int) -> dict:
    h = nvml.nvmlDeviceGetHandleByIndex(index)
    pci = _get(nvml.nvmlDeviceGetPciInfo, h)
    memory = _get(nvml.nvmlDeviceGetMemoryInfo, h)
    fabric = _get(_fabric, nvml, h)
    return {
        "index": index,
        "name": _get(nvml.nvmlDeviceGetName, h),
        "uuid": _get(nvml.nvmlDeviceGetUUID, h),
        "minor_number": _get(nvml.nvmlDeviceGetMinorNumber, h),
        "pci": pci if isinstance(pci, dict) else _pci(pci),
        "brand": _get(nvml.nvmlDeviceGetBrand, h),
        "architecture": _get(nvml.nvmlDeviceGetArchitecture, h),
        "cuda_compute_capability": _get(lambda: list(nvml.nvmlDeviceGetCudaComputeCapability(h))),
        "memory": memory if isinstance(memory, dict) else {"total": memory.total, "used": memory.used, "free": memory.free},
        "temperature_gpu": _get(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU),
        "temperature_slowdown": _get(nvml.nvmlDeviceGetTemperatureThreshold, h, nvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN),
        "power_usage_mw": _get(nvml.nvmlDeviceGetPowerUsage, h),
        "power_limit_mw": _get(nvml.nvmlDeviceGetEnforcedPowerLimit, h),
        "power_default_limit_mw": _get(nvml.nvmlDeviceGetPowerManagementDefaultLimit, h),
        "performance_state": _get(nvml.nvmlDeviceGetPerformanceState, h),
        "utilization_gpu": _get(lambda: nvml.nvmlDeviceGetUtilizationRates(h).gpu),
        "clock_sm_mhz": _get(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM),
        "clock_mem_mhz": _get(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_MEM),
        "pcie_gen_cur": _get(nvml.nvmlDeviceGetCurrPcieLinkGeneration, h),
        "pcie_gen_max": _get(nvml.nvmlDeviceGetMaxPcieLinkGeneration, h),
        "pcie_gen_gpu_max": _get(nvml.nvmlDeviceGetGpuMaxPcieLinkGeneration, h),
        "pcie_width_cur": _get(nvml.nvmlDeviceGetCurrPcieLinkWidth, h),
        "pcie_width_max": _get(nvml.nvmlDeviceGetMaxPcieLinkWidth, h),
        "persistence_mode": _get(nvml.nvmlDeviceGetPersistenceMode, h),
        "compute_mode": _get(nvml.nvmlDeviceGetComputeMode, h),
        "ecc_mode": _get(lambda: list(nvml.nvmlDeviceGetEccMode(h))),
        "ecc_uncorrected_volatile": _get(nvml.nvmlDeviceGetTotalEccErrors, h, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC),
        "ecc_uncorrected_aggregate": _get(nvml.nvmlDeviceGetTotalEccErrors, h, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_AGGREGATE_ECC),
        "ecc_corrected_aggregate": _get(nvml.nvmlDeviceGetTotalEccErrors, h, nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_AGGREGATE_ECC),
        "retired_pages_dbe": _get(lambda: len(nvml.nvmlDeviceGetRetiredPages(h, nvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR))),
        "retired_pages_pending": _get(nvml.nvmlDeviceGetRetiredPagesPendingStatus, h),
        "remapped_rows": _get(lambda: list(nvml.nvmlDeviceGetRemappedRows(h))),
        "mig_mode": _get(lambda: list(nvml.nvmlDeviceGetMigMode(h))),
        "mig_devices": _get(_mig_count, nvml, h),
        "throttle_reasons": _get(nvml.nvmlDeviceGetCurrentClocksEventReasons, h),
        "vbios": _get(nvml.nvmlDeviceGetVbiosVersion, h),
        "virtualization_mode": _get(nvml.nvmlDeviceGetVirtualizationMode, h),
        "fabric_state": fabric if isinstance(fabric, dict) else _get(lambda: fabric.state),
        "fabric_status": fabric if isinstance(fabric, dict) else _get(lambda: fabric.status),
        "processes": _get(_processes, nvml, h),
    }


def collect() -> dict:
    try:
        import pynvml as nvml
    except ImportError as exc:
        return {"error": {"name": "ImportError", "code": None, "message": str(exc)}}
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        name = type(exc).__name__
        return {"error": {"name": name, "code": exc.value, "message": str(exc)}, **_library()}
    try:
        count = nvml.nvmlDeviceGetCount()
        devices = []
        for index in range(count):
            try:
                devices.append(_device(nvml, index))
            except nvml.NVMLError as exc:  # the handle itself: a lost or inaccessible GPU
                devices.append({"index": index, "error": f"{type(exc).__name__}: {exc}", "code": exc.value})
        return {
            "driver_version": _get(nvml.nvmlSystemGetDriverVersion),
            "nvml_version": _get(nvml.nvmlSystemGetNVMLVersion),
            "cuda_driver_version": _get(nvml.nvmlSystemGetCudaDriverVersion_v2),
            "device_count": count,
            "devices": devices,
            **_library(),
        }
    finally:
        _get(nvml.nvmlShutdown)


if __name__ == "__main__":
    json.dump(collect(), sys.stdout)
