"""The gpu area on three real machines (H200, 8×V100S in training, GTX 1050 laptop) and incidents."""

from __future__ import annotations

import pytest
from evidence_helpers import (
    FIXTURES,
    command,
    env,
    file,
    fixture,
    judge,
    judge_all,
    listdir,
    nvml_device,
    stat,
    this_machine,
)

GIB = 1 << 30
XID_79 = "[81234.5] NVRM: Xid (PCI:0000:00:06): 79, pid=0, GPU has fallen off the bus.\n"  # NVIDIA/open-gpu-kernel-modules#507
XID_31 = ("[9.2] NVRM: Xid (PCI:0000:00:06): 31, Ch 0000003b, intr 10000000. MMU Fault: ENGINE GRAPHICS "
          "HUBCLIENT_SCC faulted @ 0x0_04687000. Fault is of type FAULT_PDE ACCESS_TYPE_READ\n")


def h200():
    return fixture("h200-2026-11-26")


def test_the_h200_capture_is_healthy():
    results = judge_all(h200())
    assert not [r.id for r in results.values() if r.status.value in ("fail", "error")]
    assert sorted(r.id for r in results.values() if r.status.value == "warn") == ["driver.persistence"]
    gpu = {k: v for k, v in results.items() if k.startswith("gpu.") and k not in ("gpu.p2p", "gpu.present")}
    assert results["gpu.present"].status.value == "skip"  # the capture did not record the PCI bus
    assert all(r.status.value == "pass" for r in gpu.values()), {k: v.summary for k, v in gpu.items()}
    assert "p2p" in results["gpu.p2p"].summary  # one GPU, and the capture has no `topo -p2p`: skipped
    assert gpu["gpu.inventory"].details == ("GPU0 (0000:00:06.0): NVIDIA H200, 140.4 GiB, sm_90",)


def test_no_driver_makes_gpu_checks_skip_with_the_reason():
    ev = this_machine()
    file(ev, "/proc/driver/nvidia/version", error="absent")
    results = judge_all(ev)
    needs_driver = [r for r in results.values() if r.area == "gpu" and r.id not in ("gpu.present", "gpu.visible_devices")]
    assert needs_driver and all(r.status.value == "skip" and "driver.loaded" in r.summary for r in needs_driver)


# gpu.visible ----------------------------------------------------------------------------------
def test_a_gpu_on_the_bus_that_the_driver_did_not_claim():
    ev = h200()
    listdir(ev, "/sys/bus/pci/devices", ["0000:00:06.0", "0000:00:07.0"])
    for bdf in ("0000:00:06.0", "0000:00:07.0"):
        file(ev, f"/sys/bus/pci/devices/{bdf}/vendor", "0x10de\n")
        file(ev, f"/sys/bus/pci/devices/{bdf}/class", "0x030200\n")
    result = judge(ev, "gpu.visible")
    assert result.status.value == "fail" and "unclaimed: 0000:00:07.0" in result.summary
    assert "lspci -k -s 0000:00:07.0" in result.fix


def test_a_gpu_the_driver_knows_but_nvml_lost():
    ev = h200()
    ev.data["nvml"]["devices"] = [{"index": 0, "error": "NVMLError_GpuIsLost: GPU is lost", "code": 15}]
    result = judge(ev, "gpu.visible")
    assert result.status.value == "fail" and "fallen off the bus" in result.summary and "sudo reboot" in result.fix


def test_all_gpus_visible():
    assert judge(h200(), "gpu.visible").summary == "1 GPU(s): 1 claimed by the driver, 1 answering NVML"


# gpu.ecc and gpu.memory_health ----------------------------------------------------------------
def test_uncorrected_ecc_errors_since_reset():
    ev = h200()
    nvml_device(ev, ecc_uncorrected_volatile=2, ecc_uncorrected_aggregate=2)
    result = judge(ev, "gpu.ecc")
    assert result.status.value == "fail" and "sudo nvidia-smi -r -i 0" in result.fix and "dcgmi diag -r 3" in result.fix


def test_ecc_turned_off_and_ecc_history():
    ev = h200()
    nvml_device(ev, ecc_mode=[0, 0])
    assert judge(ev, "gpu.ecc").fix == "sudo nvidia-smi -i 0 -e 1 && sudo reboot"
    ev = h200()
    nvml_device(ev, ecc_uncorrected_aggregate=3)
    result = judge(ev, "gpu.ecc")
    assert result.status.value == "warn" and "ROW_REMAPPER" in result.fix


def test_ecc_on_real_machines():
    assert judge(fixture("v100s-8gpu-training-460"), "gpu.ecc").summary == "ECC on, no uncorrected errors on 8 GPU(s)"
    assert "not supported" in judge(fixture("gtx1050-laptop-515"), "gpu.ecc").summary


