"""The jax area: jax, jaxlib and a CUDA plugin of one version, that this driver and these GPUs run."""

from __future__ import annotations

from gpudoctor import compat, kb
from gpudoctor.causes import FACTS, blockers
from gpudoctor.frameworks import broken, installs
from gpudoctor.gpus import answering_gpus
from gpudoctor.gpus import capabilities as _capabilities
from gpudoctor.gpus import driver_cuda as _driver_cuda
from gpudoctor.importerrors import diagnose, import_context
from gpudoctor.plugin import Skip, check, fail, ok


def jax_installs(python_envs: dict) -> list[tuple[dict, dict, dict]]:
    """(interpreter, jax probe answer, {distribution: version}) where jax imported."""
    return [(i, facts, {d["name"]: d["version"] for d in i["env"].get("distributions") or []} if "failure" not in i["env"] else {})
            for i, facts in installs(python_envs, "jax", "JAX")]


def plugin_for(driver_cuda: str | None, capabilities: list) -> str | None:
    """The newest JAX CUDA plugin this driver and every GPU run (cuda13 needs >= 580 and sm_75)."""
    for name, plugin in kb.load("jax")["plugins"].items():
        if _runs(plugin, driver_cuda, capabilities):
            return name
    return None


def _runs(plugin: dict, driver_cuda: str | None, capabilities: list) -> bool:
    """A plugin runs when the driver runs its CUDA major and every GPU is at least its minimum compute capability."""
    return (driver_cuda is None or compat.runtime_runs_on(plugin["cuda"], driver_cuda)) and \
        all(cc >= tuple(compat.version_key(plugin["min_cc"])) for cc in capabilities)


def jax_fix(python: str, driver_cuda: str | None, capabilities: list) -> str:
    if driver_cuda is None:
        return "\n".join(["# no NVIDIA driver is loaded here; pick the line for the driver you will install:"] +
                         [f'# driver >= {p["min_driver"]}, GPUs sm_{p["min_cc"].replace(".", "")}+: {python} -m pip install -U "jax[{name}]"'
                          for name, p in kb.load("jax")["plugins"].items()])
    plugin = plugin_for(driver_cuda, capabilities)
    if not plugin:
        return f"# no JAX CUDA plugin runs on a driver for CUDA {driver_cuda} with these GPUs: upgrade the driver (see driver.loaded)"
    return f'{python} -m pip install -U "jax[{plugin}]"   # aligns jax, jaxlib and the plugin'


@check("jax.install", "jax imports, with jaxlib and a CUDA plugin that fit", needs=("python_envs",),
       uses=("nvml", "nvidia_smi", "cuda_libraries", "machine", "platform", "container"))
