"""The driver area: kernel module, NVML library, nvidia-smi, device nodes, UVM, services."""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

from gpudoctor import driverlog, fixes, kb
from gpudoctor.causes import fabric_down
from gpudoctor.context import confined, gpuless_place, on_the_host, request_gpus, wsl
from gpudoctor.gpus import (
    NO_MODULE,
    answering,
    capability_of,
    gpu_devices,
    no_driver,
    nvswitch_count,
)
from gpudoctor.host import NOT_FOUND, NOT_RECORDED, TIMED_OUT, NotRecorded
from gpudoctor.parsers import (
    classify_smi_failure,
    parse_driver_version,
    parse_kernel_log,
    parse_smi_xml,
)
from gpudoctor.plugin import Skip, check, collector, fail, ok, skip, warn

SERVICES = ("nvidia-persistenced", "nvidia-fabricmanager")


@collector("driver")
def collect_driver(host) -> dict:
    """The loaded kernel module's version and flavour, and the GPUs it claimed."""
    proc = host.read("/proc/driver/nvidia/version")
    sysfs = host.read("/sys/module/nvidia/version")
    if proc.error == sysfs.error == NOT_RECORDED:
        raise NotRecorded("/proc/driver/nvidia/version")
    parsed = parse_driver_version(proc.text) if proc.ok else {"version": None, "open": None}
    gpus = host.listdir("/proc/driver/nvidia/gpus")
    facts = {
        "loaded": proc.ok or sysfs.ok,
        "proc_error": proc.error,
        "version": parsed["version"] or (sysfs.text or "").strip() or None,
        "open": parsed["open"] if proc.ok else None,
        "gpus": gpus,
        "models": {bus: _model(host.read(f"/proc/driver/nvidia/gpus/{bus}/information").text) for bus in gpus or []},
    }
    if not facts["loaded"]:  # which module, if any, is built for the running kernel
        modinfo = host.run(["modinfo", "-F", "version", "nvidia"])
        facts["on_disk"] = modinfo.stdout.strip() or None if modinfo.ok else None
    return facts


@collector("nvidia_smi")
def collect_nvidia_smi(host) -> dict:
    """`nvidia-smi -q -x`: whether it works, why not, and what it reports."""
    result = host.run(["nvidia-smi", "-q", "-x"])
    if result.error == NOT_RECORDED:
        raise NotRecorded("nvidia-smi -q -x")
    facts = {"rc": result.rc, "error": result.error, "duration_s": result.duration_s, "parsed": None, "category": None}
    if result.ok:
        facts["parsed"] = parse_smi_xml(result.stdout)
    elif not result.error:
        facts["category"] = classify_smi_failure(result.rc, result.output)
        facts["message"] = result.output.splitlines()[0][:300] if result.output else ""
    return facts


@collector("nvml")
def collect_nvml(host) -> dict:
    """NVML's view of the driver and every GPU, from a worker process that may be abandoned."""
    return host.nvml()


@collector("devices")
def collect_devices(host) -> dict:
    """The /dev/nvidia* nodes, their modes, and who this user is."""
    names = [n for n in host.listdir("/dev") or [] if n.startswith("nvidia") and n != "nvidia-caps"]
    return {"nodes": {f"/dev/{n}": host.stat(f"/dev/{n}") for n in names}, "user": host.user()}


@collector("services")
def collect_services(host) -> dict:
    """systemd's state of the persistence daemon and the fabric manager."""
    result = host.run(["systemctl", "is-active", *SERVICES])
    states = result.stdout.split()
    return {"states": dict(zip(SERVICES, states)) if len(states) == len(SERVICES) else None, "error": result.error}


@collector("kernel_log")
def collect_kernel_log(host) -> dict:
    """NVIDIA lines of the kernel log (Xid events and more), and why it is unreadable if so."""
    result = host.run(["dmesg"])
    if result.error == NOT_RECORDED:
        raise NotRecorded("dmesg")
    restrict = (host.read("/proc/sys/kernel/dmesg_restrict").text or "").strip()
    if not result.ok:
        return {"readable": False, "restricted": restrict == "1", "error": result.error or result.output[:200],
                "xids": [], "flags": {}}
    return {"readable": True, "restricted": restrict == "1", **parse_kernel_log(result.stdout)}


