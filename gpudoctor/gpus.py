"""One list of GPUs from two sources: NVML, else `nvidia-smi -q -x` (an any-of combiner).

Both sources give the same per-GPU keys (see nvml_probe and parsers.parse_smi_xml); here
unsupported fields become None, and each GPU gets its index, bus id and a label.
"""

from __future__ import annotations

import re

from gpudoctor import kb
from gpudoctor.compat import cuda_of_driver
from gpudoctor.novalue import known, reasons
from gpudoctor.plugin import Skip, combiner

NO_MODULE = "no NVIDIA kernel module is loaded (see driver.loaded)"


def no_driver(driver: dict | None, nvml: dict | None) -> bool:
    """True when neither the kernel (/proc, /sys) nor NVML shows an NVIDIA driver.

    Sandboxed runtimes can hide /proc/driver/nvidia while NVML works; NVML's answer is
    then proof enough that a driver is loaded. Unknown driver facts are not "no driver".
    """
    if driver is None or driver.get("loaded"):
        return False
    return not (nvml or {}).get("driver_version")


def driver_cuda(nvml: dict | None, nvidia_smi: dict | None) -> str | None:
    """The newest CUDA the driver runs ('13.0'), from NVML or else nvidia-smi."""
    return cuda_of_driver((nvml or {}).get("cuda_driver_version")) or ((nvidia_smi or {}).get("parsed") or {}).get("cuda_version")


def capabilities(nvml: dict | None, nvidia_smi: dict | None) -> list[tuple[int, int]]:
    """Every GPU's compute capability that is known."""
    return [d["cc"] for d in gpu_devices(nvml, nvidia_smi) if d.get("cc")]


def capability_of(name: str | None) -> tuple[int, int] | None:
    """A GPU's compute capability from its product name, where NVML did not report it."""
    for row in kb.load("gpus")["patterns"]:
        if name and re.search(row["match"], name):
            major, minor = row["cc"].split(".")
            return int(major), int(minor)
    return None


def bus_id(raw: str | None) -> str:
    """'00000000:00:06.0' (NVML) and '0000:00:06.0' (sysfs) to one lower-case form; '' where unknown."""
    raw = raw.lower() if isinstance(raw, str) else ""
    return raw[4:] if len(raw.split(":")[0]) == 8 else raw


def gpu_devices(nvml: dict | None, nvidia_smi: dict | None) -> list[dict]:
    """Every GPU from NVML, else from nvidia-smi's XML, with unsupported fields as None."""
    source = nvml if nvml and not nvml.get("error") else (nvidia_smi or {}).get("parsed") or {}
    devices = []
    for position, raw in enumerate(source.get("devices") or []):
        device = {"index": position, **{key: known(value) for key, value in raw.items()}}
        device["no_value"] = reasons(raw)
        cc = device.get("cuda_compute_capability")
        device["cc"] = tuple(cc) if cc else capability_of(device.get("name"))
        device["bus"] = bus_id((device.get("pci") or {}).get("busId"))
        device["label"] = f"GPU{device.get('index')}" + (f" ({device['bus']})" if device["bus"] else "")
        devices.append(device)
    return devices


def nvswitch_count(pci: dict | None) -> int | None:
    switches = (pci or {}).get("nvswitches")
    return None if switches is None else len(switches)


def answering_gpus(driver, nvml, nvidia_smi) -> list[dict]:
    """The GPUs to judge; skips the check, saying why, when there are none."""
    if no_driver(driver, nvml):
        raise Skip(NO_MODULE)
    devices = [d for d in gpu_devices(nvml, nvidia_smi) if not d.get("error")]
    if not devices:
        raise Skip("no GPU answered NVML or nvidia-smi (see driver.nvidia_smi)")
    return devices


@combiner("gpus", uses=("driver", "nvml", "nvidia_smi"))
def gpus(driver, nvml, nvidia_smi) -> dict:
    """The GPUs, computed once for every check: NVML first, nvidia-smi's XML where NVML has no answer.

    Without a driver there are none to judge: checks that need `gpus` then skip, saying so once here."""
    if no_driver(driver, nvml):
        raise Skip(NO_MODULE)
    devices = gpu_devices(nvml, nvidia_smi)
    source = "nvml" if nvml and not nvml.get("error") else "nvidia-smi"
    return {"source": source, "devices": devices, "driver_cuda": driver_cuda(nvml, nvidia_smi),
            "capabilities": [d["cc"] for d in devices if d.get("cc")]}


def answering(gpus: dict) -> list[dict]:
    """The GPUs that answered; skips the check, saying why, when none did."""
    devices = [d for d in gpus["devices"] if not d.get("error")]
    if not devices:
        raise Skip("no GPU answered NVML or nvidia-smi (see driver.nvidia_smi)")
    return devices
