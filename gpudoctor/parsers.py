"""Pure parsers for the text that machines give: never raise on any input.

Each takes the raw text (a file or a command's output) and returns plain data; text
they cannot make sense of gives an empty or partial answer, never an exception, since
what a broken machine prints is exactly what gpudoctor must read.
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET

from gpudoctor.novalue import no_value

ARCHES = ("x86_64", "aarch64", "ppc64le", "s390x", "armv7l", "riscv64", "i686")


def parse_os_release(text: str) -> dict:
    """`/etc/os-release` as a dict of lower-cased keys.

    >>> parse_os_release('ID=debian\\nVERSION_ID="12"\\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"')["version_id"]
    '12'
    """
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        try:
            parts = shlex.split(value, posix=True)
        except ValueError:
            parts = [value.strip("\"'")]
        facts[key.lower()] = " ".join(parts)
    return facts


def os_from_release(release: dict) -> dict:
    """The `os` facts from parsed os-release keys."""
    return {
        "id": release.get("id", "").lower(),
        "version": release.get("version_id", ""),
        "codename": release.get("version_codename", ""),
        "pretty_name": release.get("pretty_name", "") or release.get("name", ""),
        "like": release.get("id_like", "").lower(),
    }


def os_from_lsb(text: str) -> dict:
    """The `os` facts from `/etc/lsb-release`, used where os-release is missing.

    >>> os_from_lsb('DISTRIB_ID=Ubuntu\\nDISTRIB_RELEASE=24.04\\nDISTRIB_CODENAME=noble')["id"]
    'ubuntu'
    """
    values = parse_os_release(text)
    distrib_id = values.get("distrib_id", "").lower()
    return {
        "id": distrib_id,
        "version": values.get("distrib_release", ""),
        "codename": values.get("distrib_codename", ""),
        "pretty_name": values.get("distrib_description", ""),
        "like": "debian" if distrib_id == "ubuntu" else "",
    }


def os_from_redhat(text: str) -> dict:
    """The `os` facts from `/etc/redhat-release`, for releases older than os-release.

    >>> os_from_redhat("CentOS release 6.10 (Final)")["version"]
    '6.10'
    """
    match = re.match(r"\s*(.+?) (?:Linux )?release (\d+(?:\.\d+)*)", text)
    if not match:
        return {"id": "", "version": "", "codename": "", "pretty_name": text.strip(), "like": ""}
    name = match.group(1).lower()
    ident = "centos" if "centos" in name else "rhel" if "red hat" in name else name.split()[0]
    return {"id": ident, "version": match.group(2), "codename": "", "pretty_name": text.strip(), "like": "rhel fedora"}


def parse_uname(text: str) -> dict:
    """Kernel release, architecture and host name from `uname -a`.

    >>> parse_uname("Linux vm 6.18.44-fc-v657-gpu #1 SMP PREEMPT_DYNAMIC @0 x86_64 x86_64 x86_64 GNU/Linux")["arch"]
    'x86_64'
    """
    tokens = text.split()
    arch = next((t for t in reversed(tokens) if t in ARCHES), "")
    return {
        "hostname": tokens[1] if len(tokens) > 1 else "",
        "release": tokens[2] if len(tokens) > 2 else "",
        "arch": arch,
    }


def parse_glibc(text: str) -> str | None:
    """The glibc version from `ldd --version`'s first line.

    >>> parse_glibc("ldd (Ubuntu GLIBC 2.39-0ubuntu8.9) 2.39")
    '2.39'
    """
    first = text.strip().splitlines()[0] if text.strip() else ""
    match = re.search(r"(\d+\.\d+)\s*$", first)
    return match.group(1) if match else None


def parse_modules(text: str) -> dict:
    """Loaded kernel modules from `/proc/modules`: name -> state.

    >>> parse_modules("nvidia_uvm 1830912 - - Live 0xffffffffc080c000 (O)")
    {'nvidia_uvm': 'Live'}
    """
    modules = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[1].isdigit():
            modules[fields[0]] = fields[4]
    return modules


def parse_driver_version(text: str) -> dict:
    """Version and flavour of the loaded kernel module from `/proc/driver/nvidia/version`.

    >>> parse_driver_version("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build")
    {'version': '580.159.04', 'open': True}
    """
    match = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return {"version": match.group(1) if match else None, "open": "Open Kernel Module" in text}


_SMI_FAILURES = (
    ("version_mismatch", 18, ("driver/library version mismatch",)),
    ("driver_not_loaded", 9, ("couldn't communicate with the nvidia driver", "driver not loaded")),
    ("no_permission", 4, ("insufficient permissions", "no permission")),
    ("no_devices", 6, ("no devices were found",)),
    ("gpu_lost", 15, ("gpu is lost", "fallen off the bus", "unable to determine the device handle")),
    ("nvml_missing", 12, ("nvml shared library not found", "couldn't find libnvidia-ml")),
    ("inforom_corrupt", 14, ("inforom",)),
    ("nvml_unknown_error", None, ("failed to initialize nvml: unknown error",)),
)


def classify_smi_failure(rc: int | None, output: str) -> str:
    """Name the reason `nvidia-smi` failed, from its message first, else its exit code.

    >>> classify_smi_failure(18, "Failed to initialize NVML: Driver/library version mismatch")
    'version_mismatch'
    """
    lowered = output.lower()
    for name, _, needles in _SMI_FAILURES:
        if any(needle in lowered for needle in needles):
            return name
    for name, code, _ in _SMI_FAILURES:
        if code is not None and rc == code:
            return name
    return "other"


_XID = re.compile(r"NVRM: Xid \(PCI:([0-9A-Fa-f:.]+)\): (\d+),?\s*(.*)")
_OFF_BUS = re.compile(r"NVRM: (?:The NVIDIA )?GPU (?:at PCI:)?([0-9A-Fa-f:.]+).*fallen off the bus")
_GSP_TIMEOUT = re.compile(r"Timeout waiting for RPC from GSP|GSP Timeout", re.I)
_PCI = re.compile(r"PCI:([0-9A-Fa-f]{4}:[0-9A-Fa-f:.]+)")
_TIME = re.compile(r"^\s*(\[\s*[\d.]+\]|\w{3} [ \d]\d [\d:]{8}|\d{4}-\d\d-\d\dT[\d:.+\-Z]+)")
_NVRM = re.compile(r"^.*?NVRM:\s?")
# What the driver says when it refuses a GPU or fails to start, matched over a message's joined lines
# (NVIDIA's own wording: open-gpu-kernel-modules kernel-open/nvidia/nv.c and nv-pci.c; real logs in tests/incidents).
_KERNEL_EVENTS = {
    "api_mismatch": re.compile(r"API mismatch: the client has the version ([\d.]+\d), but this kernel module has the version ([\d.]+\d)", re.I),
    "probe_not_called": re.compile(r"The NVIDIA probe routine was not called", re.I),
    "key_rejected": re.compile(r"(Key was rejected by service|Loading of module with unavailable key is rejected|"
                               r"Loading of unsigned module is rejected|Required key not available|"
                               r"Lockdown: \S+: unsigned module loading is restricted)", re.I),
    "uvm_hmm_kaslr": re.compile(r"request_free_mem_region\(\) err", re.I),
    "legacy_gpu": re.compile(r"(?:The NVIDIA (.+?) GPU installed in this system>? (?:is )?)?supported through the NVIDIA (\d+)\.xx Legacy drivers", re.I),
    "legacy_persistence": re.compile(r"Persistence mode is deprecated", re.I),
    "open_needs_gsp": re.compile(r"The NVIDIA GPU (\S+) \(PCI ID: (\w+:\w+)\) installed in this system is not supported by open nvidia\.ko "
                                 r"because it does not include the required GPU System Processor", re.I),
    "open_datacenter_only": re.compile(r"Open nvidia\.ko is only ready for use on Data Center GPUs", re.I),
    "needs_open": re.compile(r"The NVIDIA GPU (\S+) \(PCI ID: (\w+:\w+)\) installed in this system requires use of the NVIDIA open kernel modules", re.I),
    "unsupported_gpu": re.compile(r"The NVIDIA GPU (\S+) \(PCI ID: (\w+:\w+)\) installed in this system is not supported by the "
                                  r"(?:NVIDIA )?([\d.]+)(?: NVIDIA Linux)? driver release", re.I),
    "rm_init_failed": re.compile(r"(?:GPU (\S+): )?RmInitAdapter failed! \((0x\w+:0x\w+:\d+)\)", re.I),
    "gsp_firmware": re.compile(r"Direct firmware load for (nvidia/([\d.]+)/gsp_\w+\.bin) failed with error (-?\d+)|"
                               r"RmFetchGspRmImages: No firmware image found", re.I),
    "bar_invalid": re.compile(r"This PCI I/O region assigned to your NVIDIA device is invalid: (BAR\d is \d+M @ 0x\w+) \(PCI:(\S+)\)", re.I),
    "version_magic": re.compile(r"nvidia\w*: (?:version magic '([^']+)' should be '([^']+)'|disagrees about version of symbol (\w+))", re.I),
    "no_gpu_found": re.compile(r"No NVIDIA GPU found|None of the NVIDIA devices were initialized|No NVIDIA devices probed", re.I),
}
WINDOW = 8
# A line worth a window: the driver's own (NVRM), or the kernel's words about loading a module or its firmware.
_TELLING = re.compile(r"NVRM|Lockdown|firmware load|Loading of|Key was rejected|Required key|version magic|disagrees about|"
                      r"request_free_mem_region")


def _body(line: str) -> str:
    """A kernel-log line without its timestamp, facility and NVRM: tag, so a message's lines can be joined."""
    line = _TIME.sub("", line)
    line = re.sub(r"^\s*(?:\S+ )?kernel: (?:\[\s*[\d.]+\] )?", "", line)
    return re.sub(r"\s+", " ", _NVRM.sub("", line) if "NVRM:" in line else line).strip()