def _model(information: str | None) -> str | None:
    """'Model: NVIDIA GB10' from /proc/driver/nvidia/gpus/*/information: the driver names a GPU even when it did not start it."""
    match = re.search(r"^Model:\s*(.+?)\s*$", information or "", re.M)
    return match.group(1) if match else None


def _arch(os: dict | None) -> str:
    return ((os or {}).get("kernel") or {}).get("arch") or "x86_64"


def _install(os, nvml, nvidia_smi) -> str:
    devices = gpu_devices(nvml, nvidia_smi)
    pre_turing = any(d.get("cc") and d["cc"] < (7, 5) for d in devices)
    return fixes.install_driver(os, _arch(os), open_modules=not pre_turing)


def _host_fix(fix: str, container, environment) -> str:
    """A host-side fix as it is printed here: as is on the host, under "on the host" in a container or job."""
    place = confined(container, environment)
    if not place:
        return fix
    ask = request_gpus(container, environment)
    return f"# {place} cannot change the host's driver.\n" + (f"{ask}\n" if ask else "") + on_the_host(fix)


def _modprobe_first(os, driver, smi_message) -> tuple[str, str]:
    """The driver's user space is installed but its module is not loaded: load it, and read why it fails."""
    release = "$(uname -r)"
    lines = ["sudo modprobe nvidia   # load the module; if it fails, its error says why:",
             "# 'Key was rejected by service': Secure Boot refuses the module; enrol its key (see system.secure_boot)",
             f"# 'Module nvidia not found': none is built for kernel {release}: "
             f"{fixes.kernel_headers(os).replace(chr(34), '')} && sudo dkms autoinstall",
             "# 'No such device': the driver does not support this GPU, or nouveau holds it; the kernel log says which",
             "sudo dmesg | grep -i nvrm | tail -20   # the driver's own account",
             "nvidia-smi   # works once the module is loaded"]
    summary = "the NVIDIA driver is installed but its kernel module is not loaded"
    if smi_message:
        summary += f": nvidia-smi says \"{smi_message}\""
    return summary, "\n".join(lines)


@check("driver.loaded", "NVIDIA kernel module loaded", needs=("driver",),
       uses=("os", "container", "pci", "nvidia_smi", "nvml", "kernel_log", "boot", "modules", "environment", "cuda_libraries"))
