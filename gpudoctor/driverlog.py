"""What the kernel log says about the driver, and the fix it chooses.

When the module did not load, or loaded and refused a GPU, its NVRM lines usually name the
reason (NVIDIA's wording, parsed by parsers.parse_kernel_log): the open modules need a GPU with
GSP (Turing or newer), Blackwell needs the open modules, a GPU that only a legacy branch still
supports, a GPU newer than the driver, a firmware file missing, a BAR the firmware did not
assign, a module built for another kernel or signed with a key the kernel refuses. Each gets its
own fix, for the same branch where the branch is not the problem. driver.loaded and gpu.visible
both ask here, so the same log line never gets two different fixes.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpudoctor import fixes

LAST_PRE_TURING_BRANCH = "580"  # Maxwell, Pascal and Volta end with R580 (NVIDIA's Unix driver deprecation notice)


# Messages that name a GPU the driver will not drive: true even while other GPUs answer.
REFUSALS = ("open_needs_gsp", "needs_open", "legacy_gpu", "unsupported_gpu", "open_datacenter_only")


@dataclass(frozen=True)
class Cause:
    kind: str
    summary: str
    fix: str
    details: tuple[str, ...]

    @property
    def refuses_a_gpu(self) -> bool:
        return self.kind in REFUSALS


def _branch(version: str | None) -> str | None:
    return version.split(".")[0] if version else None


def _said(event: dict) -> tuple[str, ...]:
    stamp = f"{event['time']} " if event.get("time") and not event["lines"][0].lstrip().startswith(event["time"]) else ""
    return tuple(stamp + line.strip() for line in event["lines"])


def cause(kernel_log: dict | None, os: dict | None, arch: str, version: str | None, boot: dict | None = None) -> Cause | None:
    """The driver's own reason for not driving a GPU, with the fix for it; None when the log is silent."""
    events = (kernel_log or {}).get("events") or {}
    branch = _branch(version)
    for name, judge in _JUDGES:
        event = events.get(name)
        if event:
            found = judge(event, os, arch, branch, version, boot)
            if found:
                return Cause(name, found[0], found[1], _said(event))
    return None


def _open_needs_gsp(event, os, arch, branch, version, boot):
    gpu, pci_id = event["groups"][:2]
    keep = branch if branch and int(branch) <= int(LAST_PRE_TURING_BRANCH) else LAST_PRE_TURING_BRANCH
    return (f"the open kernel module refuses GPU {gpu} ({pci_id}): it is older than Turing and has no GSP, so it needs the "
            f"proprietary module" + (f" (branch {keep}, the last for it)" if keep != branch else f" of the same branch {branch}"),
            fixes.install_branch(os, keep, open_modules=False))


def _open_datacenter_only(event, os, arch, branch, version, boot):
    return (f"the open kernel module {version or ''} drives only data-center GPUs unless told otherwise".replace("  ", " "),
            "echo 'options nvidia NVreg_OpenRmEnableUnsupportedGpus=1' | sudo tee /etc/modprobe.d/nvidia-open.conf\n"
            f"{fixes.rebuild_initramfs(os)}\n# or install the proprietary flavour of this branch instead\nsudo reboot")


def _needs_open(event, os, arch, branch, version, boot):
    gpu, pci_id = event["groups"][:2]
    return (f"GPU {gpu} ({pci_id}) needs the open kernel module (Blackwell and newer); the proprietary one is installed",
            fixes.install_branch(os, branch, open_modules=True) if branch else fixes.install_driver(os, arch, open_modules=True))


def _legacy(event, os, arch, branch, version, boot):
    name, legacy = event["groups"][:2]
    return (f"driver {version or branch or ''} ignores {name or 'a GPU'}: only the {legacy}.xx legacy branch still supports it".replace("  ", " "),
            fixes.install_branch(os, legacy, open_modules=False))


def _unsupported(event, os, arch, branch, version, boot):
    gpu, pci_id, release = event["groups"][:3]
    return (f"driver {release} does not know GPU {gpu} ({pci_id}): the GPU is newer than this driver",
            "# install a current branch, which supports it:\n" + fixes.install_driver(os, arch, open_modules=True))