def _events(lines: list[str]) -> dict:
    """The first occurrence of each telling driver message, joined across its continuation lines, with its time."""
    cache: dict[int, str] = {}

    def body(n: int) -> str:
        if n not in cache:
            cache[n] = _body(lines[n])
        return cache[n]

    found: dict = {}
    for i in (n for n, line in enumerate(lines) if _TELLING.search(line) and not _XID.search(line)):  # Xids are counted apart
        bodies = {n: body(n) for n in range(i, min(i + WINDOW, len(lines)))}
        if not bodies[i]:
            continue
        window = " ".join(b for b in bodies.values() if b)
        for name, pattern in _KERNEL_EVENTS.items():
            if name in found:
                continue
            match = pattern.search(window)
            if match and match.start() < len(bodies[i]):
                span = window[match.start():match.end()]
                used = 1 + sum(1 for n, b in bodies.items() if n > i and b and b in span)
                stamp = _TIME.match(lines[i])
                found[name] = {"time": stamp.group(1).strip() if stamp else None, "text": span[:600],
                               "lines": [l.rstrip()[:300] for l in lines[i:i + used]], "groups": [g for g in match.groups()]}
    return found


def parse_kernel_log(text: str) -> dict:
    """Xid events, once each, and the driver's telling messages from the kernel log (`dmesg`).

    A GPU that falls off the bus is logged twice by newer drivers (the Xid 79 line and a plain
    "fallen off the bus" line), and a GSP timeout over several lines: each counts once per GPU
    when no Xid line already names it. Bus ids keep their domain, bus and device.

    >>> parse_kernel_log("[ 12.5] NVRM: Xid (PCI:0000:44:00): 79, GPU has fallen off the bus.")["xids"][0]["xid"]
    79
    """
    lines = text.splitlines()
    xids, others = [], []
    for line in lines:
        match = _XID.search(line)
        if match:
            xids.append({"pci": _full_bus(match.group(1)), "xid": int(match.group(2)), "text": match.group(3).strip()[:300]})
            continue
        match = _OFF_BUS.search(line)
        if match:
            others.append({"pci": _full_bus(match.group(1)), "xid": 79, "text": "GPU has fallen off the bus"})
        elif _GSP_TIMEOUT.search(line):  # logged without an Xid number by some drivers: it is Xid 119
            pci = _PCI.search(line)
            others.append({"pci": _full_bus(pci.group(1)) if pci else "unknown", "xid": 119, "text": line.strip()[:300]})
    seen = {(e["pci"], e["xid"]) for e in xids}
    for event in others:
        if (event["pci"], event["xid"]) not in seen and not (event["pci"] == "unknown" and any(e["xid"] == event["xid"] for e in xids)):
            xids.append(event)
            seen.add((event["pci"], event["xid"]))
    events = _events(lines)
    return {"xids": xids, "flags": {name: e["lines"][0] for name, e in events.items()}, "events": events}


