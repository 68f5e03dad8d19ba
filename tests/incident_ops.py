"""Changes to real evidence that an incident is about, each made consistently wherever its fact appears.

An incident (tests/incidents/*.json) names a base capture and a list of operations. Each operation
changes one fact of the machine in every place gpudoctor reads it: a driver version lands in
/proc/driver/nvidia/version, /sys/module/nvidia/version, NVML and the nvidia-smi XML; a GPU model in
NVML, the XML and /proc/driver/nvidia/gpus; a missing driver removes the module's files, NVML's
answer, the device nodes and nvidia-smi's output together. Raw operations (command, file, listdir,
stat) cover the rest, for facts that live in one place only.
"""

from __future__ import annotations

import json
import re
from typing import Callable

from evidence_helpers import gpu_on_bus

from gpudoctor.evidence import Evidence, command_key

OPS: dict[str, Callable] = {}
NO_DRIVER_SMI = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
                 "NVIDIA driver is installed and running.\n")


def op(name: str):
    def register(func):
        OPS[name] = func
        return func
    return register


def apply(evidence: Evidence, operations: list[dict]) -> Evidence:
    for change in operations:
        name = change["op"]
        if name not in OPS:
            raise ValueError(f"unknown incident operation {name!r}")
        OPS[name](evidence, **{k: v for k, v in change.items() if k not in ("op", "why")})
    return evidence


# raw answers ------------------------------------------------------------------------------------
@op("command")
def command(ev, argv: str, rc=0, stdout="", stderr="", error=None, duration_s=0.1):
    ev.data["commands"][command_key(argv.split())] = {"rc": rc, "stdout": stdout, "stderr": stderr, "error": error,
                                                      "duration_s": duration_s}


@op("file")
def file(ev, path: str, text: str | None = None, error: str | None = None):
    ev.data["files"][path] = {"text": text} if text is not None else {"error": error or "absent"}


@op("listdir")
def listdir(ev, path: str, entries: list | None):
    ev.data["listdirs"][path] = entries


@op("stat")
def stat(ev, path: str, absent: bool = False, **info):
    base = {"mode": "0o666", "kind": "char", "uid": 0, "gid": 0, "group": "root", "readable": True, "writable": True,
            "major": None, "minor": None}
    ev.data["stats"][path] = None if absent else {**base, **info}


@op("which")
def which(ev, name: str, path: str | None):
    ev.data.setdefault("which", {})[name] = path


@op("disk_usage")
def disk_usage(ev, path: str, total: int, free: int):
    """statvfs of a mount: /dev/shm's size, free space on /."""
    ev.data["disk_usage"][path] = {"total": total, "free": free}


@op("nvml_error")
def nvml_error(ev, name: str, code: int, message: str):
    """NVML's initialisation failing with this error (nvmlInit's NVMLError: name, its nvmlReturn_t code, its message)."""
    ev.data["nvml"] = {"error": {"name": name, "code": code, "message": message}}


@op("env")
def env(ev, set: dict | None = None, unset: list | None = None):
    for key, value in (set or {}).items():
        ev.data["env"][key] = value
    for key in unset or []:
        ev.data["env"].pop(key, None)


@op("kernel_log")
def kernel_log(ev, text: str, replace: bool = False):
    """Lines of the kernel log (dmesg), appended to what the capture's log said, or instead of it."""
    key = command_key(["dmesg"])
    before = "" if replace else (ev.data["commands"].get(key) or {}).get("stdout", "")
    ev.data["commands"][key] = {"rc": 0, "stdout": before + ("" if not before or before.endswith("\n") else "\n") + text,
                                "stderr": "", "error": None, "duration_s": 0.05}


@op("services")
def services(ev, **states):
    """systemd's answer for the persistence daemon and the fabric manager (systemctl is-active prints one per line)."""
    names = ("nvidia-persistenced", "nvidia-fabricmanager")
    lines = [states.get(name.replace("-", "_"), states.get(name, "inactive")) for name in names]
    command(ev, "systemctl is-active " + " ".join(names), rc=0 if all(s == "active" for s in lines) else 3,
            stdout="\n".join(lines) + "\n")


# the driver -------------------------------------------------------------------------------------
def _xml(ev) -> str | None:
    return (ev.data["commands"].get(command_key(["nvidia-smi", "-q", "-x"])) or {}).get("stdout")


def _set_xml(ev, text: str) -> None:
    ev.data["commands"][command_key(["nvidia-smi", "-q", "-x"])]["stdout"] = text


def _gpu_dirs(ev) -> list[str]:
    return ev.data["listdirs"].get("/proc/driver/nvidia/gpus") or []