@pytest.mark.parametrize("rows, retired, words", [
    ([0, 1, 0, 1], {"error": "NVMLError_NotSupported: Not Supported"}, "RMA"),
    ([0, 1, 1, 0], {"error": "NVMLError_NotSupported: Not Supported"}, "sudo nvidia-smi -r -i 0"),
    ({"error": "NVMLError_NotSupported: Not Supported"}, 1, "sudo nvidia-smi -r -i 0"),
])
def test_row_remap_and_page_retirement_states(rows, retired, words):
    ev = h200()
    nvml_device(ev, remapped_rows=rows, retired_pages_pending=retired)
    result = judge(ev, "gpu.memory_health")
    assert result.status.value == "fail" and words in result.fix


def test_memory_health_on_real_machines():
    assert judge(h200(), "gpu.memory_health").status.value == "pass"
    assert "not reported" in judge(fixture("gtx1050-laptop-515"), "gpu.memory_health").summary


# gpu.xid --------------------------------------------------------------------------------------
def test_xid_79_fails_with_its_action():
    ev = h200()
    command(ev, "dmesg", stdout=ev.data["commands"]["dmesg"]["stdout"] + XID_79)
    result = judge(ev, "gpu.xid")
    assert result.status.value == "fail" and "Xid 79 × 1 on 0000:00:06" in result.details[0]
    assert "Reboot" in result.fix


def test_application_xid_is_a_warning():
    ev = h200()
    command(ev, "dmesg", stdout=XID_31)
    result = judge(ev, "gpu.xid")
    assert result.status.value == "warn" and "compute-sanitizer" in result.fix


def test_unknown_xid_points_at_the_catalog():
    ev = h200()
    command(ev, "dmesg", stdout="NVRM: Xid (PCI:0000:00:06): 999, something new\n")
    assert "analyzing-xid-catalog" in judge(ev, "gpu.xid").fix


def test_kernel_log_restricted_to_root():
    ev = h200()
    command(ev, "dmesg", rc=1, stderr="dmesg: read kernel buffer failed: Operation not permitted\n")
    file(ev, "/proc/sys/kernel/dmesg_restrict", "1\n")
    result = judge(ev, "gpu.xid")
    assert result.status.value == "skip" and "dmesg_restrict=1" in result.summary
    assert any("sudo dmesg" in line for line in result.details)


# gpu.pcie_link --------------------------------------------------------------------------------
def test_a_laptop_gpu_wired_x8_is_not_told_to_find_an_x16_slot():
    """A GTX 1050 Mobile (PCI id 0x1C8D, 'GP107M' in the PCI ID Repository) is capable of x16 and wired x8: no slot to change."""
    result = judge(fixture("gtx1050-laptop-515"), "gpu.pcie_link")
    assert result.status.value == "pass" and "x16 slot" not in (result.fix or "")
    assert result.details == ("GPU0 (0000:01:00.0): x8 of x16: a mobile GPU's link width is fixed by its board, not a slot",)


def test_idle_gpu_trains_its_link_down_without_a_warning():
    ev = h200()
    nvml_device(ev, pcie_gen_cur=1)
    result = judge(ev, "gpu.pcie_link")
    assert result.status.value == "pass" and "idle" in result.summary
    nvml_device(ev, throttle_reasons=0, performance_state=0)
    assert judge(ev, "gpu.pcie_link").status.value == "warn"


# gpu.thermal ----------------------------------------------------------------------------------
def test_hardware_slowdown_is_reported():
    ev = h200()
    nvml_device(ev, throttle_reasons=0x4 | 0x40, temperature_gpu=88)
    result = judge(ev, "gpu.thermal")
    assert result.status.value == "warn" and "hardware thermal slowdown at 88 °C" in result.details[0]
    assert "nvidia-smi -q -i 0 -d TEMPERATURE,PERFORMANCE" in result.fix and "-pl" not in result.fix  # the limit is the default


def test_sw_power_cap_under_load_is_normal():
    assert judge(fixture("v100s-8gpu-training-460"), "gpu.thermal").summary == "no thermal or power throttling; hottest GPU 66 °C"


# gpu.mig, gpu.compute_mode --------------------------------------------------------------------
def test_mig_on_or_pending():
    ev = h200()
    nvml_device(ev, mig_mode=[1, 1])
    result = judge(ev, "gpu.mig")
    assert result.status.value == "warn" and "sudo nvidia-smi -i 0 -mig 0" in result.fix and "nvidia-smi -L" in result.fix
    nvml_device(ev, mig_mode=[0, 1])
    assert judge(ev, "gpu.mig").fix == "sudo nvidia-smi -r -i 0   # or reboot"