def _full_bus(raw: str) -> str:
    """The Xid line's '0000:3b:00' (domain, bus, device) and the full '0000:3b:00.0' to one form, the full one:
    a GPU is function 0 of its device, and nvidia-smi and sysfs name it so."""
    raw = raw.lower().rstrip(".:")
    parts = raw.split(":")
    if len(parts) == 3 and "." not in parts[2]:
        parts[2] += ".0"
    return ":".join(parts)


CUDA_LIBRARIES = ("libcudnn", "libcudart", "libnvjitlink", "libcublas", "libcusparse", "libnccl", "libcufft", "libcuda.so")


def parse_ldconfig(text: str) -> dict[str, list[str]]:
    """CUDA-family libraries in the linker cache (`ldconfig -p`): soname -> paths, in lookup order.

    >>> parse_ldconfig("\\tlibcudart.so.13 (libc6,x86-64) => /usr/local/cuda-13.0/lib/libcudart.so.13")
    {'libcudart.so.13': ['/usr/local/cuda-13.0/lib/libcudart.so.13']}
    """
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        name, _, path = line.strip().partition(" => ")
        soname = name.split(" (")[0]
        if path and soname.lower().startswith(CUDA_LIBRARIES) and ".so." in soname:
            found.setdefault(soname, []).append(path.strip())
    return found


