"""The site checks on recorded evidence, through gpudoctor.testing only: no GPU, no /scratch needed here.

Evidence (tests/evidence/, see README.md): /proc/mounts and /scratch's disk usage as gpudoctor recorded
them with a real tmpfs mounted at /scratch (64 GiB), remounted read-only, then unmounted; the GPU side is
gpudoctor's own captures of a real H200 server and of a machine without a GPU.
"""

import json
from pathlib import Path

import gpudoctor_example_site as site
from gpudoctor import testing

EVIDENCE = Path(__file__).parent / "evidence"
GIB = 1 << 30


def evidence(name: str, mounts: str = "") -> dict:
    data = json.loads((EVIDENCE / f"{name}.json").read_text())
    if mounts:  # the same machine, with /proc/mounts as it read in another recorded state
        data["files"]["/proc/mounts"] = {"text": (EVIDENCE / mounts).read_text()}
    return data


def by_id(results):
    return {r.id: r for r in results}


def test_mounted_read_write_with_room_for_the_gpu():
    """The H200 server (one GPU) with /scratch sized 200 GiB: statvfs gave total = free = 214748364800 bytes."""
    data = evidence("h200-scratch")
    data["disk_usage"]["/scratch"] = {"total": 214748364800, "free": 214748364800}
    results = by_id(testing.replay(data, site))
    assert results["site.scratch_mounted"].status == testing.Status.PASS
    assert results["site.scratch_space"].status == testing.Status.PASS
    assert results["site.scratch_space"].summary.startswith("200 GiB free on /scratch for 1 GPU")


def test_too_little_room_fails_with_a_fix():
    """64 GiB free (the real tmpfs) is below the site's 100 GiB for the H200's one GPU."""
    result = by_id(testing.replay(evidence("h200-scratch"), site))["site.scratch_space"]
    assert result.status == testing.Status.FAIL and "64 GiB free" in result.summary
    assert result.fix.startswith("sudo du -xh --max-depth=2 /scratch")


def test_read_only_scratch_fails():
    """`mount -o remount,ro /scratch`, as the kernel does to ext4 mounted errors=remount-ro after an error
    (https://docs.kernel.org/admin-guide/ext4.html, "errors=remount-ro")."""
    results = by_id(testing.replay(evidence("h200-scratch", "proc-mounts-scratch-ro.txt"), site))
    assert results["site.scratch_mounted"].status == testing.Status.FAIL
    assert "sudo mount -o remount,rw /scratch" in results["site.scratch_mounted"].fix


def test_unmounted_scratch_fails_and_its_space_check_skips():
    results = by_id(testing.replay(evidence("h200-scratch", "proc-mounts-no-scratch.txt"), site))
    assert results["site.scratch_mounted"].status == testing.Status.FAIL
    assert results["site.scratch_mounted"].fix.startswith("sudo mount /scratch")
    assert results["site.scratch_space"].status == testing.Status.SKIP


def test_no_gpu_here_skips_the_space_check_once_with_gpudoctors_reason():
    """gpudoctor's capture of a machine without a driver: the `gpus` view says why, and the mount is still judged."""
    results = by_id(testing.replay(evidence("nogpu-scratch"), site))
    assert results["site.scratch_mounted"].status == testing.Status.PASS
    assert results["site.scratch_space"].status == testing.Status.SKIP
    assert results["site.scratch_space"].summary.startswith("no NVIDIA kernel module is loaded")


def test_a_gpu_that_fell_off_the_bus_leaves_none_to_stage_for():
    """NVML answers NVML_ERROR_GPU_IS_LOST (15) for a GPU "fallen off the bus" (NVML API reference, nvmlReturn_t);
    the H200's facts changed only there, judged directly from facts."""
    collected = testing.collect(site, evidence("h200-scratch"))
    nvml = evidence("h200-scratch")["nvml"]
    nvml["devices"] = [{"index": 0, "error": "NVMLError_GpuIsLost: GPU is lost", "code": 15}]
    result = testing.judge(site.scratch_space, {**collected.facts, "nvml": nvml})
    assert result.status == testing.Status.SKIP and result.summary.startswith("no GPU answered")


def test_the_collector_reads_the_recorded_machine():
    collected = testing.collect(site, evidence("h200-scratch"))
    assert collected.facts["site_scratch"] == {
        "path": "/scratch", "mount": {"device": "tmpfs", "fstype": "tmpfs", "options": ["rw", "relatime", "size=67108864k"]},
        "usage": {"total": 64 * GIB, "free": 64 * GIB}}


def test_evidence_without_proc_mounts_is_not_recorded_not_a_failure():
    """A report made before this plugin was installed never read /proc/mounts: its checks skip, saying so."""
    data = evidence("h200-scratch")
    del data["files"]["/proc/mounts"]
    assert testing.collect(site, data).unrecorded == {"site_scratch": "/proc/mounts"}
    result = by_id(testing.replay(data, site))["site.scratch_mounted"]
    assert result.status == testing.Status.SKIP and "/proc/mounts not recorded" in result.summary


def test_a_real_report_replays_through_the_plugin():
    """`gpudoctor report --only site` on the development machine (no GPU, /scratch a 64 GiB tmpfs), extracted."""
    results = by_id(testing.replay(EVIDENCE / "dev-vm-report-2026-11-27", site))
    assert results["site.scratch_mounted"].status == testing.Status.PASS
    assert results["site.scratch_space"].status == testing.Status.SKIP


def test_checks_stay_plain_functions():
    """Decorated functions are callable as written, on hand-made facts."""
    verdict = site.scratch_mounted({"path": "/scratch", "mount": None, "usage": None})
    assert verdict.status == testing.Status.FAIL
