"""The driver area on the H200 capture, this driverless machine, and real incident messages."""

from __future__ import annotations

import pytest
from evidence_helpers import (
    NVIDIA_SMI_FAILURES,
    command,
    env,
    file,
    fixture,
    gpu_on_bus,
    judge,
    judge_all,
    listdir,
    nvml_device,
    stat,
    this_machine,
)

ROCKY = 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nPRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n'
SLES = 'NAME="SLES"\nVERSION_ID="15.6"\nID="sles"\nID_LIKE="suse"\nPRETTY_NAME="SUSE Linux Enterprise Server 15 SP6"\n'
DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n'
PROPRIETARY = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Release Build  (dvs-builder@U16-I3-B03-4-3)\n"


def h200():
    return fixture("h200-2026-11-26")


def in_docker(ev, docker=True):
    """Record every container marker the container collector reads: Docker's, or none."""
    stat(ev, "/.dockerenv", kind="file") if docker else stat(ev, "/.dockerenv", absent=True)
    for path in ("/run/.containerenv", "/dev/dxg"):
        stat(ev, path, absent=True)
    file(ev, "/proc/1/cgroup", "0::/\n")
    return ev


def host_machine(os_release=DEBIAN):
    """This machine's evidence as a bare host (not a container) of the given distribution, with an NVIDIA GPU
    on its PCI bus and no driver: the machine a driver install is for."""
    ev = gpu_on_bus(in_docker(this_machine(), docker=False))
    file(ev, "/etc/os-release", os_release)
    return ev


# driver.loaded --------------------------------------------------------------------------------
def test_no_driver_on_debian_12_gets_nvidias_debian12_repo():
    result = judge(host_machine(), "driver.loaded")
    assert result.status.value == "fail" and "no NVIDIA driver is loaded" in result.summary
    assert result.fix.splitlines() == [
        'sudo apt-get install -y "linux-headers-$(uname -r)"',
        "wget https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb",
        "sudo dpkg -i cuda-keyring_1.1-1_all.deb", "sudo apt-get update", "sudo apt-get install -y nvidia-open", "sudo reboot"]


def test_no_driver_on_rocky_9_enables_the_module_stream_first():
    fix = judge(host_machine(ROCKY), "driver.loaded").fix.splitlines()
    assert fix[1:4] == ["sudo dnf config-manager --add-repo https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/cuda-rhel9.repo",
                        "sudo dnf module enable -y nvidia-driver:open-dkms", "sudo dnf install -y nvidia-open"]
    fedora = judge(host_machine('ID=fedora\nVERSION_ID=42\nPRETTY_NAME="Fedora Linux 42"\n'), "driver.loaded").fix
    assert "module enable" not in fedora and "addrepo --from-repofile=https://developer.download.nvidia.com/compute/cuda/repos/fedora42" in fedora


@pytest.mark.parametrize("os_release, expected", [
    (ROCKY, "sudo dnf config-manager --add-repo https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/cuda-rhel9.repo"),
    (SLES, "sudo zypper addrepo https://developer.download.nvidia.com/compute/cuda/repos/sles15/x86_64/cuda-sles15.repo"),
    ('ID=arch\nPRETTY_NAME="Arch Linux"\n', "sudo sh NVIDIA-Linux-*.run -m=kernel-open"),
])
def test_no_driver_fix_follows_the_distribution(os_release, expected):
    assert expected in judge(host_machine(os_release), "driver.loaded").fix


def test_no_driver_in_a_container_gives_host_steps_only_as_comments():
    result = judge(in_docker(host_machine()), "driver.loaded")
    assert "this Docker container cannot change the host's driver" in result.fix and "docker run --gpus all" in result.fix
    assert "# on the host" in result.fix and "repos/debian12" in result.fix
    assert all(line.startswith("#") for line in result.fix.splitlines()), result.fix


def test_no_driver_and_no_gpu_on_the_bus_is_no_driver_problem():
    ev = this_machine()
    assert judge(ev, "driver.loaded").status.value == "skip"
    present = judge(ev, "gpu.present")
    assert present.status.value == "fail" and "there is no NVIDIA GPU on this machine" in present.summary
    assert "KVM virtual machine" in present.summary and "Docker container" in present.summary
    assert "install" not in present.fix.replace("instance", "") and "reboot" not in present.fix


def test_wsl_without_a_windows_driver():
    ev = host_machine()
    env(ev, WSL_DISTRO_NAME="Ubuntu-24.04")
    result = judge(ev, "driver.loaded")
    assert result.status.value == "fail" and "on Windows" in result.fix


