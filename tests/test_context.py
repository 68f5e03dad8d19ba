"""Where gpudoctor runs decides which fixes make sense (issue 12, section 2).

Inside a container, a Slurm job or a Kubernetes pod, installing a driver or headers, loading modules
and rebooting cannot be done from there: no fix may print them as commands to run there. The base is
this development machine's recording, which really is a Docker container on a KVM guest.
"""

from __future__ import annotations

import re

import pytest
from evidence_helpers import env, gpu_on_bus, judge_all, stat, this_machine
from incident_ops import apply

HOST_SIDE = re.compile(r"\b(apt-get install|dnf install|zypper install|modprobe|dkms|linux-headers|kernel-devel|nvidia-modprobe|"
                       r"mokutil|update-initramfs|dracut|reboot|rmmod)\b")


def live_host_steps(fix: str) -> list[str]:
    return [line for line in fix.splitlines() if not line.lstrip().startswith("#") and HOST_SIDE.search(line.split("   #")[0])]


def place(kind: str):
    ev = gpu_on_bus(this_machine())  # the host's GPU, as sysfs shows it inside a container
    if kind == "docker":
        return ev
    stat(ev, "/.dockerenv", absent=True)
    if kind == "kubernetes":
        return apply(ev, [{"op": "container", "kind": "kubernetes"}])
    env(ev, SLURM_JOB_ID="4711")  # a batch job on a node whose driver is not loaded
    return ev


@pytest.mark.parametrize("kind", ["docker", "kubernetes", "slurm"])
def test_no_fix_installs_a_driver_from_inside_a_container_or_job(kind):
    results = judge_all(place(kind))
    offending = {r.id: live_host_steps(r.fix) for r in results.values() if live_host_steps(r.fix)}
    assert not offending, offending
    loaded = results["driver.loaded"]
    assert loaded.status.value == "fail" and "# on the host" in loaded.fix


def test_the_place_is_named_from_real_evidence():
    summary = judge_all(this_machine())["system.container"].summary
    assert summary.startswith("running in a Docker container on a KVM virtual machine")


def test_a_job_granted_gpus_that_never_reached_it():
    ev = place("slurm")
    env(ev, SLURM_JOB_GPUS="0")
    apply(ev, [{"op": "driver", "version": "580.159.04"}])
    nodes = judge_all(ev)["driver.device_nodes"]
    assert nodes.status.value == "fail" and "NVIDIA_VISIBLE_DEVICES=all" in nodes.fix and "--gres" not in nodes.fix