def loaded(driver, os, container, pci, nvidia_smi, nvml, kernel_log, boot, modules, environment, cuda_libraries):
    """Without the kernel module nothing else can work; the kernel log and the module on disk say why (A2-A7)."""
    if (container or {}).get("wsl") or (os or {}).get("wsl"):
        first = (((cuda_libraries or {}).get("cache") or {}).get("libcuda.so.1") or [None])[0]
        if first and not first.startswith("/usr/lib/wsl/lib/"):
            return fail(f"WSL2's libcuda.so.1 is in /usr/lib/wsl/lib, but the linker finds {first} first: CUDA sees no device",
                        fix="export LD_LIBRARY_PATH=/usr/lib/wsl/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}   # and add it to ~/.bashrc\n"
                            f"# {first} comes from a Linux driver or CUDA package installed inside WSL: remove it (WSL uses the Windows driver)")
        if nvidia_smi and nvidia_smi.get("parsed"):
            return ok(f"WSL2 uses the Windows driver {nvidia_smi['parsed'].get('driver_version')}")
        return fail("WSL2 sees no NVIDIA driver", fix="# install or update the NVIDIA driver on Windows, never a Linux driver inside WSL; then, in Windows:\nwsl --shutdown")
    if driver["loaded"]:
        flavour = {True: "open", False: "proprietary"}.get(driver["open"], "unknown")
        return ok(f"NVIDIA driver {driver['version']} is loaded ({flavour} kernel module)")
    if not no_driver(driver, nvml):
        return ok(f"NVIDIA driver {nvml['driver_version']} answers through NVML; /proc/driver/nvidia is hidden here "
                  "(a sandboxed container runtime)")
    if pci and pci.get("gpus") == []:
        return skip("there is no NVIDIA GPU here to drive (see gpu.present)")
    said = driverlog.cause(kernel_log, os, _arch(os), driver.get("on_disk"), boot)
    if not said and "nouveau" in ((modules or {}).get("loaded") or {}):
        said = driverlog.nouveau_cause(os)
    smi = nvidia_smi or {}
    if said:
        return fail(f"no NVIDIA driver is loaded: {said.summary}", details=said.details,
                    fix=_host_fix(said.fix, container, environment))
    dkms = [m for m in (modules or {}).get("dkms_modules") or [] if m.startswith("nvidia")]
    release = ((os or {}).get("kernel") or {}).get("release")
    if dkms and release and (modules or {}).get("headers", {}).get(release) is False:
        return fail(f"no NVIDIA driver is loaded: DKMS builds {', '.join(dkms)} but kernel {release} has no headers, "
                    "so no module was built for it", fix=_host_fix(f"{fixes.kernel_headers(os)}\nsudo dkms autoinstall\nsudo reboot",
                                                                    container, environment))
    if smi.get("category") == "driver_not_loaded" or driver.get("on_disk"):
        summary, fix = _modprobe_first(os, driver, smi.get("message"))
        return fail(summary, fix=_host_fix(fix, container, environment))
    summary = "no NVIDIA driver is loaded (/proc/driver/nvidia/version is missing)"
    if pci and pci.get("gpus") == []:
        summary += " and no NVIDIA GPU is on the PCI bus"
    return fail(summary, fix=_host_fix(_install(os, nvml, nvidia_smi), container, environment))


@check("driver.module_flavor", "Open or proprietary module fits the GPUs", needs=("driver", "gpus"), uses=("os",))
def module_flavor(driver, gpus, os):
    """Blackwell needs the open module; pre-Turing GPUs need the proprietary one (A6, A7)."""
    devices = [d for d in gpus["devices"] if d.get("cc")] or \
        [{"name": name, "cc": capability_of(name)} for name in (driver.get("models") or {}).values() if capability_of(name)]
    if driver["open"] is None or not devices:
        return skip("the module flavour or the GPUs' compute capability is unknown")
    if driver["open"]:
        old = [d for d in devices if d["cc"] < (7, 5)]
        if old:
            return fail(f"the open kernel module does not drive pre-Turing GPUs ({old[0]['name']}, sm_{old[0]['cc'][0]}{old[0]['cc'][1]})",
                        fix=fixes.install_driver(os, _arch(os), open_modules=False))
        return ok("open kernel module, suited to these Turing or newer GPUs")
    new = [d for d in devices if d["cc"] >= (10, 0)]
    if new:
        return fail(f"{new[0]['name']} (Blackwell) needs the open kernel module; the proprietary one is loaded",
                    fix=fixes.install_driver(os, _arch(os), open_modules=True))
    return ok("proprietary kernel module, which supports these GPUs")


def _library_version(nvml: dict) -> str | None:
    if nvml.get("library_version"):
        return nvml["library_version"]
    version = nvml.get("nvml_version")
    return version.split(".", 1)[1] if isinstance(version, str) and version.count(".") >= 3 else None


def _without_gpus(container, environment, devices) -> None:
    """Skip a driver check in a container or job started without the GPUs: driver.device_nodes gives its fix."""
    place = gpuless_place(container, environment, devices)
    if place:
        raise Skip(f"{place} was started without the GPUs (see driver.device_nodes)")


@check("driver.nvml_matches_kernel", "NVML library matches the kernel module", needs=("driver", "nvml"),
       uses=("nvidia_smi", "kernel_log", "os", "container", "environment", "devices"))