@pytest.mark.parametrize("mode, status", [(2, "fail"), (3, "warn")])
def test_compute_mode_keeps_processes_out(mode, status):
    ev = h200()
    nvml_device(ev, compute_mode=mode)
    result = judge(ev, "gpu.compute_mode")
    assert result.status.value == status and result.fix.splitlines()[0] == "sudo nvidia-smi -i 0 -c DEFAULT"


def test_exclusive_process_under_mps_is_how_nvidia_sets_mps_up():
    """NVIDIA's MPS guide starts its daemon after `nvidia-smi -i 0 -c EXCLUSIVE_PROCESS`, and "exclusive-mode
    restrictions are applied to the MPS server, not MPS clients" (an MPS node in NVIDIA's own report shows
    "E. Process": kubernetes-sigs/dra-driver-nvidia-gpu#889). With the daemon's socket where this environment's
    processes look for it, nothing is turned away, and `-c DEFAULT` would be the wrong fix."""
    ev = h200()
    nvml_device(ev, compute_mode=3)
    stat(ev, "/tmp/nvidia-mps/control", kind="socket", mode="0o777")  # "Starting control daemon using socket ..."
    result = judge(ev, "gpu.compute_mode")
    assert result.status.value == "pass" and result.summary == (
        "compute mode Exclusive_Process on 1 GPU(s), with an MPS control daemon's socket at /tmp/nvidia-mps/control: "
        "its clients share a GPU (NVIDIA's MPS setup)")
    stat(ev, "/tmp/nvidia-mps/control", kind="socket", mode="0o755", writable=False)  # this user cannot connect
    assert judge(ev, "gpu.compute_mode").status.value == "warn"
    stat(ev, "/tmp/nvidia-mps/control", kind="socket", mode="0o777")
    env(ev, CUDA_MPS_PIPE_DIRECTORY="/run/mps")  # the clients look elsewhere: they are not the daemon's
    result = judge(ev, "gpu.compute_mode")
    assert result.status.value == "warn" and result.fix.splitlines()[1].endswith('[gpus] compute_mode = "Exclusive_Process"')


# gpu.processes --------------------------------------------------------------------------------
def test_a_training_job_holds_every_v100():
    result = judge(fixture("v100s-8gpu-training-460"), "gpu.processes")
    assert result.status.value == "warn" and "8 of 8" in result.summary
    assert result.fix.splitlines()[0] == "kill 37305   # if they are yours and stale"


def test_memory_held_by_another_container_and_idle_gpus():
    ev = h200()
    nvml_device(ev, memory={"total": 150754820096, "free": 30 * GIB, "used": 110 * GIB})
    result = judge(ev, "gpu.processes")
    assert result.status.value == "warn" and "cannot see" in result.details[0] and "fuser" in result.fix
    assert "no other process" in judge(fixture("gtx1050-laptop-515"), "gpu.processes").summary


# gpu.visible_devices --------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", "-1"])
def test_cuda_visible_devices_hiding_every_gpu(value):
    # the capture's own probes/torch-cuda-visible-devices-empty.txt: PyTorch says nothing, sees no GPU
    ev = h200()
    env(ev, CUDA_VISIBLE_DEVICES=value)
    result = judge(ev, "gpu.visible_devices")
    assert result.status.value == "fail" and result.fix.startswith("unset CUDA_VISIBLE_DEVICES")


def test_cuda_visible_devices_naming_a_missing_gpu():
    ev = fixture("v100s-8gpu-training-460")
    env(ev, CUDA_VISIBLE_DEVICES="7,8")  # scripts hard-coding an index: sherdencooper/GPTFuzz PR#5
    result = judge(ev, "gpu.visible_devices")
    assert result.status.value == "fail" and "names 8" in result.summary
    assert result.fix.startswith("export CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7")


def test_cuda_visible_devices_subset_and_uuid():
    ev = fixture("v100s-8gpu-training-460")
    env(ev, CUDA_VISIBLE_DEVICES="GPU-76098dc1,3")
    result = judge(ev, "gpu.visible_devices")
    assert result.status.value == "pass" and "2 of 8" in result.summary


def test_container_given_no_gpu_by_the_runtime():
    ev = h200()
    env(ev, NVIDIA_VISIBLE_DEVICES="void")
    stat(ev, "/.dockerenv", kind="file")
    for path in ("/run/.containerenv", "/dev/dxg"):
        stat(ev, path, absent=True)
    file(ev, "/proc/1/cgroup", "0::/\n")
    assert "docker run --gpus all" in judge(ev, "gpu.visible_devices").fix


def test_temperature_at_the_slowdown_threshold():
    ev = h200()
    nvml_device(ev, temperature_gpu=87, temperature_slowdown=87)
    assert "at its slowdown threshold 87 °C" in judge(ev, "gpu.thermal").details[0]