def _rm_init(event, os, arch, branch, version, boot):
    gpu, code = event["groups"][:2]
    return (f"the driver failed to initialise {'GPU ' + gpu if gpu else 'a GPU'} (RmInitAdapter failed, {code})",
            "sudo dmesg | grep -i -E 'NVRM|Xid' | tail -30   # the lines before it name the part that failed\n"
            "# Blackwell GPUs: the open kernel module is required (see driver.module_flavor)\n"
            "# in the BIOS: enable Above 4G Decoding and Resizable BAR, then boot again")


def _gsp_firmware(event, os, arch, branch, version, boot):
    path, fw_version = (event["groups"][:2] if event["groups"][0] else (None, version))
    package = "firmware-nvidia-gsp" if (os or {}).get("id") == "debian" else None
    reinstall = fixes.install(os, package) if package else \
        f"# reinstall driver {fw_version or version or ''}: its GSP firmware ships with it".replace("  ", " ")
    return (f"the driver could not load its GSP firmware ({path or 'no firmware image found'}): the GPU does not start",
            f"ls /lib/firmware/nvidia/{fw_version or version or '*'}/   # the gsp_*.bin files must match the module's version\n"
            f"{reinstall}\nsudo reboot")


def _bar_invalid(event, os, arch, branch, version, boot):
    bar, bus = event["groups"][:2]
    return (f"the firmware gave GPU {bus} no address space ({bar}): the driver cannot reach it",
            "# add pci=realloc to GRUB_CMDLINE_LINUX in /etc/default/grub (in a VM: enable 64-bit MMIO for the passthrough GPU)\n"
            f"{fixes.update_grub(os)}\nsudo reboot")


def _version_magic(event, os, arch, branch, version, boot):
    built, wanted = event["groups"][0], event["groups"][1]
    what = f"for kernel {built.split()[0]}, not the running {wanted.split()[0]}" if built and wanted else "against another kernel's symbols"
    if (os or {}).get("id") == "fedora":  # RPM Fusion and negativo17 build it with akmods; a dkms beside it leaves stale weak-updates
        return (f"the NVIDIA module was built {what}",
                "rpm -q dkms akmods   # both installed? remove dkms: sudo dnf remove dkms (it leaves the old kernel's module in weak-updates)\n"
                "sudo akmods --force   # builds the module for the running kernel\nsudo reboot")
    return (f"the NVIDIA module was built {what}",
            f"{fixes.kernel_headers(os)}\nsudo dkms autoinstall   # rebuilds the module for the running kernel\nsudo reboot")


def _key_rejected(event, os, arch, branch, version, boot):
    if (boot or {}).get("secure_boot"):
        mok = f"sudo mokutil --import {fixes.mok_key(os)}"
        return ("Secure Boot refuses the NVIDIA module: it is signed with a key that is not enrolled",
                f"{mok}\n# at the next boot choose 'Enroll MOK' in the blue MOK manager and enter the password\n"
                "# or install the distribution's signed precompiled driver, or turn Secure Boot off in the firmware\nsudo reboot")
    return ("the kernel refuses the NVIDIA module's signature (module signing is enforced)",
            "# sign the module with a key this kernel trusts, or use the driver package built for this exact kernel\n"
            "sudo dmesg | grep -i -E 'module|key' | tail   # which key it expected")


def _nouveau(event, os, arch, branch, version, boot):
    return ("nouveau holds the GPU, so the NVIDIA driver's probe never ran",
            "printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | sudo tee /etc/modprobe.d/blacklist-nouveau.conf\n"
            f"{fixes.rebuild_initramfs(os)}\nsudo reboot")


_JUDGES = (("open_needs_gsp", _open_needs_gsp), ("needs_open", _needs_open), ("legacy_gpu", _legacy),
           ("open_datacenter_only", _open_datacenter_only), ("unsupported_gpu", _unsupported), ("gsp_firmware", _gsp_firmware),
           ("bar_invalid", _bar_invalid), ("version_magic", _version_magic), ("key_rejected", _key_rejected),
           ("probe_not_called", _nouveau), ("rm_init_failed", _rm_init))


def nouveau_cause(os: dict | None) -> Cause:
    """nouveau loaded (from /proc/modules) when the log says nothing: it holds the GPU, so nvidia cannot bind."""
    summary, fix = _nouveau(None, os, "", None, None, None)
    return Cause("probe_not_called", summary.replace("so the NVIDIA driver's probe never ran", "so the NVIDIA driver cannot bind to it"),
                 fix, ("nouveau is in /proc/modules",))
