"""The torch area: a CUDA build of PyTorch that this driver runs, with kernels for these GPUs.

Facts come from the torch probe run in each judged interpreter (checks/python.py); GPU facts
from NVML or nvidia-smi (gpudoctor.gpus).
"""

from __future__ import annotations

from gpudoctor.checks.python import installs

from gpudoctor import compat
from gpudoctor.gpus import capabilities as _capabilities
from gpudoctor.gpus import driver_cuda as _driver_cuda
from gpudoctor.gpus import gpu_devices, no_driver
from gpudoctor.plugin import Skip, check, fail, ok, warn


def value(facts: dict, key: str):
    """A probed fact's value, or None where the call failed or was not made."""
    return (facts.get(key) or {}).get("value")


def torch_installs(python_envs: dict) -> list[tuple[dict, dict]]:
    """(interpreter, torch facts) for each judged interpreter where torch imported."""
    return installs(python_envs, "torch", "PyTorch")


def install_fix(python: str, version: str | None, driver_cuda: str | None, capabilities: list) -> str:
    """The command for the newest CUDA build of this release that the driver runs; by branch without a driver."""
    if driver_cuda:
        variant = compat.torch_variant(version, driver_cuda, capabilities)
        if variant:
            return compat.torch_install(python, version, variant)
        return (f"# no official build of torch {version} runs on a driver for CUDA {driver_cuda} with these GPUs:\n"
                f"# upgrade the driver (see driver.loaded), or pick another torch release")
    release = compat.torch_release(version) or {}
    lines = ["# no NVIDIA driver is loaded here; choose the build for the driver you will install:"]
    for name in sorted(release.get("stable") or [], key=compat.version_key, reverse=True):
        variant = release["variants"].get(name)
        if variant:
            floor = compat.minimum_driver(variant["cuda"])
            lines.append(f"{compat.torch_install(python, version, name)}   # driver >= {floor}")
    return "\n".join(lines) if len(lines) > 1 else f"{python} -m pip install torch   # no build table for torch {version}"


@check("torch.build", "PyTorch is a CUDA build", needs=("python_envs",), uses=("nvml", "nvidia_smi"))
def build(python_envs, nvml, nvidia_smi):
    """A CPU-only wheel (+cpu) or a ROCm build cannot use an NVIDIA GPU (failure mode 32)."""
    for interpreter, facts in torch_installs(python_envs):
        version = value(facts, "version")
        if value(facts, "version_hip"):
            return fail(f"torch {version} in {interpreter['path']} is a ROCm (AMD) build",
                        fix=install_fix(interpreter["path"], version, _driver_cuda(nvml, nvidia_smi), _capabilities(nvml, nvidia_smi)))
        if not value(facts, "version_cuda"):
            return fail(f"torch {version} in {interpreter['path']} is a CPU-only build: 'Torch not compiled with CUDA enabled'",
                        fix=install_fix(interpreter["path"], version, _driver_cuda(nvml, nvidia_smi), _capabilities(nvml, nvidia_smi)))
    lines = [f"torch {value(f, 'version')} (CUDA {value(f, 'version_cuda')}"
             + (f", NCCL {'.'.join(map(str, value(f, 'nccl')))}" if value(f, "nccl") else "") + f") in {i['path']}"
             for i, f in torch_installs(python_envs)]
    return ok(lines[0] if len(lines) == 1 else f"{len(lines)} CUDA builds of torch", lines)


@check("torch.cuda_available", "PyTorch sees the GPUs", needs=("python_envs",), uses=("driver", "nvml", "nvidia_smi"))
def cuda_available(python_envs, driver, nvml, nvidia_smi):
    """torch.cuda.is_available() False on a CUDA build: the probe keeps the warning that says why."""
    for interpreter, facts in torch_installs(python_envs):
        if not value(facts, "version_cuda"):
            raise Skip("a CPU-only build never sees a GPU (see torch.build)")
        if not value(facts, "is_available"):
            reason = " ".join(facts["is_available"].get("warnings") or []) or "torch.cuda.is_available() is False, without a warning"
            if no_driver(driver, nvml):
                raise Skip("no NVIDIA driver is loaded (see driver.loaded)")
            return fail(f"torch in {interpreter['path']} sees no GPU: {reason[:300]}",
                        fix=f"{interpreter['path']} -c 'import torch; torch.cuda.init()'   # the full error\n"
                            "# then see cuda.driver_runtime, driver.uvm and gpu.visible_devices, which name the usual causes")
    counts = [value(f, "device_count") for _, f in torch_installs(python_envs)]
    return ok(f"torch.cuda.is_available() is True; {counts[0]} GPU(s)")


@check("torch.arch_list", "PyTorch has kernels for every GPU", needs=("python_envs",), uses=("nvml", "nvidia_smi"))
def arch_list(python_envs, nvml, nvidia_smi):
    """A GPU newer or older than the build's arch list: 'no kernel image is available' (failure modes 33, 34)."""
    judged = torch_installs(python_envs)
    capabilities = _capabilities(nvml, nvidia_smi)
    if not capabilities:
        raise Skip("no GPU with a known compute capability")
    for interpreter, facts in judged:
        archs = value(facts, "arch_list") or []
        if not archs:
            raise Skip("a CPU-only build has no arch list (see torch.build)")
        build = {"arch": [a.split("_")[1] for a in archs if a.startswith("sm_")], "ptx": any(a.startswith("compute_") for a in archs)}
        build["arch"] = [f"{a[:-1]}.{a[-1]}" for a in build["arch"]]
        missing = sorted({cc for cc in capabilities if not compat.variant_supports(build, cc)})
        if missing:
            shown = ", ".join(f"sm_{a}{b}" for a, b in missing)
            return fail(f"torch {value(facts, 'version')} in {interpreter['path']} has no kernels for {shown} "
                        f"(it has {' '.join(archs)}): 'no kernel image is available for execution on the device'",
                        fix=install_fix(interpreter["path"], value(facts, "version"), _driver_cuda(nvml, nvidia_smi), capabilities))
    return ok(f"the build's kernels cover every GPU ({', '.join(sorted({f'sm_{a}{b}' for a, b in capabilities}))})")


@check("torch.device_count", "PyTorch sees as many GPUs as the driver", needs=("python_envs",), uses=("nvml", "nvidia_smi", "environment"))
def device_count(python_envs, nvml, nvidia_smi, environment):
    """Fewer GPUs in torch than in NVML: CUDA_VISIBLE_DEVICES, MIG, or a GPU CUDA cannot initialise."""
    judged = torch_installs(python_envs)
    expected = len(gpu_devices(nvml, nvidia_smi))
    if not expected:
        raise Skip("NVML reports no GPU")
    for interpreter, facts in judged:
        seen = value(facts, "device_count")
        if seen is None:
            raise Skip("torch did not report a device count (see torch.cuda_available)")
        if seen < expected:
            hidden = (environment or {}).get("CUDA_VISIBLE_DEVICES")
            if hidden is not None:
                return ok(f"torch sees {seen} of {expected} GPUs, as CUDA_VISIBLE_DEVICES={hidden} asks")
            return warn(f"torch in {interpreter['path']} sees {seen} of the {expected} GPUs NVML reports",
                        fix="nvidia-smi -L   # MIG slices, or a GPU that fails to initialise (see gpu.visible and gpu.mig)")
    return ok(f"torch sees all {expected} GPU(s)")