def install(python_envs, nvml, nvidia_smi, cuda_libraries, machine, platform, container):
    """jax that does not import; a jaxlib without a CUDA plugin is CPU-only; versions that differ break the plugin (failure modes 40, 42)."""
    for interpreter, answer in broken(python_envs, "jax"):
        return diagnose("jax", interpreter, answer, import_context(cuda_libraries, machine, platform, container))
    driver_cuda, capabilities = _driver_cuda(nvml, nvidia_smi), _capabilities(nvml, nvidia_smi)
    for interpreter, facts, dists in jax_installs(python_envs):
        if not dists:  # the package list was not recorded: only the backend can speak
            if facts.get("backend") in ("gpu", "cuda"):
                continue
            raise Skip(f"the packages of {interpreter['path']} were not recorded")
        python = interpreter["path"]
        fix = jax_fix(python, driver_cuda, capabilities)
        plugins = {n: v for n, v in dists.items() if n.startswith("jax-cuda")}
        jaxlib = facts.get("jaxlib") or dists.get("jaxlib") or ""
        if not plugins and "+cuda" not in jaxlib:
            return fail(f"jax {facts.get('jax')} in {python} has no CUDA plugin: it runs on the CPU only", fix=fix)
        if not plugins and facts.get("backend") not in ("gpu", "cuda"):  # jaxlib's own CUDA build (0.4.23+cuda12.cudnn89) that did not start
            return fail(f"jaxlib {jaxlib} in {python} is a CUDA build without the CUDA plugin packages, and JAX runs on the "
                        f"{facts.get('backend') or 'unknown'} backend", fix=fix)
        versions = {n: v for n, v in {"jax": facts.get("jax"), "jaxlib": jaxlib, **plugins}.items() if v}
        core_key = compat.version_key(jaxlib.split("+")[0])[:3]
        off = [n for n, v in plugins.items() if compat.version_key(v)[:3] != core_key]  # plugins must be jaxlib's version
        if jaxlib and facts.get("jax") and compat.version_key(facts["jax"])[:3] < core_key:  # jax may be newer, not older
            off.append("jax")
        if off:
            shown = ", ".join(f"{n} {v}" for n, v in sorted(versions.items()))
            core = jaxlib.split("+")[0]
            pinned = " ".join(f"'{n}=={core}'" for n in sorted(plugins))
            return fail(f"JAX's packages differ in {python} ({shown}): 'Mismatched PJRT plugin PJRT API version' "
                        "or a segfault at the first array",
                        fix=f"{python} -m pip install {pinned}   # the plugin at jaxlib's version" if plugins and core else fix)
        for name in sorted(plugins):
            plugin = kb.load("jax")["plugins"].get(name[len("jax-"):].split("-")[0])
            if plugin and not _runs(plugin, driver_cuda, capabilities):
                return fail(f"{name} in {python} does not run on this driver (CUDA {driver_cuda}) or these GPUs "
                            f"(it needs a driver >= {plugin['min_driver']} and sm_{plugin['min_cc'].replace('.', '')} or newer)",
                            fix=f'{python} -m pip uninstall -y {" ".join(sorted(plugins))}\n{fix}')
    lines = [f"jax {f.get('jax')} with {', '.join(sorted(n for n in d if n.startswith('jax-cuda'))) or 'a CUDA backend'} in {i['path']}"
             for i, f, d in jax_installs(python_envs)]
    return ok(lines[0] if len(lines) == 1 else f"{len(lines)} JAX installs fit", lines)


def _plugin_cuda(dists: dict) -> str | None:
    for name in dists:
        plugin = kb.load("jax")["plugins"].get(name[len("jax-"):-len("-plugin")]) if name.endswith("-plugin") else None
        if plugin:
            return plugin["cuda"]
    return None


@check("jax.backend", "JAX runs on the GPUs", needs=("python_envs",),
       uses=FACTS)
def backend(python_envs, driver, nvml, nvidia_smi, environment, pci, services, devices, os, container, cuda_libraries):
    """JAX on the CPU backend: the cause other checks found (a hidden GPU, an old driver, the fabric, MIG), else what it printed (41)."""
    machine = {"driver": driver, "nvml": nvml, "nvidia_smi": nvidia_smi, "environment": environment, "pci": pci, "services": services,
               "devices": devices, "os": os, "container": container, "cuda_libraries": cuda_libraries}
    judged = jax_installs(python_envs)
    expected = len(answering_gpus(driver, nvml, nvidia_smi))
    for interpreter, facts, dists in judged:
        if not any(n.startswith("jax-cuda") for n in dists) and dists:
            raise Skip("no CUDA plugin is installed (see jax.install)")
        if facts.get("backend") not in ("gpu", "cuda"):
            said = [line.strip() for line in facts.get("stderr_tail") or [] if "CUDA" in line or "cuInit" in line or "cuDNN" in line]
            reason = " ".join(said)[:300]
            known = blockers(machine, _plugin_cuda(dists), reason)
            if known:
                return fail(f"JAX in {interpreter['path']} runs on the {facts.get('backend') or 'unknown'} backend: {known[0][0]}",
                            fix=known[0][1], details=said[-4:])
            folders = list(((cuda_libraries or {}).get("ld_library_path") or {}))
            fix = (f"unset LD_LIBRARY_PATH   # it puts {folders[0]} ahead of the CUDA libraries of JAX's own wheels" if folders else
                   f"{interpreter['path']} -c 'import jax; jax.devices(\"gpu\")'   # the plugin's own error")
            return fail(f"JAX in {interpreter['path']} runs on the {facts.get('backend') or 'unknown'} backend: {reason or 'no reason printed'}",
                        fix=fix, details=said[-4:])
        if len(facts.get("devices") or []) < expected:
            return fail(f"JAX sees {len(facts.get('devices') or [])} of {expected} GPUs",
                        fix="nvidia-smi -L   # compare with jax.devices(); see gpu.visible_devices")
    return ok(f"JAX runs on the GPU backend with {expected} device(s)")
