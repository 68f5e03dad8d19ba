"""Where gpudoctor runs: bare metal or a VM (and whose), a container, a Slurm job, a Kubernetes pod.

The place decides which fixes make sense: inside a container or a job, installing a driver or
loading a module cannot be done from there, so those steps are printed once, as comments,
under "on the host", and the fix that belongs to the place comes first. Each answer is read
from real evidence: systemd-detect-virt, DMI, the CPU's hypervisor flag and the PCI vendors of
virtual devices for VMs; /.dockerenv, /run/.containerenv and cgroups for containers (a marker can
sit inside a VM: both are said); the scheduler's own variables for jobs and pods.
"""

from __future__ import annotations

import re

VIRT_NAMES = {"kvm": "KVM", "qemu": "QEMU", "amazon": "Amazon EC2", "microsoft": "Hyper-V (Azure)", "vmware": "VMware",
              "xen": "Xen", "oracle": "VirtualBox", "google": "Google Compute Engine", "parallels": "Parallels",
              "bhyve": "bhyve", "powervm": "PowerVM", "apple": "Apple Virtualization"}
DMI_NAMES = ((r"Amazon EC2|^Amazon", "Amazon EC2"), (r"Google", "Google Compute Engine"), (r"Microsoft", "Hyper-V (Azure)"),
             (r"VMware", "VMware"), (r"QEMU|KVM|OpenStack|Red Hat", "KVM"), (r"Xen|HVM domU", "Xen"),
             (r"innotek|VirtualBox", "VirtualBox"), (r"Alibaba", "Alibaba Cloud"), (r"Oracle", "Oracle Cloud"))
# PCI vendor ids of virtual devices: a guest's bus shows its hypervisor (pci.ids).
PCI_VIRT = {"0x1af4": "KVM", "0x1d0f": "Amazon EC2", "0x15ad": "VMware", "0x5853": "Xen", "0x1414": "Hyper-V (Azure)",
            "0x1ae0": "Google Compute Engine", "0x80ee": "VirtualBox"}


def container_kind(container: dict | None) -> str | None:
    """'Kubernetes', 'Podman' or 'Docker' when gpudoctor runs in a container."""
    container = container or {}
    for key, name in (("kubernetes", "Kubernetes"), ("podman", "Podman"), ("docker", "Docker")):
        if container.get(key):
            return name
    return None


def hypervisor(platform: dict | None, pci: dict | None) -> str | None:
    """The hypervisor's name when this is a VM, '' on bare metal, None when the evidence cannot tell."""
    platform = platform or {}
    detected = platform.get("virt")
    if detected and detected != "none":
        return VIRT_NAMES.get(detected, detected)
    if detected == "none":  # systemd's word beats DMI: a Surface laptop's vendor is Microsoft, an Oracle server's Oracle
        return ""
    vendor = (platform.get("cpu") or {}).get("hypervisor_vendor")  # lscpu, from the CPU's own hypervisor leaf
    if vendor:
        return VIRT_NAMES.get(vendor.lower(), vendor)
    dmi = " ".join(v for v in (platform.get("dmi") or {}).values() if v)
    for pattern, name in DMI_NAMES:
        if dmi and re.search(pattern, dmi):
            return name
    for vendor in (pci or {}).get("vendors") or []:
        if vendor in PCI_VIRT:
            return PCI_VIRT[vendor]
    flags = platform.get("cpu_flags")
    if flags is not None and "hypervisor" in flags:
        return "an unknown hypervisor"
    if flags is not None and platform.get("arch", "x86_64") == "x86_64":
        return ""
    return None


def describe(platform: dict | None, pci: dict | None, container: dict | None) -> str:
    """'a KVM virtual machine, inside a Docker container' and the like, from the evidence."""
    vm = hypervisor(platform, pci)
    kind = container_kind(container)
    machine = (f"a {vm} virtual machine" if vm and not vm.startswith("an ") else "a virtual machine of " + vm if vm
               else "bare metal" if vm == "" else "a machine of unknown kind")
    return f"a {kind} container on {machine}" if kind else machine


