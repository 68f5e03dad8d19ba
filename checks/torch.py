"""The torch area: a CUDA build of PyTorch that this driver runs, with kernels for these GPUs.

Facts come from the torch probe run in each judged interpreter (checks/python.py); GPU facts
from NVML or nvidia-smi (gpudoctor.gpus).
"""

from __future__ import annotations

from gpudoctor import compat
from gpudoctor.causes import FACTS, blockers
from gpudoctor.frameworks import broken, install_fix, torch_installs, value
from gpudoctor.gpus import capabilities as _capabilities
from gpudoctor.gpus import driver_cuda as _driver_cuda
from gpudoctor.gpus import NO_MODULE, answering, no_driver
from gpudoctor.importerrors import abi_warning, diagnose, import_context
from gpudoctor.plugin import Skip, check, fail, ok, warn


@check("torch.build", "PyTorch imports and is a CUDA build", needs=("python_envs",),
       uses=("nvml", "nvidia_smi", "cuda_libraries", "machine", "platform", "container", "environment"))
def build(python_envs, nvml, nvidia_smi, cuda_libraries, machine, platform, container, environment):
    """An installed torch that does not import, a CPU-only wheel (+cpu) or a ROCm build cannot use an NVIDIA GPU (failure mode 32)."""
    for interpreter, answer in broken(python_envs, "torch"):
        return diagnose("torch", interpreter, answer, import_context(cuda_libraries, machine, platform, container))
    for interpreter, facts in torch_installs(python_envs):
        banner = abi_warning("torch", interpreter, facts)
        if banner:
            return banner
        version = value(facts, "version")
        fix = install_fix(interpreter["path"], version, _driver_cuda(nvml, nvidia_smi), _capabilities(nvml, nvidia_smi), interpreter)
        if value(facts, "version_hip"):
            return fail(f"torch {version} in {interpreter['path']} is a ROCm (AMD) build", fix=fix)
        if not value(facts, "version_cuda"):
            cpu_index = [name for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL") if "/cpu" in ((environment or {}).get(name) or "")]
            if cpu_index:  # pip takes the CPU build from there again on the next install
                fix = f"unset {' '.join(cpu_index)}   # it points pip at PyTorch's CPU index\n{fix}"
            return fail(f"torch {version} in {interpreter['path']} is a CPU-only build: 'Torch not compiled with CUDA enabled'"
                        + (f" ({cpu_index[0]} points pip at the CPU index)" if cpu_index else ""), fix=fix)
    lines = [f"torch {value(f, 'version')} (CUDA {value(f, 'version_cuda')}"
             + (f", NCCL {'.'.join(map(str, value(f, 'nccl')))}" if value(f, "nccl") else "") + f") in {i['path']}"
             for i, f in torch_installs(python_envs)]
    return ok(lines[0] if len(lines) == 1 else f"{len(lines)} CUDA builds of torch", lines)


@check("torch.cuda_available", "PyTorch sees the GPUs", needs=("python_envs",), uses=FACTS)
def cuda_available(python_envs, driver, nvml, nvidia_smi, environment, pci, services, devices, os, container, cuda_libraries):
    """torch.cuda.is_available() False on a CUDA build: the cause other checks found, else the warning torch gave (E43, A10, B15)."""
    machine = {"driver": driver, "nvml": nvml, "nvidia_smi": nvidia_smi, "environment": environment, "pci": pci, "services": services,
               "devices": devices, "os": os, "container": container, "cuda_libraries": cuda_libraries}
    for interpreter, facts in torch_installs(python_envs):
        if not value(facts, "version_cuda"):
            raise Skip("a CPU-only build never sees a GPU (see torch.build)")
        if not value(facts, "is_available"):
            reason = " ".join(facts["is_available"].get("warnings") or []) or "torch.cuda.is_available() is False, without a warning"
            if no_driver(driver, nvml):
                raise Skip("no NVIDIA driver is loaded (see driver.loaded)")
            known = blockers(machine, value(facts, "version_cuda"), reason, facts.get("loaded_libs"))
            if known:
                return fail(f"torch in {interpreter['path']} sees no GPU: {known[0][0]}", fix=known[0][1], details=[reason[:300]])
            return fail(f"torch in {interpreter['path']} sees no GPU: {reason[:300]}",
                        fix=f"{interpreter['path']} -c 'import torch; torch.cuda.init()'   # the full error")
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
                        fix=install_fix(interpreter["path"], value(facts, "version"), _driver_cuda(nvml, nvidia_smi), capabilities, interpreter))
    return ok(f"the build's kernels cover every GPU ({', '.join(sorted({f'sm_{a}{b}' for a, b in capabilities}))})")


@check("torch.device_count", "PyTorch sees as many GPUs as the driver", needs=("python_envs",), uses=("gpus", "environment"))
def device_count(python_envs, gpus, environment):
    """Fewer GPUs in torch than in NVML: CUDA_VISIBLE_DEVICES, MIG, or a GPU CUDA cannot initialise."""
    judged = torch_installs(python_envs)  # a torch that does not import says so first: that is what to fix
    expected = len(answering(gpus)) if gpus else 0
    if not expected:
        raise Skip(NO_MODULE)
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