def nvml_matches_kernel(driver, nvml, nvidia_smi, kernel_log, os, container, environment, devices):
    """User-space upgraded under a running module: 'Driver/library version mismatch' (A1)."""
    if no_driver(driver, nvml):
        return skip(NO_MODULE)
    _without_gpus(container, environment, devices)
    error = nvml.get("error") or {}
    module = driver["version"]
    if module is None:
        return skip("the kernel module's version is hidden here (no /proc/driver/nvidia), so there is nothing to compare")
    mismatch = (error.get("code") == 18 or (nvidia_smi or {}).get("category") == "version_mismatch"
                or "api_mismatch" in (kernel_log or {}).get("flags", {}))
    library = _library_version(nvml)
    said = ((kernel_log or {}).get("events") or {}).get("api_mismatch")
    library = library or (said["groups"][0] if said else None)  # "the client has the version 367.44"
    if mismatch or (library and module and library != module):
        return fail(f"Driver/library version mismatch: kernel module {module}, NVML library {library or 'of another version'}."
                    " User-space driver packages were upgraded without a reboot",
                    details=said["lines"] if said else (),
                    fix=f"{fixes.hold_driver(os)}   # keep unattended upgrades from doing it again\n"
                        "# without a reboot, when no process uses the GPU: sudo systemctl stop nvidia-persistenced; "
                        "sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia\n"
                        "sudo reboot   # loads the module that matches the library")
    if error.get("code") == 12:
        return fail(f"libnvidia-ml (NVML) is not installed beside kernel module {module}",
                    fix=f"# install the driver's user-space libraries, matching module {module}:\n"
                        f"{fixes.install_driver(os, _arch(os), bool(driver['open']))}")
    if error:
        return skip(f"NVML could not start: {error.get('message')}")
    return ok(f"NVML library {library or nvml.get('driver_version')} matches kernel module {module}")


_SMI_FIXES = {
    "no_permission": "sudo usermod -aG video $USER   # then log out and in; see driver.device_nodes",
    "no_devices": "sudo dmesg | grep -i -E 'NVRM|RmInitAdapter'   # why the GPU did not initialise\n"
                  "# Blackwell GPUs need the open module (driver.module_flavor); enable Above 4G decoding and Resizable BAR in the BIOS",
    "gpu_lost": "sudo reboot   # a GPU that fell off the bus rarely recovers without one; then check power, cooling and seating",
    "inforom_corrupt": "sudo nvidia-bug-report.sh   # the GPU's infoROM is corrupt: send this to the vendor for an RMA",
    "nvml_unknown_error": "# on the host, then restart this container (a systemd reload dropped its device access):\n"
                          "sudo nvidia-ctk system create-dev-char-symlinks --create-all",
    "driver_not_loaded": "sudo modprobe nvidia   # and read its error; `sudo dmesg | grep -i nvrm` tells why it failed",
}


@check("driver.nvidia_smi", "nvidia-smi works", needs=("nvidia_smi",), uses=("driver", "nvml", "os", "container", "environment", "devices"))
def nvidia_smi(nvidia_smi, driver, nvml, os, container, environment, devices):
    """nvidia-smi's failure message and exit code name the cause; a hang means a lost GPU."""
    if no_driver(driver, nvml):
        return skip(NO_MODULE)
    place = gpuless_place(container, environment, devices)
    if place and nvidia_smi["error"] == NOT_FOUND:
        return fail(f"nvidia-smi is not in {place}: the NVIDIA runtime mounts it, with the driver's libraries, only into a "
                    "container started with GPUs", fix=request_gpus(container, environment) or "ls -l /dev/nvidia*")
    _without_gpus(container, environment, devices)
    if nvidia_smi["error"] == NOT_FOUND:
        return fail("nvidia-smi is not installed", fix=fixes.install(os, "nvidia-smi" if (os or {}).get("id") == "debian" else "nvidia-utils"))
    if nvidia_smi["error"] == TIMED_OUT:
        return fail(f"nvidia-smi hung for {nvidia_smi['duration_s']:.0f} s: a GPU has probably fallen off the bus",
                    fix="sudo dmesg | grep -E 'Xid|fallen off'   # look for Xid 79\nsudo reboot")
    if nvidia_smi["error"]:
        return skip(f"nvidia-smi could not be run: {nvidia_smi['error']}")
    if nvidia_smi["rc"] != 0:
        category = nvidia_smi["category"]
        fix = _SMI_FIXES.get(category) or ("sudo reboot   # the library and module versions differ; see driver.nvml_matches_kernel"
                                          if category == "version_mismatch" else "sudo dmesg | grep -i nvrm   # the driver's own account")
        return fail(f"nvidia-smi failed (exit {nvidia_smi['rc']}, {category}): {nvidia_smi.get('message')}", fix=fix)
    parsed = nvidia_smi.get("parsed") or {}
    took = f", {nvidia_smi['duration_s']:.2f} s" if nvidia_smi.get("duration_s") else ""
    return ok(f"nvidia-smi works: driver {parsed.get('driver_version')}, CUDA {parsed.get('cuda_version')}, "
              f"{parsed.get('device_count')} GPU(s){took}")


