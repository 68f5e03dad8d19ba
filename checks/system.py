"""The system area: distribution, kernel, boot, modules, resources and containers."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from gpudoctor import fixes, kb
from gpudoctor.context import container_kind, describe
from gpudoctor.host import NOT_RECORDED, NotRecorded
from gpudoctor.machineinfo import parse_lscpu, tool_version
from gpudoctor.osinfo import RELEASE_FILES, identify
from gpudoctor.parsers import parse_glibc, parse_modules, parse_uname
from gpudoctor.plugin import check, collector, fail, ok, skip, warn

GIB = 1 << 30
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
MODPROBE_DIRS = ("/etc/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d", "/run/modprobe.d")


@collector("os")
def collect_os(host) -> dict:
    """Distribution (through `distro`, from the release files as recorded) and the kernel."""
    reads = [host.read(path) for path in RELEASE_FILES]
    uname = host.run(["uname", "-a"])
    if uname.error == NOT_RECORDED and all(r.error == NOT_RECORDED for r in reads):
        raise NotRecorded("/etc/os-release and uname -a")
    facts = identify({r.path: r.text for r in reads if r.ok})
    facts["kernel"] = parse_uname(uname.stdout) if uname.ok else {"release": "", "arch": "", "hostname": ""}
    facts["wsl"] = "microsoft" in facts["kernel"]["release"].lower()
    return facts


@collector("machine")
def collect_machine(host) -> dict:
    """CPU and memory sizes and the C library version."""
    ldd = host.run(["ldd", "--version"])
    return {**host.machine(), "glibc": parse_glibc(ldd.stdout), "glibc_error": ldd.error}


@collector("storage")
def collect_storage(host) -> dict:
    """Free space where training writes (/, temp, home) and the /dev/shm size and mode."""
    env = host.environ
    places = {"/": "/", "temp": env.get("TMPDIR") or "/tmp", "home": env.get("HOME") or "/root"}
    return {
        "disks": {label: {"path": path, **(host.disk_usage(path) or {"error": "unreadable"})} for label, path in places.items()},
        "shm": {"usage": host.disk_usage("/dev/shm"), "stat": host.stat("/dev/shm")},
    }


@collector("modules")
def collect_modules(host) -> dict:
    """Loaded modules, nouveau blacklists, DKMS and the kernels' headers; `unrecorded` names what replay lacks."""
    loaded = host.read("/proc/modules")
    facts = {"loaded": parse_modules(loaded.text) if loaded.ok else None, "loaded_error": loaded.error, "unrecorded": []}
    try:
        facts["nouveau_blacklisted_in"] = _nouveau_blacklists(host)
    except NotRecorded:
        facts["unrecorded"].append("blacklists")
    try:
        facts["dkms_modules"] = host.listdir("/var/lib/dkms")
        facts["headers"] = {kernel: host.stat(f"/lib/modules/{kernel}/build") is not None
                            for kernel in host.listdir("/lib/modules") or []}
    except NotRecorded:
        facts["unrecorded"].append("dkms")
    return facts


def _nouveau_blacklists(host) -> list[str]:
    found = []
    for folder in MODPROBE_DIRS:
        for name in host.listdir(folder) or []:
            text = host.read(f"{folder}/{name}").text or "" if name.endswith(".conf") else ""
            if any(line.split()[:2] in (["blacklist", "nouveau"], ["install", "nouveau"]) for line in text.splitlines() if line.strip()):
                found.append(f"{folder}/{name}")
    cmdline = host.read("/proc/cmdline").text or ""
    if "modprobe.blacklist=nouveau" in cmdline or "rd.driver.blacklist=nouveau" in cmdline:
        found.append("/proc/cmdline")
    return found


@collector("boot")
def collect_boot(host) -> dict:
    """UEFI or legacy boot, and the Secure Boot variable where it can be read."""
    efi = host.stat("/sys/firmware/efi")
    var = host.read(SECURE_BOOT_VAR) if efi else None
    return {"efi": efi is not None, "secure_boot": (var.text[-1:] == "\x01") if var and var.ok else None,
            "secure_boot_error": var.error if var and not var.ok else None}


@collector("container")
def collect_container(host) -> dict:
    """Docker, Podman, Kubernetes and WSL markers."""
    cgroup = host.read("/proc/1/cgroup").text or ""
    env = host.environ
    return {
        "docker": host.stat("/.dockerenv") is not None or "docker" in cgroup,
        "podman": host.stat("/run/.containerenv") is not None or env.get("container") == "podman",
        "kubernetes": "KUBERNETES_SERVICE_HOST" in env or "kubepods" in cgroup,
        "wsl": "WSL_DISTRO_NAME" in env or host.stat("/dev/dxg") is not None,
    }