def test_driver_loaded_on_the_h200():
    assert judge(h200(), "driver.loaded").summary == "NVIDIA driver 580.159.04 is loaded (open kernel module)"


# driver.module_flavor -------------------------------------------------------------------------
def test_open_module_on_hopper_is_right():
    assert judge(h200(), "driver.module_flavor").status.value == "pass"


def test_open_module_cannot_drive_volta():
    ev = h200()
    nvml_device(ev, name="Tesla V100-SXM2-32GB", cuda_compute_capability=[7, 0])
    result = judge(ev, "driver.module_flavor")
    assert result.status.value == "fail" and "sm_70" in result.summary
    assert "sudo apt-get install -y cuda-drivers" in result.fix and "repos/ubuntu2404" in result.fix


def test_proprietary_module_cannot_drive_blackwell():
    ev = h200()
    file(ev, "/proc/driver/nvidia/version", PROPRIETARY)
    nvml_device(ev, name="NVIDIA B200", cuda_compute_capability=[10, 0])
    result = judge(ev, "driver.module_flavor")
    assert result.status.value == "fail" and "sudo apt-get install -y nvidia-open" in result.fix
    nvml_device(ev, name="NVIDIA H200", cuda_compute_capability=[9, 0])
    assert judge(ev, "driver.module_flavor").status.value == "pass"


# driver.nvml_matches_kernel -------------------------------------------------------------------
def test_library_mismatch_after_an_upgrade_without_reboot():
    ev = h200()
    ev.data["nvml"] = {"error": {"name": "NVMLError_LibRmVersionMismatch", "code": 18,
                                 "message": "RM has detected an NVML/RM version mismatch."},
                       "library_path": "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.95.05", "library_version": "580.95.05"}
    command(ev, "nvidia-smi -q -x", rc=18, stdout=NVIDIA_SMI_FAILURES["version_mismatch"][1])
    result = judge(ev, "driver.nvml_matches_kernel")
    assert result.status.value == "fail" and "kernel module 580.159.04, NVML library 580.95.05" in result.summary
    assert result.fix.splitlines()[-1].startswith("sudo reboot") and "sudo apt-mark hold 'nvidia-*' 'libnvidia-*'" in result.fix


def test_mismatch_seen_only_in_the_kernel_log():
    ev = h200()
    command(ev, "dmesg", stdout="[ 5.0] NVRM: API mismatch: the client has the version 580.95.05, but\n"
                                "NVRM: this kernel module has the version 580.159.04.\n")
    assert judge(ev, "driver.nvml_matches_kernel").status.value == "fail"


def test_nvml_library_missing_beside_a_loaded_module():
    ev = h200()
    ev.data["nvml"] = {"error": {"name": "NVMLError_LibraryNotFound", "code": 12, "message": "NVML Shared Library Not Found"}}
    result = judge(ev, "driver.nvml_matches_kernel")
    assert result.status.value == "fail" and "libnvidia-ml" in result.summary and "nvidia-open" in result.fix


def test_nvml_matches_on_the_h200_and_skips_without_answer():
    assert judge(h200(), "driver.nvml_matches_kernel").summary == "NVML library 580.159.04 matches kernel module 580.159.04"
    ev = h200()
    ev.data["nvml"] = {"error": {"name": "NVMLError_NoPermission", "code": 4, "message": "Insufficient Permissions"}}
    assert judge(ev, "driver.nvml_matches_kernel").status.value == "skip"
    assert judge(host_machine(), "driver.nvml_matches_kernel").status.value == "skip"


# driver.nvidia_smi ----------------------------------------------------------------------------
@pytest.mark.parametrize("category, fix", [
    ("version_mismatch", "sudo reboot"), ("driver_not_loaded", "sudo modprobe nvidia"), ("no_permission", "usermod -aG video"),
    ("no_devices", "RmInitAdapter"), ("gpu_lost", "sudo reboot"), ("inforom_corrupt", "RMA"),
    ("nvml_unknown_error", "nvidia-ctk system create-dev-char-symlinks --create-all"), ("other", "sudo dmesg | grep -i nvrm"),
])
def test_nvidia_smi_failures_get_the_fix_for_their_cause(category, fix):
    rc, output = NVIDIA_SMI_FAILURES[category]
    ev = h200()
    command(ev, "nvidia-smi -q -x", rc=rc, stdout=output)
    result = judge(ev, "driver.nvidia_smi")
    assert result.status.value == "fail" and f"exit {rc}" in result.summary and fix in result.fix