def library_version(path: str) -> str | None:
    """'…/libcudnn.so.9.14.0' -> '9.14.0'; None when the file name carries no version beyond the soname's.

    >>> library_version("/usr/lib/x86_64-linux-gnu/libcudnn.so.9.14.0")
    '9.14.0'
    """
    match = re.search(r"\.so\.(\d+(?:\.\d+)+)$", path)
    return match.group(1) if match else None


def parse_p2p_matrix(text: str) -> dict[str, dict[str, str]]:
    r"""`nvidia-smi topo -p2p r` as {"GPU0": {"GPU1": "OK", ...}, ...}; the diagonal is left out.

    >>> parse_p2p_matrix(" \tGPU0\tGPU1\t\n GPU0\tX\tOK\t\n GPU1\tCNS\tX\t\n")["GPU1"]
    {'GPU0': 'CNS'}
    """
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows or not all(name.startswith("GPU") for name in rows[0]):
        return {}
    header = rows[0]
    matrix = {}
    for row in rows[1:]:
        if len(row) != len(header) + 1 or not row[0].startswith("GPU"):
            break  # the legend starts
        matrix[row[0]] = {peer: status for peer, status in zip(header, row[1:]) if peer != row[0]}
    return matrix


_PIP_MISSING = re.compile(r"^\S+ \S+ requires ([A-Za-z0-9_.\-\[\]]+), which is not installed")
_PIP_CONFLICT = re.compile(r"^\S+ \S+ has requirement (.+?), but you have ")  # a specifier may hold commas: <4,>=2.5


def parse_pip_check(text: str) -> list[str]:
    """The requirement specs `pip check` says are unmet, ready for `pip install`.

    >>> parse_pip_check("torchvision 0.20.0 has requirement torch==2.5.0, but you have torch 2.13.0+cpu.\\n"
    ...                 "requests 2.32.3 has requirement idna<4,>=2.5, but you have idna 2.0.\\n"
    ...                 "accelerate 1.2.0 requires psutil, which is not installed.")
    ['torch==2.5.0', 'idna<4,>=2.5', 'psutil']
    """
    specs = []
    for line in text.splitlines():
        match = _PIP_MISSING.match(line.strip()) or _PIP_CONFLICT.match(line.strip())
        if match and match.group(1).strip() not in specs:
            specs.append(match.group(1).strip())
    return specs