# the instruction sets frameworks are built for and dispatch to (x86: AVX2, AVX-512 and its bf16/fp16/VNNI parts, AMX)
CPU_FLAGS = ("hypervisor", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


@collector("platform")
def collect_platform(host) -> dict:
    """The CPU (model, sockets, NUMA nodes, the instruction-set flags frameworks are built for) and whether this is a VM, and whose."""
    cpuinfo = host.read("/proc/cpuinfo", limit=64 << 10)
    first = (cpuinfo.text or "").split("\n\n", 1)[0]
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines()) if _}
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    virt = host.run(["systemd-detect-virt", "--vm"])
    lscpu = host.run(["lscpu"])
    return {
        "cpu_model": fields.get("model name") or fields.get("Model name") or fields.get("CPU part"),
        "cpu_flags": sorted(set(flags) & set(CPU_FLAGS)) if cpuinfo.ok else None,
        "arch": "aarch64" if "Features" in fields else "x86_64" if "flags" in fields else None,
        "virt": virt.stdout.strip() or None if virt.rc in (0, 1) and virt.error is None else None,
        "dmi": {name: (host.read(f"/sys/class/dmi/id/{name}").text or "").strip() or None
                for name in ("sys_vendor", "product_name", "chassis_type")},
        "cpu": parse_lscpu(lscpu.stdout) if lscpu.ok else {"error": lscpu.error or f"exit status {lscpu.rc}"},
    }


@collector("toolchain")
def collect_toolchain(host) -> dict:
    """The compilers and CMake that build extensions and CUDA code, as `collect_env` reports them."""
    answers = {name: host.run([name, "--version"]) for name in ("gcc", "clang", "cmake")}
    if all(a.error == NOT_RECORDED for a in answers.values()):
        raise NotRecorded("gcc, clang and cmake --version")
    patterns = {"gcc": r"gcc (.*)", "clang": r"clang version (.*)", "cmake": r"cmake (.*)"}
    return {name: tool_version(answer.stdout, patterns[name]) if answer.ok else None for name, answer in answers.items()}


@check("system.os", "Linux distribution", needs=("os",))
def os_release(os):
    """NVIDIA ships driver packages only for some releases; elsewhere the .run installer is the way."""
    if not os.get("id"):
        return warn("the distribution could not be identified (no /etc/os-release or /etc/lsb-release)",
                    fix="# restore /etc/os-release: it comes with base-files on Debian and Ubuntu, redhat-release or system-release on RHEL")
    name = os.get("pretty_name") or f"{os['id']} {os.get('version', '')}".strip()
    repo = fixes.nvidia_repo(os)
    base = os.get("base")
    if repo and base:
        return ok(f"{name}: built on {base['id'].capitalize()} {base['version']}, which NVIDIA's driver packages support ({repo})")
    if repo:
        return ok(f"{name}: supported by NVIDIA's driver packages ({repo})")
    supported = ", ".join(f"{d} {'/'.join(v['versions'])}" for d, v in kb.load("distros")["supported"].items())
    return warn(f"{name} is not a release NVIDIA's driver packages support",
                fix="# use the .run installer from https://www.nvidia.com/Download/index.aspx, or move to a supported release:\n"
                    f"# {supported}")


@check("system.kernel", "Kernel and architecture", needs=("os",))
def kernel(os):
    """Driver and framework builds exist for x86_64 and aarch64 only."""
    k = os["kernel"]
    if not k.get("release"):
        return skip("`uname -a` gave no answer")
    if k.get("arch") not in ("x86_64", "aarch64"):
        return warn(f"kernel {k['release']} on {k.get('arch') or 'an unknown architecture'}: NVIDIA's data-centre "
                    "drivers and the framework wheels are built for x86_64 and aarch64 only",
                    fix="# run GPU training on an x86_64 or aarch64 (SBSA) host")
    return ok(f"Linux {k['release']} on {k['arch']}" + (" (WSL2)" if os.get("wsl") else ""))