@op("driver")
def driver(ev, version: str, open: bool = True, cuda: str | None = None):
    """The loaded driver's version and flavour everywhere: /proc, /sys, NVML and nvidia-smi's XML."""
    flavour = "Open Kernel Module for x86_64" if open else "x86_64 Kernel Module"
    file(ev, "/proc/driver/nvidia/version",
         f"NVRM version: NVIDIA UNIX {flavour}  {version}  Release Build  (dvs-builder@U22-I3-AE18-23-3)  Mon Sep  1 00:00:00 UTC 2025\n"
         "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04) \n")
    file(ev, "/sys/module/nvidia/version", version + "\n")
    nvml = ev.data.get("nvml") or {}
    if "driver_version" in nvml:
        nvml["driver_version"] = version
        nvml["nvml_version"] = f"{(cuda or '13.0').split('.')[0]}.{version}"
        if cuda:
            major, minor = cuda.split(".")
            nvml["cuda_driver_version"] = int(major) * 1000 + int(minor) * 10
            nvml["cuda_driver_version_v2"] = nvml["cuda_driver_version"]
    text = _xml(ev)
    if text:
        text = re.sub(r"<driver_version>[^<]*</driver_version>", f"<driver_version>{version}</driver_version>", text)
        if cuda:
            text = re.sub(r"<cuda_version>[^<]*</cuda_version>", f"<cuda_version>{cuda}</cuda_version>", text)
        _set_xml(ev, text)


@op("no_driver")
def no_driver(ev, nvidia_smi: str = "installed"):
    """No kernel module: its /proc and /sys files, the device nodes and NVML's answer go; nvidia-smi, where its user
    space is installed, says it cannot communicate with the driver (exit 9); else it is not found."""
    for path in list(ev.data["files"]):
        if path.startswith("/proc/driver/nvidia") or path.startswith("/sys/module/nvidia"):
            del ev.data["files"][path]
    file(ev, "/proc/driver/nvidia/version", error="absent")
    file(ev, "/sys/module/nvidia/version", error="absent")
    for path in [p for p in ev.data["listdirs"] if p.startswith("/proc/driver/nvidia")]:
        ev.data["listdirs"][path] = None
    ev.data["listdirs"]["/proc/driver/nvidia/gpus"] = None
    ev.data["listdirs"]["/dev"] = [n for n in ev.data["listdirs"].get("/dev") or [] if not n.startswith("nvidia")]
    for path in [p for p in ev.data["stats"] if p.startswith("/dev/nvidia")]:
        ev.data["stats"][path] = None
    if nvidia_smi == "installed":
        ev.data["nvml"] = {"error": {"name": "NVMLError_DriverNotLoaded", "code": 9, "message": "Driver Not Loaded"}}
        command(ev, "nvidia-smi -q -x", rc=9, stdout=NO_DRIVER_SMI)
        command(ev, "nvidia-smi topo -p2p r", rc=9, stdout=NO_DRIVER_SMI)
    else:
        ev.data["nvml"] = {"error": {"name": "NVMLError_LibraryNotFound", "code": 12, "message": "NVML Shared Library Not Found"}}
        command(ev, "nvidia-smi -q -x", rc=None, error="command not found")
        command(ev, "nvidia-smi topo -p2p r", rc=None, error="command not found")
    modules = (ev.data["files"].get("/proc/modules") or {}).get("text")
    if modules:
        file(ev, "/proc/modules", "".join(line + "\n" for line in modules.splitlines() if not line.startswith("nvidia")))


@op("module_on_disk")
def module_on_disk(ev, version: str | None = None, error: str = "modinfo: ERROR: Module nvidia not found."):
    """What `modinfo -F version nvidia` says: the module built for the running kernel, or that there is none."""
    if version:
        command(ev, "modinfo -F version nvidia", rc=0, stdout=version + "\n")
    else:
        command(ev, "modinfo -F version nvidia", rc=1, stderr=error + "\n")


@op("dkms")
def dkms(ev, modules: list, headers: dict):
    """DKMS's modules and which kernels have their headers (/lib/modules/KERNEL/build)."""
    listdir(ev, "/var/lib/dkms", modules)
    listdir(ev, "/lib/modules", sorted(headers))
    for kernel, present in headers.items():
        stat(ev, f"/lib/modules/{kernel}/build", absent=not present, kind="dir")


@op("secure_boot")
def secure_boot(ev, enabled: bool):
    stat(ev, "/sys/firmware/efi", kind="dir")
    file(ev, "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c", "\x06\x00\x00\x00" + ("\x01" if enabled else "\x00"))