# nvidia-smi -q -x ---------------------------------------------------------------------------
_REASON_BITS = {
    "gpu_idle": 0x1, "applications_clocks_setting": 0x2, "sw_power_cap": 0x4, "hw_slowdown": 0x8,
    "sync_boost": 0x10, "sw_thermal_slowdown": 0x20, "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80, "display_clocks_setting": 0x100,
}
_COMPUTE_MODES = {"default": 0, "exclusive_thread": 1, "prohibited": 2, "exclusive_process": 3}


def _raw(node, path: str) -> str | None:
    """An element's text as nvidia-smi wrote it ("N/A" included), or None where the element is missing."""
    found = node.find(path) if node is not None else None
    return found.text.strip() if found is not None and found.text and found.text.strip() else None


def _text(node, path: str) -> str | None:
    """An element's value: None where it is missing or one of NVIDIA's no-value words (N/A, Not Found, ...)."""
    raw = _raw(node, path)
    return None if no_value(raw) else raw


def _device_id(value: str | None) -> int | None:
    """<pci_device_id>1C8D10DE</pci_device_id> (device 0x1C8D, vendor 0x10DE) as NVML's pciDeviceId integer."""
    try:
        return int(value, 16) if value else None
    except ValueError:
        return None


def _number(value: str | None) -> int | None:
    match = re.match(r"^\s*(-?\d+)", value or "")
    return int(match.group(1)) if match else None


def _milliwatts(value: str | None) -> int | None:
    """'124.97 W' as NVML's milliwatts."""
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*W", value or "")
    return round(float(match.group(1)) * 1000) if match else None


def _mib(value: str | None) -> int | None:
    number = _number(value)
    return None if number is None else number * 1024 * 1024


def _flag(value: str | None):
    """Enabled/Disabled as NVML's 1/0; "N/A" and the other no-value words stay errors that keep the word."""
    table = {"enabled": 1, "disabled": 0, "yes": True, "no": False, "active": True, "not active": False}
    return table.get((value or "").lower(), {"error": value or "missing"})


def _throttle_mask(gpu) -> int | dict:
    node = gpu.find("clocks_event_reasons")
    if node is None:
        node = gpu.find("clocks_throttle_reasons")
    if node is None:
        return {"error": "missing"}
    mask = 0
    for child in node:
        name = re.sub(r"^clocks_(event|throttle)_reason_", "", child.tag).replace("display_clock_setting", "display_clocks_setting")
        if (child.text or "").strip().lower() == "active":
            mask |= _REASON_BITS.get(name, 0)
    return mask


def _ecc_uncorrected(node) -> int | dict:
    if node is None:
        return {"error": "missing"}
    values = [_number(child.text) for child in node if "uncorrectable" in child.tag or child.tag == "double_bit"]
    nested = node.find("double_bit/total")
    if nested is not None:
        values.append(_number(nested.text))
    known = [v for v in values if v is not None]
    return sum(known) if known else {"error": "N/A"}


def _remapped_rows(gpu) -> list | dict:
    """[correctable, uncorrectable, pending, failed] as NVML gives them, or not supported."""
    if gpu.find("remapped_rows/remapped_row_pending") is None:
        return {"error": _raw(gpu, "remapped_rows") or "missing"}
    return [_number(_text(gpu, "remapped_rows/remapped_row_corr")), _number(_text(gpu, "remapped_rows/remapped_row_unc")),
            _flag(_raw(gpu, "remapped_rows/remapped_row_pending")), _flag(_raw(gpu, "remapped_rows/remapped_row_failure"))]


def _mig_devices(gpu) -> int | dict:
    """How many MIG devices the GPU has: `<mig_devices>None</mig_devices>` is zero."""
    node = gpu.find("mig_devices")
    if node is None:
        return {"error": "missing"}
    return len(node.findall("mig_device"))