@check("system.kernel_headers", "Kernel headers for DKMS", needs=("modules", "os"))
def kernel_headers(modules, os):
    """A kernel update without its headers leaves DKMS unable to rebuild the module (failure mode A5)."""
    if "dkms" in modules["unrecorded"]:
        return skip("DKMS and the kernel headers were not recorded")
    dkms = [m for m in modules.get("dkms_modules") or [] if m.startswith("nvidia")]
    release = os["kernel"].get("release")
    if not dkms:
        return skip("the NVIDIA module is not built by DKMS here (nothing under /var/lib/dkms)")
    if modules["headers"].get(release):
        return ok(f"headers for {release} are installed; DKMS can rebuild {', '.join(dkms)}")
    return fail(f"DKMS builds {', '.join(dkms)} but the headers for the running kernel {release} are missing:"
                " the module will not be built for it",
                fix=f"{fixes.kernel_headers(os)}\nsudo dkms autoinstall\nsudo reboot")


@check("system.secure_boot", "Secure Boot and module signing", needs=("boot",), uses=("modules", "os"))
def secure_boot(boot, modules, os):
    """Secure Boot rejects an unsigned DKMS module: 'Key was rejected by service' (A4)."""
    if not boot["efi"]:
        return ok("legacy BIOS boot: Secure Boot does not apply")
    if boot["secure_boot"] is None:
        return skip(f"the SecureBoot EFI variable could not be read ({boot.get('secure_boot_error')})",
                    "run `mokutil --sb-state` to see it")
    if not boot["secure_boot"]:
        return ok("Secure Boot is off: unsigned modules load")
    loaded = (modules or {}).get("loaded") or {}
    if "nvidia" in loaded:
        return ok("Secure Boot is on and the NVIDIA module is signed and loaded")
    mok = f"sudo mokutil --import {fixes.mok_key(os)}"
    return fail("Secure Boot is on and the NVIDIA module is not loaded: an unsigned DKMS module is rejected",
                fix=f"{mok}\nsudo reboot   # then choose 'Enroll MOK' in the blue MOK manager and enter the password\n"
                    "# or install the distribution's signed precompiled driver, or turn Secure Boot off in the firmware")


@check("system.nouveau", "nouveau kept off the GPU", needs=("modules",), uses=("os",))
def nouveau(modules, os):
    """nouveau owning the GPU keeps the NVIDIA module from binding (A3)."""
    loaded = modules.get("loaded")
    blacklist = ("printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | sudo tee /etc/modprobe.d/blacklist-nouveau.conf\n"
                 f"{fixes.rebuild_initramfs(os)}\nsudo reboot")
    if loaded is None:
        return skip(f"/proc/modules is unreadable ({modules.get('loaded_error')}): this kernel may have no loadable modules")
    if "nouveau" in loaded:
        return fail("nouveau is loaded and holds the GPU, so the NVIDIA driver cannot bind to it", fix=blacklist)
    if modules.get("nouveau_blacklisted_in"):
        return ok(f"nouveau is not loaded and is blacklisted ({', '.join(modules['nouveau_blacklisted_in'])})")
    if "nvidia" in loaded:
        return ok("nouveau is not loaded; the NVIDIA module owns the GPU")
    if "blacklists" in modules["unrecorded"]:
        return skip("nouveau is not loaded; whether it is blacklisted was not recorded")
    return warn("nouveau is not loaded now but not blacklisted either: it may claim the GPU at the next boot",
                fix=blacklist)


@check("system.glibc", "C library", needs=("machine",))
def glibc(machine):
    """Current framework wheels are manylinux_2_28: an older glibc cannot install them."""
    version = machine.get("glibc")
    if not version:
        return skip(f"`ldd --version` gave no glibc version ({machine.get('glibc_error') or 'musl, or no ldd'})")
    try:
        old = Version(version) < Version("2.28")
    except InvalidVersion:
        return skip(f"glibc reports an unreadable version {version!r}")
    if old:
        return warn(f"glibc {version} is older than 2.28: current PyTorch, JAX and TensorFlow wheels (manylinux_2_28) will not install",
                    fix="# upgrade to a distribution with glibc 2.28 or newer (RHEL 8+, Ubuntu 20.04+, Debian 10+)")
    return ok(f"glibc {version}")


@check("system.resources", "CPU and memory", needs=("machine",))
def resources(machine):
    """Too little RAM starves data loading and checkpointing."""
    if not machine.get("memory_total"):
        return skip("CPU and memory sizes were not recorded")
    total = machine["memory_total"] / GIB
    summary = f"{machine.get('cpu_logical')} CPUs, {total:.1f} GiB RAM ({machine.get('memory_available', 0) / GIB:.1f} GiB free)"
    if total < 8:
        return warn(f"{summary}: data loading and checkpoints need more than 8 GiB", fix="# use a machine with at least 16 GiB of RAM per GPU")
    return ok(summary)


