"""One list of GPUs from two sources: NVML, else `nvidia-smi -q -x` (an any-of combiner).

Both sources give the same per-GPU keys (see nvml_probe and parsers.parse_smi_xml); here
unsupported fields become None, and each GPU gets its index, bus id and a label.
"""

from __future__ import annotations

import re

from gpudoctor import kb
from gpudoctor.compat import cuda_of_driver, cuda_of_driver_version
from gpudoctor.novalue import known, reasons
from gpudoctor.plugin import Skip, combiner

NO_MODULE = "no NVIDIA kernel module is loaded (see driver.loaded)"
COMPUTE_MODES = {0: "Default", 1: "Exclusive_Thread", 2: "Prohibited", 3: "Exclusive_Process"}  # NVML's nvmlComputeMode_t


def smi_ids(devices: list[dict]) -> list[str]:
    """How `nvidia-smi -i` names each GPU: its UUID, which no reordering changes, else its index."""
    return [d.get("uuid") or str(d["index"]) for d in devices]


def compute_mode_fix(devices: list[dict], mode: str) -> str:
    """Set these GPUs to `mode`; it does not outlast the driver letting go of a GPU."""
    return ("\n".join(f"sudo nvidia-smi -i {gpu} -c {mode.upper()}" for gpu in smi_ids(devices))
            + "\n# the mode reverts when the driver lets go of the GPU (NVIDIA's Driver Persistence guide): "
              "keep nvidia-persistenced running, and set it at boot")


def no_driver(driver: dict | None, nvml: dict | None) -> bool:
    """True when neither the kernel (/proc, /sys) nor NVML shows an NVIDIA driver.

    Sandboxed runtimes can hide /proc/driver/nvidia while NVML works; NVML's answer is
    then proof enough that a driver is loaded. Unknown driver facts are not "no driver".
    """
    if driver is None or driver.get("loaded"):
        return False
    return not (nvml or {}).get("driver_version")


def driver_cuda(nvml: dict | None, nvidia_smi: dict | None) -> str | None:
    """The newest CUDA the driver runs ('13.0'), from NVML, else nvidia-smi, else NVIDIA's table of the driver's version
    (old drivers' XML has no <cuda_version>, or says "Not Found")."""
    parsed = (nvidia_smi or {}).get("parsed") or {}
    return (cuda_of_driver((nvml or {}).get("cuda_driver_version")) or parsed.get("cuda_version")
            or cuda_of_driver_version((nvml or {}).get("driver_version") or parsed.get("driver_version")))


def capabilities(nvml: dict | None, nvidia_smi: dict | None) -> list[tuple[int, int]]:
    """Every GPU's compute capability that is known."""
    return [d["cc"] for d in gpu_devices(nvml, nvidia_smi) if d.get("cc")]


def capability_of(name: str | None, chip: str | None = None) -> tuple[int, int] | None:
    """A GPU's compute capability where NVML did not report it: from its chip (named by the PCI device id), else its name."""
    for row, text in [(r, chip) for r in kb.load("pci_ids")["chips"]] + [(r, name) for r in kb.load("gpus")["patterns"]]:
        if text and re.search(row["match"], text):
            major, minor = row["cc"].split(".")
            return int(major), int(minor)
    return None


def chip_of(pci_device_id) -> str | None:
    """'GP107M [GeForce GTX 1050 Mobile]' for NVML's pciDeviceId 0x1C8D10DE, from the PCI ID Repository."""
    if not isinstance(pci_device_id, int) or pci_device_id & 0xFFFF != 0x10DE:
        return None
    return kb.load("pci_ids")["devices"].get(f"{pci_device_id >> 16:04x}")


# mobile parts: a chip code ending in M (GP107M, GA106M...), or a name that says so; "Max-Q" alone is not one
# (NVIDIA sells RTX PRO 6000 Blackwell Max-Q workstation cards)
_MOBILE = re.compile(r"^[A-Z]{2}\d{3}[A-Z]*M\b|\b(Mobile|Laptop GPU|Laptop)\b")


def is_mobile(name: str | None, chip: str | None) -> bool:
    return any(text and _MOBILE.search(text) for text in (chip, name))


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
        device["chip"] = chip_of((device.get("pci") or {}).get("pciDeviceId"))
        device["cc"] = tuple(cc) if cc else capability_of(device.get("name"), device["chip"])
        device["mobile"] = is_mobile(device.get("name"), device["chip"])
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
    return answering({"devices": gpu_devices(nvml, nvidia_smi)})


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