def test_nvidia_smi_missing_or_hung():
    ev = h200()
    command(ev, "nvidia-smi -q -x", rc=None, error="command not found")
    assert judge(ev, "driver.nvidia_smi").fix == "sudo apt-get install -y nvidia-utils"
    command(ev, "nvidia-smi -q -x", rc=None, error="timed out", duration_s=10.0)
    result = judge(ev, "driver.nvidia_smi")
    assert "hung for 10 s" in result.summary and "sudo reboot" in result.fix


def test_nvidia_smi_works_on_the_h200():
    assert judge(h200(), "driver.nvidia_smi").summary == "nvidia-smi works: driver 580.159.04, CUDA 13.0, 1 GPU(s), 0.12 s"


# driver.device_nodes --------------------------------------------------------------------------
def test_device_nodes_not_accessible_to_this_user():
    ev = h200()
    stat(ev, "/dev/nvidia0", mode="0o660", group="video", readable=False, writable=False)
    ev.data["user"] = {"uid": 1000, "name": "alice", "groups": ["alice"]}
    result = judge(ev, "driver.device_nodes")
    assert result.status.value == "fail" and "sudo usermod -aG video alice" in result.fix
    assert "NVreg_DeviceFileMode=0666" in result.fix and "update-initramfs -u" in result.fix


def test_device_nodes_missing_on_a_host_and_in_a_container():
    ev = h200()
    listdir(ev, "/dev", ["nvidia-uvm"])
    assert "sudo nvidia-modprobe -c 0 -u" in judge(ev, "driver.device_nodes").fix
    assert "docker run --gpus all" in judge(in_docker(ev), "driver.device_nodes").fix


def test_device_nodes_fine_on_the_h200_and_skipped_without_driver():
    assert judge(h200(), "driver.device_nodes").status.value == "pass"
    assert judge(host_machine(), "driver.device_nodes").status.value == "skip"


# driver.uvm -----------------------------------------------------------------------------------
def test_uvm_not_loaded_or_without_its_node():
    ev = h200()
    listdir(ev, "/dev", ["nvidia0", "nvidiactl"])
    file(ev, "/proc/modules", "nvidia 14299136 - - Live 0xffffffffc0400000 (O)\n")
    result = judge(ev, "driver.uvm")
    assert result.status.value == "fail" and "sudo modprobe nvidia_uvm" in result.fix and "modules-load.d" in result.fix
    file(ev, "/proc/modules", (fixture("h200-2026-11-26").data["files"]["/proc/modules"]["text"]))
    assert judge(ev, "driver.uvm").fix == "sudo nvidia-modprobe -c 0 -u"


def test_uvm_hmm_failure_on_kaslr_kernels():
    ev = h200()
    command(ev, "dmesg", stdout="[ 4.2] nvidia-uvm: uvm_pmm_gpu.c:3176 devmem_alloc_pagemap[pid:812] request_free_mem_region() err -34\n")
    result = judge(ev, "driver.uvm")  # CUDA 13.2 release notes, known issue 2.5.1
    assert result.status.value == "fail" and "uvm_disable_hmm=1" in result.fix


# driver.persistence ---------------------------------------------------------------------------
def test_persistence_legacy_mode_on_the_h200():
    result = judge(h200(), "driver.persistence")
    assert result.status.value == "warn" and "deprecated" in result.summary
    assert result.fix.startswith("sudo systemctl enable --now nvidia-persistenced")


def test_persistence_off_on_the_v100_server():
    result = judge(fixture("v100s-8gpu-training-460"), "driver.persistence")
    assert result.status.value == "warn" and "off on 8 GPU(s)" in result.summary
    assert "nvidia-persistenced" in result.fix


def test_persistence_daemon_running_or_mode_on():
    ev = h200()
    command(ev, "systemctl is-active nvidia-persistenced nvidia-fabricmanager", rc=3, stdout="active\ninactive\n")
    assert judge(ev, "driver.persistence").summary == "nvidia-persistenced is running"
    assert judge(fixture("gtx1050-laptop-515"), "driver.persistence").status.value == "pass"


# driver.fabric_manager ------------------------------------------------------------------------
def _nvswitch_board(ev, fm_state: str):
    """An HGX board: the GPU and four NVSwitch bridges (class 0x0680) in sysfs."""
    bdfs = ["0000:00:06.0"] + [f"0000:0{i}:00.0" for i in range(5, 9)]
    listdir(ev, "/sys/bus/pci/devices", bdfs)
    for bdf in bdfs:
        file(ev, f"/sys/bus/pci/devices/{bdf}/vendor", "0x10de\n")
        file(ev, f"/sys/bus/pci/devices/{bdf}/class", "0x030200\n" if bdf.endswith("06.0") else "0x068000\n")
    command(ev, "systemctl is-active nvidia-persistenced nvidia-fabricmanager", rc=3, stdout=f"active\n{fm_state}\n")
    return ev