# GPUs -------------------------------------------------------------------------------------------
_XML_FIELDS = {
    "temperature_gpu": ("temperature/gpu_temp", "{} C"),
    "pcie_width_cur": ("pci/pci_gpu_link_info/link_widths/current_link_width", "{}x"),
    "pcie_width_max": ("pci/pci_gpu_link_info/link_widths/max_link_width", "{}x"),
    "pcie_gen_cur": ("pci/pci_gpu_link_info/pcie_gen/current_link_gen", "{}"),
    "pcie_gen_max": ("pci/pci_gpu_link_info/pcie_gen/max_link_gen", "{}"),
}
_REASONS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
            0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown"}


def _xml_gpu_set(text: str, index: int, path: str, value: str) -> str:
    """Replace one element's text inside the index-th <gpu> of nvidia-smi's XML."""
    starts = [m.start() for m in re.finditer(r"<gpu id=", text)]
    if index >= len(starts):
        return text
    end = starts[index + 1] if index + 1 < len(starts) else len(text)
    block = text[starts[index]:end]
    leaf = path.split("/")[-1]
    block = re.sub(rf"<{leaf}>[^<]*</{leaf}>", f"<{leaf}>{value}</{leaf}>", block, count=1)
    return text[:starts[index]] + block + text[end:]


@op("gpu")
def gpu(ev, index: int = 0, name: str | None = None, cc: list | None = None, **fields):
    """One GPU's facts, in NVML, nvidia-smi's XML (the fields both carry) and /proc/driver/nvidia/gpus/*/information."""
    devices = (ev.data.get("nvml") or {}).get("devices") or []
    device = devices[index] if index < len(devices) else None
    if device is not None:
        if name:
            device["name"] = name
        if cc:
            device["cuda_compute_capability"] = list(cc)
        device.update(fields)
    text = _xml(ev)
    if text:
        if name:
            text = _xml_gpu_set(text, index, "product_name", name)
        for key, value in fields.items():
            if key in _XML_FIELDS:
                text = _xml_gpu_set(text, index, _XML_FIELDS[key][0], _XML_FIELDS[key][1].format(value))
            elif key == "throttle_reasons":
                for bit, reason in _REASONS.items():
                    text = _xml_gpu_set(text, index, f"clocks_event_reason_{reason}", "Active" if value & bit else "Not Active")
            elif key == "mig_mode":
                text = _xml_gpu_set(text, index, "current_mig", "Enabled" if value[0] else "Disabled")
                text = _xml_gpu_set(text, index, "pending_mig", "Enabled" if value[1] else "Disabled")
        _set_xml(ev, text)
    if name:
        for bus in _gpu_dirs(ev)[index:index + 1]:
            path = f"/proc/driver/nvidia/gpus/{bus}/information"
            old = (ev.data["files"].get(path) or {}).get("text")
            if old:
                file(ev, path, re.sub(r"^Model:.*$", f"Model: \t\t {name}", old, flags=re.M))
    for key, probe in ((k, v) for k, v in ev.data["probes"].items() if k.endswith(" torch")):
        facts = _probe_facts(ev, key)
        if facts and cc and isinstance((facts.get("capabilities") or {}).get("value"), list):
            caps = facts["capabilities"]["value"]
            if index < len(caps):
                caps[index] = list(cc)
                _set_probe_facts(ev, key, facts)


@op("gpu_on_bus")
def pci_gpu(ev, bdf: str = "0000:00:06.0", device: str = "0x2335"):
    gpu_on_bus(ev, bdf, device)


@op("nvswitches")
def nvswitches(ev, count: int):
    """NVSwitch bridges on the PCI bus (class 0x0680), as an HGX baseboard shows them."""
    entries = list(ev.data["listdirs"].get("/sys/bus/pci/devices") or [])
    for n in range(count):
        bdf = f"0000:{0x80 + n:02x}:00.0"
        entries.append(bdf)
        file(ev, f"/sys/bus/pci/devices/{bdf}/vendor", "0x10de\n")
        file(ev, f"/sys/bus/pci/devices/{bdf}/class", "0x068000\n")
    for bus in _gpu_dirs(ev):
        entries.append(bus)
        file(ev, f"/sys/bus/pci/devices/{bus}/vendor", "0x10de\n")
        file(ev, f"/sys/bus/pci/devices/{bus}/class", "0x030200\n")
    listdir(ev, "/sys/bus/pci/devices", sorted(set(entries)))