def _smi_gpu(gpu, index: int) -> dict:
    ecc = gpu.find("ecc_errors")
    processes = []
    for proc in gpu.findall("processes/process_info"):
        processes.append({"pid": _number(_text(proc, "pid")), "name": _text(proc, "process_name"),
                          "used_memory": _mib(_text(proc, "used_memory"))})
    pending = _raw(gpu, "retired_pages/pending_retirement") or _raw(gpu, "retired_pages/pending_blacklist")
    return {
        "index": index,
        "name": _text(gpu, "product_name"),
        "uuid": _text(gpu, "uuid"),
        "minor_number": _number(_text(gpu, "minor_number")),
        "pci": {"busId": gpu.get("id") or _text(gpu, "pci/pci_bus_id"), "pciDeviceId": _device_id(_text(gpu, "pci/pci_device_id"))},
        "driver_model": _text(gpu, "driver_model/current_dm"),
        "memory": {"total": _mib(_text(gpu, "fb_memory_usage/total")), "used": _mib(_text(gpu, "fb_memory_usage/used")),
                   "free": _mib(_text(gpu, "fb_memory_usage/free"))},
        "temperature_gpu": _number(_text(gpu, "temperature/gpu_temp")),
        "utilization_gpu": _number(_text(gpu, "utilization/gpu_util")),
        "clock_sm_mhz": _number(_text(gpu, "clocks/sm_clock")),
        "clock_mem_mhz": _number(_text(gpu, "clocks/mem_clock")),
        # schema 12+ has gpu_power_readings (instant draw); older ones power_readings (power_draw)
        "power_usage_mw": _milliwatts(_text(gpu, "gpu_power_readings/instant_power_draw") or _text(gpu, "gpu_power_readings/power_draw")
                                      or _text(gpu, "power_readings/power_draw")),
        "power_limit_mw": _milliwatts(_text(gpu, "gpu_power_readings/current_power_limit") or _text(gpu, "power_readings/enforced_power_limit")
                                      or _text(gpu, "power_readings/power_limit")),
        "power_default_limit_mw": _milliwatts(_text(gpu, "gpu_power_readings/default_power_limit") or _text(gpu, "power_readings/default_power_limit")),
        "temperature_slowdown": _number(_text(gpu, "temperature/gpu_temp_slow_threshold")),
        "performance_state": _number((_text(gpu, "performance_state") or "").lstrip("P")),
        "pcie_gen_cur": _number(_text(gpu, "pci/pci_gpu_link_info/pcie_gen/current_link_gen")),
        "pcie_gen_max": _number(_text(gpu, "pci/pci_gpu_link_info/pcie_gen/max_link_gen")),
        "pcie_width_cur": _number(_text(gpu, "pci/pci_gpu_link_info/link_widths/current_link_width")),
        "pcie_width_max": _number(_text(gpu, "pci/pci_gpu_link_info/link_widths/max_link_width")),
        "persistence_mode": _flag(_raw(gpu, "persistence_mode")),
        "compute_mode": _COMPUTE_MODES.get((_text(gpu, "compute_mode") or "").lower(), {"error": _raw(gpu, "compute_mode") or "missing"}),
        "ecc_mode": [_flag(_raw(gpu, "ecc_mode/current_ecc")), _flag(_raw(gpu, "ecc_mode/pending_ecc"))],
        "ecc_uncorrected_volatile": _ecc_uncorrected(ecc.find("volatile") if ecc is not None else None),
        "ecc_uncorrected_aggregate": _ecc_uncorrected(ecc.find("aggregate") if ecc is not None else None),
        "retired_pages_pending": _flag(pending),
        "remapped_rows": _remapped_rows(gpu),
        "mig_mode": [_flag(_raw(gpu, "mig_mode/current_mig")), _flag(_raw(gpu, "mig_mode/pending_mig"))],
        "mig_devices": _mig_devices(gpu),
        "throttle_reasons": _throttle_mask(gpu),
        "fabric_state": _text(gpu, "fabric/state"),
        "processes": processes,
    }


def parse_smi_xml(text: str) -> dict | None:
    """`nvidia-smi -q -x` as NVML-shaped facts, or None when it is not that XML.

    The per-GPU keys match the NVML worker's, so checks read either source alike.
    """
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError):
        return None
    if root.tag != "nvidia_smi_log":
        return None
    gpus = [_smi_gpu(gpu, index) for index, gpu in enumerate(root.findall("gpu"))]
    return {
        "driver_version": _text(root, "driver_version"),
        "cuda_version": _text(root, "cuda_version"),
        "device_count": len(gpus),
        "devices": gpus,
    }