def scheduler(environment: dict | None) -> dict | None:
    """The batch scheduler's job this runs in, and the GPUs it granted, from its own variables."""
    env = environment or {}
    if env.get("SLURM_JOB_ID"):
        gpus = env.get("SLURM_JOB_GPUS") or env.get("SLURM_STEP_GPUS") or env.get("SLURM_GPUS_ON_NODE") or env.get("SLURM_GPUS")
        return {"name": "Slurm", "job": env["SLURM_JOB_ID"], "gpus": gpus}
    if env.get("PBS_JOBID"):
        return {"name": "PBS", "job": env["PBS_JOBID"], "gpus": env.get("CUDA_VISIBLE_DEVICES")}
    if env.get("LSB_JOBID"):
        return {"name": "LSF", "job": env["LSB_JOBID"], "gpus": env.get("CUDA_VISIBLE_DEVICES")}
    return None


def confined(container: dict | None, environment: dict | None) -> str | None:
    """Why host-side steps cannot be run from here: 'this Docker container', 'this Slurm job', or None."""
    job = scheduler(environment)
    kind = container_kind(container)
    if kind == "Kubernetes":
        return "this Kubernetes pod"
    if kind:
        return f"this {kind} container"
    if job:
        return f"this {job['name']} job ({job['job']})"
    return None


def on_the_host(steps: str) -> str:
    """Host-side commands as comments, once, under 'on the host'."""
    lines = [line for line in steps.splitlines() if line.strip()]
    return "\n".join(["# on the host (not from here):"] + [line if line.startswith("#") else f"#   {line}" for line in lines])


def request_gpus(container: dict | None, environment: dict | None) -> str:
    """How this place asks for GPUs: the container's start, the pod's limits, the job's request."""
    kind = container_kind(container)
    job = scheduler(environment)
    if job and job.get("gpus"):
        return (f"# this {job['name']} job was granted GPU(s) {job['gpus']}, but they did not reach this process: a container started\n"
                "# in the job gets them only when asked: export NVIDIA_VISIBLE_DEVICES=all before enroot/pyxis starts it "
                "(Apptainer: --nv)")
    if kind == "Kubernetes":
        return ("# give the pod GPUs in its spec: resources.limits: {nvidia.com/gpu: 1}, on a node running the NVIDIA device plugin\n"
                "kubectl describe node | grep -i nvidia.com/gpu   # the nodes' allocatable GPUs\n"
                "# a node with nvidia.com/gpu: 0 has no working device plugin: its container runtime needs the NVIDIA runtime as default\n"
                "# (Docker: \"default-runtime\": \"nvidia\" in /etc/docker/daemon.json; containerd: nvidia-ctk runtime configure --set-as-default)")
    if kind == "Podman":
        return "# start the container with its GPUs: podman run --device nvidia.com/gpu=all IMAGE (after nvidia-ctk cdi generate on the host)"
    if kind == "Docker":
        return "# start the container with its GPUs: docker run --gpus all IMAGE (the NVIDIA Container Toolkit on the host)"
    if job and job["name"] == "Slurm":
        return ("# ask Slurm for GPUs: sbatch --gres=gpu:1 (or --gpus=1), or #SBATCH --gres=gpu:1 in the job script\n"
                "scontrol show job $SLURM_JOB_ID | grep -i -E 'gres|tres'   # what this job was granted")
    return ""


def gpuless_place(container: dict | None, environment: dict | None, devices: dict | None) -> str | None:
    """'this Docker container' (or job) when it was started without the GPUs' device nodes: then its other driver
    checks have nothing of their own to say, and driver.device_nodes gives the place's fix once."""
    place = confined(container, environment)
    nodes = (devices or {}).get("nodes") or {}
    if place and not nodes.get("/dev/nvidiactl"):
        return place
    return None


def wsl(container: dict | None, os: dict | None) -> bool:
    """WSL2: the GPU arrives through /dev/dxg and /usr/lib/wsl/lib, never /dev/nvidia* or kernel modules."""
    return bool((container or {}).get("wsl") or (os or {}).get("wsl"))
