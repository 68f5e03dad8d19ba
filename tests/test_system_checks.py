"""The system area on real evidence: this machine's own recording and the H200 capture."""

from __future__ import annotations

import pytest
from evidence_helpers import (
    command,
    disk,
    env,
    file,
    fixture,
    judge,
    listdir,
    stat,
    this_machine,
)

GIB = 1 << 30
ARCH_OS_RELEASE = 'NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n'
ROCKY_OS_RELEASE = 'NAME="Rocky Linux"\nVERSION="9.4 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nPRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n'
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
NOUVEAU_LOADED = "nouveau 2240512 0 - Live 0x0000000000000000\ndrm_ttm_helper 16384 1 nouveau, Live 0x0000000000000000\n"


def on_rocky(ev):
    file(ev, "/etc/os-release", ROCKY_OS_RELEASE)
    return ev


DEBIAN_OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n'


def test_os_supported_here_and_on_the_h200():
    ev = this_machine()
    file(ev, "/etc/os-release", DEBIAN_OS_RELEASE)
    assert "debian12" in judge(ev, "system.os").summary
    result = judge(fixture("h200-2026-11-26"), "system.os")
    assert result.status.value == "pass" and "Ubuntu 24.04.3 LTS" in result.summary


def test_os_not_supported_by_nvidia_packages():
    ev = this_machine()
    file(ev, "/etc/os-release", ARCH_OS_RELEASE)
    result = judge(ev, "system.os")
    assert result.status.value == "warn" and "Arch Linux" in result.summary
    assert "NVIDIA-Linux" not in result.fix and "ubuntu 22.04/24.04/26.04" in result.fix


def test_os_unidentifiable():
    ev = this_machine()
    for path in ("/etc/os-release", "/usr/lib/os-release", "/etc/lsb-release"):
        file(ev, path, error="absent")
    result = judge(ev, "system.os")
    assert result.status.value == "warn" and "restore /etc/os-release" in result.fix


def test_kernel_on_an_unsupported_architecture():
    ev = this_machine()
    command(ev, "uname -a", stdout="Linux p9 5.14.0-427.el9.ppc64le #1 SMP Fri May 3 2024 ppc64le ppc64le ppc64le GNU/Linux")
    result = judge(ev, "system.kernel")
    assert result.status.value == "warn" and "ppc64le" in result.summary and "x86_64 or aarch64" in result.fix
    assert judge(this_machine(), "system.kernel").status.value == "pass"


def _dkms_without_headers(ev):
    release = ev.data["commands"]["uname -a"]["stdout"].split()[2]  # the recorded `uname -a`: "Linux vm 6.18.44-fc-v657 ..."
    listdir(ev, "/var/lib/dkms", ["nvidia"])
    listdir(ev, "/lib/modules", [release])
    stat(ev, f"/lib/modules/{release}/build", absent=True)
    return ev, release


def test_kernel_headers_missing_for_dkms_apt_and_dnf():
    ev, release = _dkms_without_headers(this_machine())
    result = judge(ev, "system.kernel_headers")
    assert result.status.value == "fail" and release in result.summary
    assert 'sudo apt-get install -y "linux-headers-$(uname -r)"' in result.fix and "dkms autoinstall" in result.fix
    ev, _ = _dkms_without_headers(on_rocky(this_machine()))
    assert 'sudo dnf install -y "kernel-devel-$(uname -r)"' in judge(ev, "system.kernel_headers").fix


def test_kernel_headers_present_or_no_dkms():
    ev, release = _dkms_without_headers(this_machine())
    stat(ev, f"/lib/modules/{release}/build", kind="dir")
    assert judge(ev, "system.kernel_headers").status.value == "pass"
    assert judge(this_machine(), "system.kernel_headers").status.value == "skip"


def _uefi(ev, secure_boot: str | None):
    stat(ev, "/sys/firmware/efi", kind="dir")
    if secure_boot is None:
        file(ev, SECURE_BOOT_VAR, error="permission denied")
    else:
        file(ev, SECURE_BOOT_VAR, "\x06\x00\x00\x00" + secure_boot)
    file(ev, "/proc/modules", "")
    return ev