@check("system.disk", "Free disk space", needs=("storage",))
def disk(storage):
    """Checkpoints, datasets and wheels fill /, the temp dir or home first."""
    known = {label: info for label, info in storage["disks"].items() if "free" in info}
    lines = [f"{label} ({info['path']}): {info['free'] / GIB:.1f} GiB free of {info['total'] / GIB:.1f} GiB"
             for label, info in known.items()]
    if not known:
        return skip("disk usage was not recorded")
    path, free = min(((info["path"], info["free"] / GIB) for info in known.values()), key=lambda pf: pf[1])
    if free < 10:
        verdict = fail if free < 1 else warn
        return verdict(f"only {free:.1f} GiB free on {path}: checkpoints, datasets and pip wheels will not fit",
                       fix=f"du -xh --max-depth=2 {path} | sort -h | tail   # find what to delete\n"
                           "pip cache purge; conda clean -a   # framework caches are often the largest", details=lines)
    return ok(f"at least {free:.0f} GiB free on /, the temp dir and home", lines)


@check("system.shm", "Shared memory (/dev/shm)", needs=("storage",), uses=("container",))
def shm(storage, container):
    """A small /dev/shm kills DataLoader workers with 'Bus error' and breaks NCCL (E47)."""
    usage, stat = storage["shm"]["usage"], storage["shm"]["stat"]
    kind = container_kind(container)
    if usage is None and stat is None:
        return fail("/dev/shm is missing: PyTorch DataLoader workers and NCCL need it",
                    fix="sudo mount -t tmpfs -o mode=1777,size=50% tmpfs /dev/shm")
    if stat and not stat.get("writable"):
        return fail(f"/dev/shm is not writable by this user (mode {stat.get('mode')}): NCCL fails with 'shm_open failed'",
                    fix="sudo chmod 1777 /dev/shm")
    if usage is None:
        return skip("the size of /dev/shm was not recorded")
    size = usage["total"] / GIB
    if size < 1:
        fix = ("# start the container with the host's IPC namespace or a larger /dev/shm: docker run --ipc=host IMAGE (or --shm-size=16g)"
               if kind in ("Docker", "Podman")
               else "# in the pod spec, mount an emptyDir {medium: Memory, sizeLimit: 16Gi} at /dev/shm" if kind == "Kubernetes"
               else "sudo mount -o remount,size=50% /dev/shm")
        return warn(f"/dev/shm is only {usage['total'] / (1 << 20):.0f} MiB: DataLoader workers die with 'Bus error' and NCCL "
                    "cannot create its segments", fix=fix)
    return ok(f"/dev/shm has {size:.1f} GiB")


@check("system.build_tools", "C compiler and CMake", needs=("toolchain",), uses=("python_envs", "os"))
def build_tools(toolchain, python_envs, os):
    """Triton (torch.compile's GPU backend) compiles a launcher with the C compiler at run time: without one it stops
    with 'Failed to find C compiler' (apple/ml-cross-entropy#5; kijai/ComfyUI-HunyuanVideoWrapper#23: build-essential)."""
    found = [f"{name} {toolchain[name]}" for name in ("gcc", "clang", "cmake") if toolchain.get(name)]
    triton = sorted({i["path"] for i in (python_envs or {}).get("interpreters") or []
                     for d in (i.get("env") or {}).get("distributions") or [] if d["name"] in ("triton", "pytorch-triton")})
    if triton and not (toolchain.get("gcc") or toolchain.get("clang")):
        package = "build-essential" if fixes.family(os) == "apt" else "gcc"
        return warn(f"no C compiler (gcc or clang) on PATH, and Triton is installed in {', '.join(triton)}: torch.compile and "
                    "Triton kernels stop with 'Failed to find C compiler. Please specify via CC environment variable.'",
                    fix=fixes.install(os, package), details=found)
    return ok("; ".join(found) if found else "no C compiler or CMake on PATH (nothing judged here needs one)")


@check("system.container", "Where gpudoctor runs: container, VM, WSL", needs=("container",), uses=("os", "platform", "pci"))
def container(container, os, platform, pci):
    """Containers and WSL2 get their driver from outside, which changes every fix."""
    if container.get("wsl") or (os or {}).get("wsl"):
        return ok("WSL2: the GPU comes from the Windows driver through /usr/lib/wsl/lib; never install a Linux driver here")
    kind = container_kind(container)
    where = describe(platform, pci, container)
    if kind:
        return ok(f"running in {where}: the driver lives on the host and GPUs arrive through the container runtime")
    return ok(f"not in a container: {where}")