@pytest.mark.parametrize("value, bad", [("GPU-00000000", "GPU-00000000"), ("0,gpu0", "gpu0")])
def test_cuda_visible_devices_with_unknown_uuids_or_names(value, bad):
    ev = h200()
    env(ev, CUDA_VISIBLE_DEVICES=value)
    result = judge(ev, "gpu.visible_devices")
    assert result.status.value == "fail" and f"names {bad}" in result.summary


def test_a_second_gpu_only_a_legacy_branch_supports_is_not_worth_the_working_ones():
    # the kernel's own words when a driver branch has dropped a GPU's architecture (NixOS/nixos-hardware#1828);
    # here beside an H200 that this driver runs: installing the 580 legacy branch for the old card would stop the H200
    ev = h200()
    command(ev, "dmesg", stdout="[ 3.1] NVRM: The NVIDIA GeForce GTX 1080 GPU installed in this system is\n"
                                "[ 3.1] NVRM:  supported through the NVIDIA 580.xx Legacy drivers. Please\n"
                                "[ 3.1] NVRM:  visit http://www.nvidia.com/object/unix.html for more\n"
                                "[ 3.1] NVRM:  information.  The 590.44.01 NVIDIA driver will ignore\n")
    result = judge(ev, "gpu.visible")
    assert result.status.value == "warn" and "580.xx legacy branch" in result.summary and "1 GPU(s) work" in result.summary
    assert "apt-get install" not in result.fix and "[ 3.1] NVRM: The NVIDIA GeForce GTX 1080 GPU installed in this system is" in result.details


def test_gsp_timeout_without_an_xid_number_counts_as_xid_119():
    ev = h200()
    command(ev, "dmesg", stdout="[ 77.0] NVRM: _kgspLogRpcTimeout: GPU at PCI:0000:00:06.0: Timeout waiting for RPC from GSP!\n")
    result = judge(ev, "gpu.xid")  # NVIDIA/open-gpu-kernel-modules#446
    assert result.status.value == "fail" and "Xid 119" in result.details[0] and "525.105.17" in result.fix


# gpu.p2p --------------------------------------------------------------------------------------
P2P_OK = (FIXTURES / "p2p-8gpu-passthrough/nvidia-smi-topo-p2p-r.out").read_text()


def v100_with_p2p(matrix: str):
    ev = fixture("v100s-8gpu-training-460")
    command(ev, "nvidia-smi topo -p2p r", stdout=matrix)
    return ev


def test_p2p_ok_between_all_eight():
    assert judge(v100_with_p2p(P2P_OK), "gpu.p2p").summary == "every pair of the 8 GPUs can use peer-to-peer reads"


def test_p2p_blocked_by_the_chipset():
    rows = P2P_OK.splitlines()
    rows[1] = rows[1].replace("X\tOK", "X\tCNS", 1)
    rows[2] = rows[2].replace("OK\tX", "CNS\tX", 1)
    result = judge(v100_with_p2p("\n".join(rows) + "\n"), "gpu.p2p")
    assert result.status.value == "warn" and result.details == ("GPU0-GPU1: CNS (the chipset does not support it)",)
    assert "iommu=pt" in result.fix and "NCCL_P2P_DISABLE=1" in result.fix


def test_p2p_skipped_on_one_gpu():
    ev = h200()
    command(ev, "nvidia-smi topo -p2p r", stdout=" \tGPU0\t\n GPU0\tX\t\n")
    assert judge(ev, "gpu.p2p").summary == "one GPU: no peer-to-peer traffic"


def test_an_empty_cuda_visible_devices_warns_without_a_driver():
    # a doctor names every problem it can see: the variable will still hide the GPUs once a driver is in
    ev = this_machine()
    env(ev, CUDA_VISIBLE_DEVICES="")
    result = judge(ev, "gpu.visible_devices")
    assert result.status.value == "warn" and "hides every GPU" in result.summary and result.fix.startswith("unset CUDA_VISIBLE_DEVICES")


def test_mig_on_without_instances_gives_the_commands_to_make_them():
    # wilicc/gpu-burn#36: MIG enabled, no GPU instance: "No Cuda Devices Found"
    ev = h200()
    nvml_device(ev, mig_mode=[1, 1], mig_devices=0)
    result = judge(ev, "gpu.mig")
    assert result.status.value == "fail" and "no GPU instances" in result.summary
    assert "sudo nvidia-smi mig -i 0 -cgi 0 -C" in result.fix and "-mig 0" in result.fix


def test_two_toolkits_are_named_with_both_versions():
    ev = h200()
    listdir(ev, "/usr/local", ["bin", "cuda", "cuda-12.4", "cuda-13.0", "lib"])
    result = judge(ev, "cuda.toolkits")
    assert result.summary.startswith("2 CUDA toolkits, 12.4 and 13.0; nvcc on PATH is 13.0")