def test_secure_boot_blocks_the_unsigned_module():
    # each distribution's DKMS signing key: Debian's wiki (SecureBoot, "DKMS"), Ubuntu's shim-signed, Fedora's akmods
    result = judge(_uefi(this_machine(), "\x01"), "system.secure_boot")
    assert result.status.value == "fail" and "mokutil --import /var/lib/dkms/mok.pub" in result.fix
    ubuntu = _uefi(this_machine(), "\x01")
    file(ubuntu, "/etc/os-release", 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n')
    assert "mokutil --import /var/lib/shim-signed/mok/MOK.der" in judge(ubuntu, "system.secure_boot").fix
    assert "mokutil --import /var/lib/dkms/mok.pub" in judge(on_rocky(_uefi(this_machine(), "\x01")), "system.secure_boot").fix


def test_secure_boot_states_that_pass_or_skip():
    assert judge(_uefi(this_machine(), "\x00"), "system.secure_boot").status.value == "pass"
    ev = _uefi(this_machine(), "\x01")
    file(ev, "/proc/modules", "nvidia 14299136 - - Live 0xffffffffc0400000 (O)\n")
    assert "signed and loaded" in judge(ev, "system.secure_boot").summary
    assert judge(_uefi(this_machine(), None), "system.secure_boot").status.value == "skip"
    ev = this_machine()
    stat(ev, "/sys/firmware/efi", absent=True)
    assert "legacy BIOS" in judge(ev, "system.secure_boot").summary


def test_nouveau_loaded_is_blacklisted_with_this_distros_initramfs_tool():
    ev = this_machine()
    file(ev, "/proc/modules", NOUVEAU_LOADED)
    result = judge(ev, "system.nouveau")
    assert result.status.value == "fail" and "blacklist nouveau" in result.fix and "sudo update-initramfs -u" in result.fix
    ev = on_rocky(this_machine())
    file(ev, "/proc/modules", NOUVEAU_LOADED)
    assert "sudo dracut --force" in judge(ev, "system.nouveau").fix


def test_nouveau_not_blacklisted_before_a_driver_install():
    ev = this_machine()
    file(ev, "/proc/modules", "virtio_net 61440 0 - Live 0x0000000000000000\n")
    result = judge(ev, "system.nouveau")
    assert result.status.value == "warn" and "blacklist-nouveau.conf" in result.fix
    listdir(ev, "/etc/modprobe.d", ["blacklist-nouveau.conf"])
    file(ev, "/etc/modprobe.d/blacklist-nouveau.conf", "blacklist nouveau\noptions nouveau modeset=0\n")
    assert "blacklisted" in judge(ev, "system.nouveau").summary


def test_nouveau_without_proc_modules():
    ev = this_machine()
    file(ev, "/proc/modules", error="absent")  # this machine's kernel has no loadable modules
    assert "no loadable modules" in judge(ev, "system.nouveau").summary


def test_glibc_too_old_for_current_wheels():
    ev = this_machine()
    command(ev, "ldd --version", stdout="ldd (GNU libc) 2.17\nCopyright (C) 2012 Free Software Foundation, Inc.\n")
    result = judge(ev, "system.glibc")
    assert result.status.value == "warn" and "2.28" in result.fix
    assert judge(fixture("h200-2026-11-26"), "system.glibc").summary == "glibc 2.39"


def test_small_memory():
    ev = this_machine()
    ev.data["machine"].update(memory_total=4 * GIB, memory_available=GIB)
    result = judge(ev, "system.resources")
    assert result.status.value == "warn" and "16 GiB" in result.fix
    assert judge(this_machine(), "system.resources").status.value == "pass"


@pytest.mark.parametrize("free, status", [(5 * GIB, "warn"), (GIB // 2, "fail")])
def test_disk_nearly_full(free, status):
    ev = this_machine()
    disk(ev, "/", 100 * GIB, free)
    result = judge(ev, "system.disk")
    assert result.status.value == status and "du -xh --max-depth=2 /" in result.fix


def _docker_shm(ev):
    disk(ev, "/dev/shm", 64 << 20, 64 << 20)  # Docker's default, as `df -h /dev/shm` shows in bytedance/Protenix#2
    return ev


def test_small_shm_fix_follows_the_container_runtime():
    ev = _docker_shm(this_machine())
    stat(ev, "/.dockerenv", kind="file")
    result = judge(ev, "system.shm")
    assert result.status.value == "warn" and "64 MiB" in result.summary and "--ipc=host" in result.fix
    ev = _docker_shm(this_machine())
    env(ev, KUBERNETES_SERVICE_HOST="10.0.0.1")
    assert "emptyDir" in judge(ev, "system.shm").fix
    ev = _docker_shm(this_machine())
    stat(ev, "/.dockerenv", absent=True)
    file(ev, "/proc/1/cgroup", "0::/init.scope\n")
    assert judge(ev, "system.shm").fix == "sudo mount -o remount,size=50% /dev/shm"


def test_shm_missing_or_not_writable():
    ev = this_machine()
    ev.data["disk_usage"]["/dev/shm"] = None
    stat(ev, "/dev/shm", absent=True)
    assert "mount -t tmpfs" in judge(ev, "system.shm").fix
    ev = this_machine()
    stat(ev, "/dev/shm", kind="dir", mode="0o755", writable=False)
    result = judge(ev, "system.shm")
    assert result.status.value == "fail" and result.fix == "sudo chmod 1777 /dev/shm"


def test_container_and_wsl_detection():
    ev = this_machine()
    env(ev, WSL_DISTRO_NAME="Ubuntu")
    assert "WSL2" in judge(ev, "system.container").summary
    ev = this_machine()
    stat(ev, "/.dockerenv", absent=True)
    stat(ev, "/run/.containerenv", kind="file")
    assert "Podman" in judge(ev, "system.container").summary