@check("driver.device_nodes", "GPU device nodes usable", needs=("devices",), uses=("driver", "nvml", "container", "os", "environment"))
def device_nodes(devices, driver, nvml, container, os, environment):
    """Missing or unreadable /dev/nvidia* nodes: 'Insufficient Permissions', or a container without GPUs (A11, E44)."""
    nodes = {path: info for path, info in devices["nodes"].items() if info}
    gpus = sorted(p for p in nodes if p[len("/dev/nvidia"):].isdigit())
    if no_driver(driver, nvml):
        return skip(NO_MODULE)
    if wsl(container, os):
        return skip("WSL2 reaches the GPU through /dev/dxg, not /dev/nvidia*")
    if "/dev/nvidiactl" not in nodes or not gpus:
        place = confined(container, environment)
        if place:
            return fail(f"no /dev/nvidia* GPU nodes in {place}: it was started without GPUs",
                        fix=request_gpus(container, environment) or "ls -l /dev/nvidia*   # the nodes this place was given")
        return fail("the driver is loaded but /dev/nvidiactl or /dev/nvidia0 is missing",
                    fix=f"{fixes.install(os, 'nvidia-modprobe')}\nsudo nvidia-modprobe -c 0 -u   # creates the nodes")
    denied = [p for p, info in nodes.items() if not (info.get("readable") and info.get("writable"))]
    if denied:
        group = nodes[denied[0]].get("group", "video")
        user = devices.get("user", {}).get("name", "$USER")
        return fail(f"{user} cannot open {', '.join(denied)} (mode {nodes[denied[0]].get('mode')}, group {group})",
                    fix=f"sudo usermod -aG {group} {user}   # then log out and back in\n"
                        "# or let every user open them:\n"
                        "echo 'options nvidia NVreg_DeviceFileMode=0666' | sudo tee /etc/modprobe.d/nvidia-perms.conf\n"
                        f"{fixes.rebuild_initramfs(os)}\nsudo reboot")
    return ok(f"{len(gpus)} GPU node(s) and /dev/nvidiactl are readable and writable by this user")


