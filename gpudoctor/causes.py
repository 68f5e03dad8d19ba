"""Why CUDA cannot start here, from what the other checks already know.

A framework that sees no GPU says little (PyTorch: False; JAX: "a CUDA-enabled jaxlib is not
installed", which the H200 capture shows to be wrong when CUDA_VISIBLE_DEVICES is empty). The
cause is usually in evidence gpudoctor already holds: a variable that hides the GPUs, a driver
too old for the framework's CUDA, an NVSwitch fabric without its manager (error 802), MIG without
instances, no /dev/nvidia-uvm, or UVM left broken by a suspend (error 999). The framework checks
name the first such cause and its fix instead of a generic menu.
"""

from __future__ import annotations

import re

from gpudoctor import compat, fixes
from gpudoctor.context import container_kind, gpuless_place, request_gpus
from gpudoctor.gpus import driver_cuda as _driver_cuda
from gpudoctor.gpus import gpu_devices, nvswitch_count

# The facts blockers() reads: a framework check that uses them all passes its own arguments on.
FACTS = ("driver", "nvml", "nvidia_smi", "environment", "pci", "services", "devices", "os", "container", "cuda_libraries")
UNKNOWN_ERROR = re.compile(r"CUDA unknown error|CUDA_ERROR_UNKNOWN|error 999|cudaErrorUnknown", re.I)


def blockers(facts: dict, runtime_cuda: str | None = None, message: str = "", loaded: list | None = None) -> list[tuple[str, str]]:
    """(cause, fix) for each known reason CUDA cannot start, the most specific first."""
    env = facts.get("environment") or {}
    nvml, smi = facts.get("nvml"), facts.get("nvidia_smi")
    devices = [d for d in gpu_devices(nvml, smi) if not d.get("error")]
    found = []
    place = gpuless_place(facts.get("container"), env, facts.get("devices"))
    if place:
        found.append((f"{place} was started without the GPUs", request_gpus(facts.get("container"), env) or "ls -l /dev/nvidia*"))
    cache = (facts.get("cuda_libraries") or {}).get("cache")
    no_libcuda = (cache is not None and "libcuda.so.1" not in cache) or \
        (loaded is not None and not any("/libcuda.so" in path for path in loaded))
    if container_kind(facts.get("container")) and not place and no_libcuda:
        capabilities = env.get("NVIDIA_DRIVER_CAPABILITIES")
        found.append((f"this container has the GPUs but no libcuda.so.1: the NVIDIA runtime mounts the driver's CUDA library only "
                      f"with the 'compute' capability (NVIDIA_DRIVER_CAPABILITIES={capabilities or 'unset, so utility only'})",
                      "# start the container with -e NVIDIA_DRIVER_CAPABILITIES=compute,utility (Compose: under environment:)"))
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        found.append((f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU", "unset CUDA_VISIBLE_DEVICES   # see gpu.visible_devices"))
    elif visible is not None and devices:
        first = visible.split(",")[0].strip()
        if first.isdigit() and int(first) >= len(devices):
            found.append((f"CUDA_VISIBLE_DEVICES={visible} names GPU {first}, which does not exist",
                          f"export CUDA_VISIBLE_DEVICES={','.join(str(d['index']) for d in devices)}   # see gpu.visible_devices"))
    driver_cuda = _driver_cuda(nvml, smi)
    if runtime_cuda and driver_cuda and not compat.runtime_runs_on(runtime_cuda, driver_cuda):
        found.append((f"the driver runs CUDA {driver_cuda}, older than the CUDA {runtime_cuda} this build needs",
                      f"# upgrade the driver to >= {compat.minimum_driver(runtime_cuda)}, or install a build for CUDA {driver_cuda} "
                      "(see cuda.driver_runtime)"))
    fabric = _fabric(facts, devices)
    if fabric:
        found.append(fabric)
    empty_mig = [d for d in devices if isinstance(d.get("mig_mode"), list) and d["mig_mode"][0] == 1 and d.get("mig_devices") == 0]
    if empty_mig:
        found.append((f"MIG is on for {empty_mig[0]['label']} with no GPU instances", "# create instances or turn MIG off (see gpu.mig)"))
    nodes = ((facts.get("devices") or {}).get("nodes") or {})
    if nodes and not nodes.get("/dev/nvidia-uvm"):
        found.append(("/dev/nvidia-uvm is missing (nvidia_uvm not loaded)", "sudo modprobe nvidia_uvm && sudo nvidia-modprobe -c 0 -u"))
    elif UNKNOWN_ERROR.search(message or ""):
        found.append(("CUDA reports an unknown error (999) with nvidia_uvm loaded: UVM is left in a bad state, "
                      "typically after a suspend and resume",
                      "sudo fuser -v /dev/nvidia-uvm   # processes that hold it; stop them first\n"
                      "sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm   # or reboot"))
    return found


def fabric_down(pci: dict | None, services: dict | None, devices: list[dict]) -> bool:
    """NVSwitches (or GPUs waiting for their fabric) and neither the fabric manager running nor every GPU's fabric up."""
    states = [d["fabric_state"] for d in devices if isinstance(d.get("fabric_state"), int)]
    manager = ((services or {}).get("states") or {}).get("nvidia-fabricmanager")
    up = manager == "active" or (bool(states) and all(s == 3 for s in states))
    return bool(nvswitch_count(pci) or any(s in (1, 2) for s in states)) and not up


def _fabric(facts: dict, devices: list[dict]) -> tuple[str, str] | None:
    """NVSwitch boards whose fabric is not up: CUDA fails with 'system not yet initialized' (802)."""
    if not fabric_down(facts.get("pci"), facts.get("services"), devices):
        return None
    manager = (((facts.get("services") or {}).get("states") or {}).get("nvidia-fabricmanager"))
    version = (facts.get("driver") or {}).get("version") or ""
    return (f"the NVSwitch fabric is not up (nvidia-fabricmanager is {manager or 'not running'}): "
            "CUDA fails with 'system not yet initialized' (802)",
            fixes.install_fabric_manager(facts.get("os"), version.split(".")[0]) + "   # see driver.fabric_manager")