# containers -------------------------------------------------------------------------------------
@op("container")
def container(ev, kind: str):
    """Which container markers exist: docker, podman, kubernetes, or none."""
    stat(ev, "/.dockerenv", absent=kind != "docker", kind="file")
    stat(ev, "/run/.containerenv", absent=kind != "podman", kind="file")
    stat(ev, "/dev/dxg", absent=True)
    file(ev, "/proc/1/cgroup", "0::/kubepods/burstable/pod1234/abcd\n" if kind == "kubernetes" else "0::/\n")
    if kind == "kubernetes":
        ev.data["env"]["KUBERNETES_SERVICE_HOST"] = "10.96.0.1"


# interpreters and their probes ------------------------------------------------------------------
def _probe_key(ev, what: str, python: str | None) -> str:
    keys = [k for k in ev.data["probes"] if k.endswith(f" {what}") and (python is None or k.startswith(python + " "))]
    if keys:
        return keys[0]
    if python is None:
        python = next((k.rsplit(" ", 1)[0] for k in ev.data["probes"]), None)
    return f"{python} {what}"


def _probe_facts(ev, key: str) -> dict | None:
    data = ev.data["probes"].get(key)
    if data is None:
        return None
    if "answer" in data:
        return data["answer"]
    stdout = data.get("stdout") or ""
    line = next((l for l in reversed(stdout.splitlines()) if l.startswith("GPUDOCTOR-PROBE ")), None)
    try:
        return json.loads(line[len("GPUDOCTOR-PROBE "):] if line else stdout)
    except ValueError:
        return None


def _set_probe_facts(ev, key: str, facts: dict, stderr: str | None = None) -> None:
    old = ev.data["probes"].get(key) or {}
    ev.data["probes"][key] = {"rc": 0, "stdout": "GPUDOCTOR-PROBE " + json.dumps(facts) + "\n",
                              "stderr": old.get("stderr", "") if stderr is None else stderr,
                              "duration_s": old.get("duration_s", 1.0), "error": None}


@op("probe")
def probe(ev, what: str, python: str | None = None, set: dict | None = None, answer: dict | None = None,
          stderr: str | None = None, drop: list | None = None):
    """A probe's answer: replaced whole, or some facts set (`value` facts are wrapped as the probe wraps them)."""
    key = _probe_key(ev, what, python)
    facts = answer if answer is not None else (_probe_facts(ev, key) or {})
    for name, value in (set or {}).items():
        wrapped = isinstance((facts.get(name) or None), dict) and ("value" in facts[name] or "error" in facts[name])
        facts[name] = value if isinstance(value, dict) or not wrapped else {"value": value, "s": 0.0}
    for name in drop or []:
        facts.pop(name, None)
    _set_probe_facts(ev, key, facts, stderr)


@op("import_error")
def import_error(ev, what: str, exception: str, traceback: list, python: str | None = None, stderr: str = ""):
    """Importing the framework raised: the probe's answer for an installed framework that does not import."""
    _set_probe_facts(ev, _probe_key(ev, what, python),
                     {"failed": traceback[-1] if traceback else exception, "exception": exception, "traceback_tail": traceback[-12:]},
                     stderr)


@op("probe_crash")
def probe_crash(ev, what: str, signal: str, python: str | None = None, stderr: str = ""):
    """The interpreter died on the import (SIGILL for an illegal instruction, SIGSEGV)."""
    import signal as signals

    number = getattr(signals, signal)
    ev.data["probes"][_probe_key(ev, what, python)] = {"rc": -int(number), "stdout": "", "stderr": stderr, "duration_s": 0.4,
                                                       "error": None}


@op("distributions")
def distributions(ev, add: list | None = None, remove: list | None = None, python: str | None = None, **python_facts):
    """The env probe's installed distributions (with their requirements) and interpreter facts."""
    key = _probe_key(ev, "env", python)
    facts = _probe_facts(ev, key) or {"python": {"version": "3.12.3", "executable": key.rsplit(" ", 1)[0], "venv": True,
                                                  "conda": False, "user_site": None, "path": []},
                                       "distributions": [], "modules": {}, "LD_LIBRARY_PATH": None}
    names = {d["name"] for d in add or []} | set(remove or [])
    facts["distributions"] = [d for d in facts.get("distributions") or [] if d["name"] not in names] + list(add or [])
    facts["python"].update(python_facts)
    _set_probe_facts(ev, key, facts)


@op("interpreter")
def interpreter(ev, python: str, copy_from: str | None = None):
    """Judge another interpreter (as --python does): its probes are copied from another, or start empty."""
    ev.data["options"]["python"] = [python]
    if copy_from:
        for key, value in list(ev.data["probes"].items()):
            if key.startswith(copy_from + " "):
                ev.data["probes"][python + key[len(copy_from):]] = json.loads(json.dumps(value))