@check("driver.uvm", "nvidia_uvm loaded", needs=("devices",), uses=("modules", "driver", "nvml", "kernel_log", "os", "container", "environment"))
def uvm(devices, modules, driver, nvml, kernel_log, os, container, environment):
    """Without nvidia_uvm, cuInit fails with an 'unknown error' (A10, A14)."""
    if no_driver(driver, nvml):
        return skip(NO_MODULE)
    if wsl(container, os):
        return skip("WSL2 has no nvidia_uvm: the Windows driver serves CUDA")
    _without_gpus(container, environment, devices)
    hmm = ((kernel_log or {}).get("flags") or {}).get("uvm_hmm_kaslr")
    if hmm:
        return fail("nvidia-uvm failed to initialise its memory management (HMM with KASLR): CUDA initialisation fails",
                    fix="echo 'options nvidia_uvm uvm_disable_hmm=1' | sudo tee /etc/modprobe.d/uvm.conf\n"
                        "sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm   # or add nokaslr to the kernel command line",
                    details=[hmm])
    loaded = ((modules or {}).get("loaded") or {})
    if "/dev/nvidia-uvm" in devices["nodes"] and devices["nodes"]["/dev/nvidia-uvm"]:
        return ok("nvidia_uvm is loaded and /dev/nvidia-uvm exists")
    if "nvidia_uvm" in loaded:
        return fail("nvidia_uvm is loaded but /dev/nvidia-uvm is missing: CUDA fails with 'unknown error' (999)",
                    fix="sudo nvidia-modprobe -c 0 -u")
    return fail("nvidia_uvm is not loaded: cuInit fails with CUDA_ERROR_UNKNOWN and PyTorch sees no GPU",
                fix="sudo modprobe nvidia_uvm && sudo nvidia-modprobe -c 0 -u\n"
                    "echo nvidia_uvm | sudo tee /etc/modules-load.d/nvidia-uvm.conf   # load it at every boot")


@check("driver.persistence", "Persistence mode", needs=("gpus",), uses=("services", "kernel_log"))
def persistence(gpus, services, kernel_log):
    """Without persistence each CUDA start re-initialises the GPUs; legacy -pm 1 is going away (A12).

    A GPU whose persistence mode reads N/A (Windows' WDDM driver model, WSL2) has none to turn on: neither on nor off."""
    daemon = ((services or {}).get("states") or {}).get("nvidia-persistenced")
    if daemon == "active":
        return ok("nvidia-persistenced is running")
    devices = answering(gpus)
    off = [d for d in devices if d.get("persistence_mode") in (0, False)]
    unknown = [d for d in devices if d.get("persistence_mode") is None]
    if len(unknown) == len(devices):
        why = unknown[0].get("no_value", {}).get("persistence_mode", "no answer")
        return skip(f"persistence mode does not apply here: the driver reports {why!r} for {len(unknown)} GPU(s) "
                    "(so do Windows' WDDM driver model and WSL2, which have none)")
    on = len(devices) - len(off) - len(unknown)
    also = f"; {len(unknown)} report none (N/A)" if unknown else ""
    legacy = ((kernel_log or {}).get("flags") or {}).get("legacy_persistence")
    if not off and legacy:
        return warn(f"persistence mode is on for {on} GPU(s){also}, but through the legacy `nvidia-smi -pm 1`, "
                    "which the driver says is deprecated and will be removed",
                    fix="sudo systemctl enable --now nvidia-persistenced\n"
                        "# and remove `nvidia-smi -pm 1` from the boot scripts that run it", details=[legacy])
    if not off:
        return ok(f"persistence mode is on for {'all ' if not unknown else ''}{on} GPU(s){also}")
    return warn(f"persistence mode is off on {len(off)} GPU(s): every CUDA start re-initialises them (seconds), "
                "and container starts can time out", fix="sudo systemctl enable --now nvidia-persistenced   # or: sudo nvidia-smi -pm 1")


@check("driver.fabric_manager", "Fabric manager where NVSwitch needs it", needs=("driver",), uses=("pci", "services", "nvml", "os"))
def fabric_manager(driver, pci, services, nvml, os):
    """NVSwitch boards need the fabric manager before CUDA starts (error 802); other boards do not (B15, B16)."""
    if no_driver(driver, nvml):
        return skip(NO_MODULE)
    switches = nvswitch_count(pci)
    states = (services or {}).get("states") or {}
    fm = states.get("nvidia-fabricmanager")
    devices = [d for d in (nvml or {}).get("devices") or [] if isinstance(d.get("fabric_state"), int)]
    waiting = [d for d in devices if d["fabric_state"] in (1, 2)]
    if switches or waiting:
        if not fabric_down(pci, services, devices):
            return ok(f"{switches} NVSwitch(es); the NVLink fabric is up")
        branch = (driver["version"] or "").split(".")[0]
        return fail(f"{switches} NVSwitch(es) but nvidia-fabricmanager is {fm or 'not running'}: CUDA fails with "
                    "'system not yet initialized' (error 802)",
                    fix=f"# Fabric Manager must be the driver's exact version, {driver['version']}\n"
                        f"{fixes.install_fabric_manager(os, branch)}")
    if fm == "failed":
        return warn("nvidia-fabricmanager is installed and failing, but this machine has no NVSwitch",
                    fix="sudo systemctl disable --now nvidia-fabricmanager")
    if switches is None:
        return skip("the PCI bus was not read, so NVSwitches could not be counted")
    return ok("no NVSwitch on the PCI bus: the fabric manager is not needed")