def test_fabric_manager_missing_on_an_nvswitch_board():
    result = judge(_nvswitch_board(h200(), "inactive"), "driver.fabric_manager")
    assert result.status.value == "fail" and "4 NVSwitch(es)" in result.summary and "802" in result.summary
    assert "sudo apt-get install -y nvidia-fabricmanager-580" in result.fix and "enable --now nvidia-fabricmanager" in result.fix
    rocky = _nvswitch_board(h200(), "inactive")
    file(rocky, "/etc/os-release", ROCKY)
    assert "sudo dnf install -y cuda-drivers-fabricmanager-580" in judge(rocky, "driver.fabric_manager").fix
    assert judge(_nvswitch_board(h200(), "active"), "driver.fabric_manager").status.value == "pass"


def test_fabric_not_started_reported_by_nvml():
    ev = h200()
    nvml_device(ev, fabric_state=1)
    assert judge(ev, "driver.fabric_manager").status.value == "fail"


def test_fabric_manager_failing_where_there_is_no_nvswitch():
    ev = _nvswitch_board(h200(), "failed")
    listdir(ev, "/sys/bus/pci/devices", ["0000:00:06.0"])
    result = judge(ev, "driver.fabric_manager")
    assert result.status.value == "warn" and result.fix == "sudo systemctl disable --now nvidia-fabricmanager"
    command(ev, "systemctl is-active nvidia-persistenced nvidia-fabricmanager", rc=3, stdout="active\ninactive\n")
    assert "not needed" in judge(ev, "driver.fabric_manager").summary
    assert judge(h200(), "driver.fabric_manager").status.value == "skip"


def test_wsl_with_the_windows_driver_passes():
    ev = in_docker(h200(), docker=False)
    env(ev, WSL_DISTRO_NAME="Ubuntu-24.04")
    file(ev, "/proc/driver/nvidia/version", error="absent")  # WSL2 exposes /dev/dxg, not the Linux module
    file(ev, "/sys/module/nvidia/version", error="absent")
    assert judge(ev, "driver.loaded").summary == "WSL2 uses the Windows driver 580.159.04"


# driver.container_cuda ------------------------------------------------------------------------
def test_image_needs_a_newer_cuda_than_the_host_driver():
    # nvidia/cuda images set NVIDIA_REQUIRE_CUDA; the toolkit's refusal reads
    # "unsatisfied condition: cuda>=12.8, please update your driver" (SyneRBI/PETRIC2#27)
    ev = h200()
    env(ev, NVIDIA_REQUIRE_CUDA="cuda>=13.2 brand=tesla,driver>=535,driver<536")
    result = judge(ev, "driver.container_cuda")
    assert result.status.value == "fail" and "supports CUDA 13.0" in result.summary
    assert ">= 595.45.04 (CUDA 13.2's own driver)" in result.fix and "NVIDIA_DISABLE_REQUIRES=true" in result.fix
    env(ev, NVIDIA_REQUIRE_CUDA="cuda>=12.8 brand=tesla,driver>=470,driver<471")
    assert judge(ev, "driver.container_cuda").status.value == "pass"
    assert judge(h200(), "driver.container_cuda").status.value == "skip"
    v100 = fixture("v100s-8gpu-training-460")
    env(v100, NVIDIA_REQUIRE_CUDA="cuda>=11.8")
    assert "supports CUDA 11.2" in judge(v100, "driver.container_cuda").summary


def test_sandbox_hiding_proc_driver_but_nvml_working():
    # sandboxed runtimes (GPU proxies) can hide /proc/driver/nvidia while NVML answers
    ev = h200()
    for path in ("/proc/driver/nvidia/version", "/sys/module/nvidia/version"):
        file(ev, path, error="absent")
    listdir(ev, "/proc/driver/nvidia/gpus", None)
    results = judge_all(ev)
    assert "answers through NVML" in results["driver.loaded"].summary and results["driver.loaded"].status.value == "pass"
    assert "hidden here" in results["driver.nvml_matches_kernel"].summary
    assert results["gpu.ecc"].status.value == "pass" and results["driver.uvm"].status.value == "pass"
    assert not [r.id for r in results.values() if r.status.value in ("fail", "error")]
