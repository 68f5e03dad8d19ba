"""Fix commands for this machine: its package manager, its release, its kernel.

Checks build their fixes from these helpers and the `os` facts, so that a Debian box
gets apt, a Rocky box dnf and a SUSE box zypper, with the right repository names.
"""

from __future__ import annotations

from gpudoctor import kb

NVIDIA_REPOS = "https://developer.download.nvidia.com/compute/cuda/repos"


def family(os: dict | None) -> str | None:
    """'apt', 'dnf' or 'zypper' for this distribution, else None."""
    if not os:
        return None
    ids = [os.get("id") or ""] + (os.get("like") or "").split()
    for name, members in kb.load("distros")["families"].items():
        if any(i in members for i in ids):
            return name
    return None


def _uses_yum(os: dict | None) -> bool:
    """RHEL and its rebuilds before 8, and Amazon Linux 2, have yum and no dnf."""
    os = os or {}
    major = (os.get("version") or "9").split(".")[0]
    rhel_like = os.get("id") in ("centos", "rhel", "oracle", "ol", "scientific") or "rhel" in (os.get("like") or "").split()
    return (os.get("id") == "amzn" and major == "2") or (rhel_like and major in ("4", "5", "6", "7"))


def install(os: dict | None, *packages: str) -> str:
    """The command that installs `packages` here."""
    names = " ".join(packages)
    if family(os) == "dnf" and _uses_yum(os):
        return f"sudo yum install -y {names}"
    return {
        "apt": f"sudo apt-get install -y {names}",
        "dnf": f"sudo dnf install -y {names}",
        "zypper": f"sudo zypper install -y {names}",
    }.get(family(os) or "", f"# install {names} with this distribution's package manager")


def nvidia_repo(os: dict | None) -> str | None:
    """NVIDIA's repository name for this release (e.g. 'debian12'), or its base's for a derivative, if NVIDIA has one."""
    if not os:
        return None
    release = os.get("base") or os
    entry = kb.load("distros")["supported"].get(release.get("id") or "")
    if not entry:
        return None
    version = release.get("version") or ""
    for known, repo in entry["versions"].items():
        if version == known or version.split(".")[0] == known:
            return repo
    return None


def _uses_module_streams(os: dict | None) -> bool:
    """RHEL-family 8 and 9, and Amazon Linux 2023, ship NVIDIA's driver as dnf module streams."""
    os = os or {}
    major = (os.get("version") or "").split(".")[0]
    rhel = os.get("id") in ("rhel", "rocky", "almalinux", "oracle", "ol", "centos") or (os.get("base") or {}).get("id") == "rhel"
    return os.get("id") == "amzn" or (rhel and major in ("8", "9"))


def ubuntu_based(os: dict | None) -> bool:
    """Ubuntu or a derivative that takes its packages from Ubuntu's archive (Mint, Pop!_OS)."""
    os = os or {}
    return os.get("id") == "ubuntu" or (os.get("base") or {}).get("id") == "ubuntu"


def mok_key(os: dict | None) -> str:
    """The key DKMS (or akmods) signs the NVIDIA module with, which Secure Boot must have enrolled."""
    ident = (os or {}).get("id")
    if ubuntu_based(os) or "ubuntu" in ((os or {}).get("like") or ""):
        return "/var/lib/shim-signed/mok/MOK.der"
    if ident == "fedora":
        return "/etc/pki/akmods/certs/public_key.der"
    return "/var/lib/dkms/mok.pub"


def kernel_headers(os: dict | None) -> str:
    """Install the headers DKMS needs to build the NVIDIA module for the running kernel."""
    fam = family(os)
    if fam == "dnf":
        return install(os, '"kernel-devel-$(uname -r)"', '"kernel-headers-$(uname -r)"')
    if fam == "zypper":
        return install(os, "kernel-default-devel")
    return install(os, '"linux-headers-$(uname -r)"')


def rebuild_initramfs(os: dict | None) -> str:
    """Regenerate the initramfs, so that module options and blacklists apply at boot."""
    return {"apt": "sudo update-initramfs -u", "dnf": "sudo dracut --force",
            "zypper": "sudo dracut --force"}.get(family(os) or "", "# regenerate the initramfs")