@check("driver.container_cuda", "The image's CUDA fits the host driver", needs=("environment",), uses=("nvml", "nvidia_smi"))
def container_cuda(environment, nvml, nvidia_smi):
    """An image built for a newer CUDA than the host driver fails with error 35 (E45)."""
    requirement = environment.get("NVIDIA_REQUIRE_CUDA")
    match = re.search(r"cuda>=(\d+\.\d+)", requirement or "")
    if not match:
        return skip("not in a CUDA container image (NVIDIA_REQUIRE_CUDA is not set)")
    supported = _driver_cuda(nvml, nvidia_smi)
    if supported is None:
        return skip("the CUDA version the driver supports is unknown")
    needed = match.group(1)
    try:
        short = Version(supported) < Version(needed)
    except InvalidVersion:
        return skip(f"unreadable CUDA versions: {needed!r}, {supported!r}")
    if short:
        return fail(f"this image needs CUDA >= {needed} but the host driver supports CUDA {supported}: CUDA calls fail with "
                    "'driver version is insufficient' (error 35)",
                    fix=f"# on the host, upgrade the driver to >= {kb.load('cuda')['toolkit_driver'].get(needed) or 'a branch for CUDA ' + needed}"
                        f" (CUDA {needed}'s own driver), or\n"
                        f"# use an image built for CUDA {supported} or older, or, on a data-center GPU whose code runs under minor-version\n"
                        "# compatibility, start it with -e NVIDIA_DISABLE_REQUIRES=true (skips this check; CUDA itself may still fail)")
    return ok(f"the image needs CUDA >= {needed}; the host driver supports CUDA {supported}")


def _driver_cuda(nvml: dict | None, nvidia_smi: dict | None) -> str | None:
    version = (nvml or {}).get("cuda_driver_version")
    if isinstance(version, int):
        return f"{version // 1000}.{version % 1000 // 10}"
    return ((nvidia_smi or {}).get("parsed") or {}).get("cuda_version")


@check("driver.branch_support", "The driver branch is still supported", needs=("driver",), uses=("machine", "nvml", "os"))
def branch_support(driver, machine, nvml, os):
    """A data-center branch past its end of life gets no more security or bug fixes."""
    if no_driver(driver, nvml):
        return skip(NO_MODULE)
    version = driver["version"] or (nvml or {}).get("driver_version") or ""
    branch = version.split(".")[0]
    life = kb.load("cuda")["driver_branches"].get(branch)
    today = (machine or {}).get("date")
    if not life:
        return skip(f"gpudoctor has no lifecycle data for branch R{branch} (NVIDIA publishes it for data-center branches)")
    if not life["eol"]:
        return ok(f"branch R{branch} is a {life['designation']}: NVIDIA gives those no end-of-life date, and supports them "
                  "until the next branch; for servers it recommends an LTSB or Production Branch")
    if not today:
        return skip("the date of the check was not recorded")
    if today[:7] > life["eol"]:
        newest = max((b for b, l in kb.load("cuda")["driver_branches"].items() if l["designation"] == "LTSB" and (l["eol"] or "") > today[:7]),
                     key=int, default=None)
        return warn(f"driver {version} is branch R{branch} ({life['designation']}), which reached end of life in {life['eol']}",
                    fix=fixes.install_branch(os, newest) if newest else "# move to a supported branch (see NVIDIA's driver lifecycle)")
    return ok(f"branch R{branch} ({life['designation']}) is supported until {life['eol']}")
