"""The tensorflow area: a CUDA build that finds its CUDA libraries and lists the GPUs."""

from __future__ import annotations

from gpudoctor import compat
from gpudoctor.causes import FACTS, blockers
from gpudoctor.frameworks import broken, distributions, installs
from gpudoctor.gpus import answering_gpus
from gpudoctor.gpus import capabilities as _capabilities
from gpudoctor.importerrors import abi_warning, diagnose, import_context
from gpudoctor.plugin import Skip, check, fail, ok


def tf_installs(python_envs: dict) -> list[tuple[dict, dict]]:
    return installs(python_envs, "tensorflow", "TensorFlow")


def tf_fix(interpreter: dict, version: str | None) -> str:
    """`tensorflow[and-cuda]` of the same release (TF 2.15+ pulls its CUDA and cuDNN as nvidia-* wheels)."""
    python = interpreter["path"]
    dists = {d["name"] for d in interpreter["env"].get("distributions") or []} if "failure" not in interpreter["env"] else set()
    drop = f"{python} -m pip uninstall -y tensorflow-cpu\n" if "tensorflow-cpu" in dists else ""
    return f"{drop}{python} -m pip install 'tensorflow[and-cuda]=={version}'"


@check("tensorflow.build", "TensorFlow imports and is a CUDA build", needs=("python_envs",),
       uses=("cuda_libraries", "machine", "platform", "container"))
def build(python_envs, cuda_libraries, machine, platform, container):
    """TensorFlow that does not import (AVX, GLIBC, NumPy, libraries), or a CPU build (tensorflow-cpu), never lists a GPU (37)."""
    for interpreter, answer in broken(python_envs, "tensorflow"):
        return diagnose("tensorflow", interpreter, answer, import_context(cuda_libraries, machine, platform, container))
    for interpreter, facts in tf_installs(python_envs):
        banner = abi_warning("tensorflow", interpreter, facts)
        if banner:
            return banner
        info = facts.get("build") or {}
        if not info.get("is_cuda_build"):
            return fail(f"TensorFlow {facts.get('version')} in {interpreter['path']} is a CPU-only build",
                        fix=tf_fix(interpreter, facts.get("version")))
    lines = [f"TensorFlow {f.get('version')} built for CUDA {(f.get('build') or {}).get('cuda_version')}, "
             f"cuDNN {(f.get('build') or {}).get('cudnn_version')} in {i['path']}" for i, f in tf_installs(python_envs)]
    return ok(lines[0] if len(lines) == 1 else f"{len(lines)} CUDA builds of TensorFlow", lines)


@check("tensorflow.gpus", "TensorFlow lists the GPUs", needs=("python_envs",),
       uses=FACTS)
def gpus(python_envs, driver, nvml, nvidia_smi, environment, pci, services, devices, os, container, cuda_libraries):
    """An empty GPU list on a CUDA build: a cause other checks found, else the CUDA or cuDNN libraries it could not dlopen (37, 38)."""
    machine = {"driver": driver, "nvml": nvml, "nvidia_smi": nvidia_smi, "environment": environment, "pci": pci, "services": services,
               "devices": devices, "os": os, "container": container, "cuda_libraries": cuda_libraries}
    judged = tf_installs(python_envs)
    expected = len(answering_gpus(driver, nvml, nvidia_smi))
    for interpreter, facts in judged:
        if not (facts.get("build") or {}).get("is_cuda_build"):
            raise Skip("a CPU-only build lists no GPU (see tensorflow.build)")
        listed = facts.get("gpus") or []
        if len(listed) < expected:
            missing = [line.strip() for line in facts.get("stderr_tail") or [] if "dlopen" in line or "Could not load dynamic library" in line]
            runtime = str((facts.get("build") or {}).get("cuda_version") or "") or None
            known = blockers(machine, runtime, " ".join(facts.get("stderr_tail") or []))
            if known and not missing:
                return fail(f"TensorFlow in {interpreter['path']} lists {len(listed)} of {expected} GPUs: {known[0][0]}", fix=known[0][1])
            folders = list(((cuda_libraries or {}).get("ld_library_path") or {}))
            sites = sorted({d["location"] for d in distributions(interpreter).values() if d["name"].startswith("nvidia-")})
            if missing and sites and not folders:  # the nvidia-* wheels are there, but TensorFlow did not find them
                fix = (f"export LD_LIBRARY_PATH=$(ls -d {sites[0]}/nvidia/*/lib | paste -sd: -)${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
                       "   # the CUDA libraries of its own nvidia-* wheels\n"
                       f"{interpreter['path']} -c \"import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))\"   # now lists them")
            else:
                unset = f"\nunset LD_LIBRARY_PATH   # it puts {folders[0]} ahead of TensorFlow's own CUDA libraries" if folders else ""
                fix = tf_fix(interpreter, facts.get("version")) + unset
            return fail(f"TensorFlow in {interpreter['path']} lists {len(listed)} of {expected} GPUs"
                        + (": it could not load its CUDA libraries" if missing else ""), details=missing, fix=fix)
    return ok(f"TensorFlow lists all {expected} GPU(s)")


@check("tensorflow.arch", "TensorFlow has code for every GPU", needs=("python_envs",), uses=("nvml", "nvidia_smi"))
def arch(python_envs, nvml, nvidia_smi):
    """No SASS of the GPU's major and no older PTX: 'device kernel image is invalid' (failure mode 39).

    TensorFlow ships PTX for its newest architecture on purpose, so newer GPUs run after a JIT
    compile (the first start takes minutes); only GPUs older than every entry fail.
    """
    judged = tf_installs(python_envs)
    capabilities = _capabilities(nvml, nvidia_smi)
    if not capabilities:
        raise Skip("no GPU with a known compute capability")
    for interpreter, facts in judged:
        listed = (facts.get("build") or {}).get("cuda_compute_capabilities") or []
        if not listed:
            raise Skip("the build lists no compute capabilities (a CPU-only build: see tensorflow.build)")
        sass = [compat.version_key(a.split("_")[1]) for a in listed if a.startswith("sm_")]
        ptx = [compat.version_key(a.split("_")[1]) for a in listed if a.startswith("compute_")]
        for major, minor in capabilities:
            code = major * 10 + minor
            if not any(s[0] // 10 == major and s[0] <= code for s in sass) and not any(p[0] <= code for p in ptx):
                return fail(f"TensorFlow {facts.get('version')} in {interpreter['path']} has no code for sm_{code} "
                            f"(it has {' '.join(listed)}): 'device kernel image is invalid'",
                            fix=tf_fix(interpreter, facts.get("version")).replace(f"=={facts.get('version')}'", "'") +
                                "   # a newer release, built for this GPU")
    return ok(f"TensorFlow has code for every GPU ({', '.join(sorted({f'sm_{a}{b}' for a, b in capabilities}))})")