def update_grub(os: dict | None) -> str:
    """Regenerate the boot loader's configuration after editing /etc/default/grub."""
    return {"apt": "sudo update-grub", "dnf": "sudo grub2-mkconfig -o /boot/grub2/grub.cfg",
            "zypper": "sudo grub2-mkconfig -o /boot/grub2/grub.cfg"}.get(family(os) or "", "# regenerate the GRUB configuration")


def install_branch(os: dict | None, branch: str, open_modules: bool = False) -> str:
    """Install one driver branch in one flavour: Ubuntu's own package (nvidia-driver-580, -580-open), else NVIDIA's
    (cuda-drivers-580 is the proprietary flavour; nvidia-open-580 the open one)."""
    if ubuntu_based(os):
        package = f"nvidia-driver-{branch}" + ("-open" if open_modules else "")
    else:
        package = f"nvidia-open-{branch}" if open_modules else f"cuda-drivers-{branch}"
    return f"{install(os, package)}\nsudo reboot"


def install_fabric_manager(os: dict | None, branch: str) -> str:
    """Fabric Manager of the driver's branch, then started for good.

    Package names from NVIDIA's packaging repositories (NVIDIA/apt-packaging-fabric-manager,
    NVIDIA/yum-packaging-fabric-manager): cuda-drivers-fabricmanager-<branch> on apt, dnf and zypper;
    Ubuntu's own archive ships nvidia-fabricmanager-<branch>.
    """
    package = f"nvidia-fabricmanager-{branch}" if ubuntu_based(os) else f"cuda-drivers-fabricmanager-{branch}"
    return f"{install(os, package)}\nsudo systemctl enable --now nvidia-fabricmanager"


def hold_driver(os: dict | None) -> str:
    """Stop unattended upgrades from replacing the driver under a running kernel module."""
    return {
        "apt": "sudo apt-mark hold 'nvidia-*' 'libnvidia-*'",
        "dnf": "sudo dnf install -y python3-dnf-plugin-versionlock && sudo dnf versionlock add 'nvidia-*' 'libnvidia-*'",
        "zypper": "sudo zypper addlock 'nvidia-*' 'libnvidia-*'",
    }.get(family(os) or "", "# pin the NVIDIA driver packages at their current version")


def install_driver(os: dict | None, arch: str = "x86_64", open_modules: bool = True) -> str:
    """Install NVIDIA's driver from NVIDIA's repository for this release, then reboot.

    Commands per NVIDIA's Driver Installation Guide (r580-r620, "Open GPU kernel module
    installation" table): RHEL-family 8/9 and Amazon Linux 2023 enable a dnf module stream
    first; 10 and Fedora install directly. The zypper form follows the same packaging and was
    not read first-hand.
    """
    repo = nvidia_repo(os)
    fam = family(os)
    package = "nvidia-open" if open_modules else "cuda-drivers"
    repo_arch = {"aarch64": "sbsa"}.get(arch, arch)
    if not repo or not fam:
        name = (os or {}).get("pretty_name") or "this distribution"
        return (f"# NVIDIA publishes no driver packages for {name}: download the .run driver from\n"
                "# https://www.nvidia.com/Download/index.aspx, or move to a release NVIDIA supports (see system.os)\n"
                f"sudo sh NVIDIA-Linux-*.run -m={'kernel-open' if open_modules else 'kernel'}")
    base = f"{NVIDIA_REPOS}/{repo}/{repo_arch}"
    if fam == "apt":
        steps = [kernel_headers(os), f"wget {base}/cuda-keyring_1.1-1_all.deb",
                 "sudo dpkg -i cuda-keyring_1.1-1_all.deb", "sudo apt-get update", install(os, package)]
    elif fam == "dnf":
        add = (f"sudo dnf config-manager addrepo --from-repofile={base}/cuda-{repo}.repo" if (os or {}).get("id") == "fedora"
               else f"sudo dnf config-manager --add-repo {base}/cuda-{repo}.repo")
        stream = "open-dkms" if open_modules else "latest-dkms"
        module = [f"sudo dnf module enable -y nvidia-driver:{stream}"] if _uses_module_streams(os) else []
        steps = [kernel_headers(os), add, *module, install(os, package)]
    else:
        steps = [kernel_headers(os), f"sudo zypper addrepo {base}/cuda-{repo}.repo", "sudo zypper --gpg-auto-import-keys refresh",
                 install(os, package)]
    return "\n".join(steps + ["sudo reboot"])
