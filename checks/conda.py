"""The conda area: conda, mamba or micromamba, the environments judged, and their CUDA packages.

Read from what conda itself keeps, `<prefix>/conda-meta/<name>-<version>-<build>.json` (the channel
is inside each file), not by running `conda list`, which costs seconds.
"""

from __future__ import annotations

import json
import os

from gpudoctor import compat
from gpudoctor.gpus import driver_cuda as _driver_cuda
from gpudoctor.host import NotRecorded
from gpudoctor.plugin import Skip, check, collector, fail, ok, warn

CUDA_PACKAGES = ("cuda-version", "cudatoolkit", "pytorch-cuda", "cuda-runtime", "cuda-cudart", "cuda-nvcc", "cudnn",
                 "pytorch", "pytorch-gpu", "tensorflow", "tensorflow-gpu", "jaxlib")
TOOLS = ("conda", "mamba", "micromamba")


def _which(host, name: str) -> str | None:
    try:
        return host.which(name)
    except NotRecorded:
        return None


def _prefixes(host) -> list[str]:
    found = [host.environ["CONDA_PREFIX"]] if host.environ.get("CONDA_PREFIX") else []
    found += [os.path.dirname(os.path.dirname(p)) for p in host.options.get("python") or []]
    return list(dict.fromkeys(found))


def _packages(host, prefix: str) -> dict | None:
    try:
        names = host.listdir(f"{prefix}/conda-meta")
    except NotRecorded:
        return None
    if names is None:
        return None
    packages = {}
    for file in names:
        parts = file[: -len(".json")].rsplit("-", 2) if file.endswith(".json") else []
        if len(parts) == 3 and parts[0] in CUDA_PACKAGES:
            try:
                record = json.loads(host.read(f"{prefix}/conda-meta/{file}").text or "{}")
            except ValueError:
                record = {}
            packages[parts[0]] = {"version": parts[1], "build": parts[2], "channel": _channel(record.get("channel") or "")}
    return packages


def _channel(url: str) -> str:
    """'https://conda.anaconda.org/conda-forge/linux-64' -> 'conda-forge'; 'pkgs/main/linux-64' -> 'defaults'."""
    if "pkgs/main" in url or "repo.anaconda.com" in url:
        return "defaults"
    parts = [p for p in url.rstrip("/").split("/") if p]
    return parts[-2] if len(parts) >= 2 else url or "unknown"


@collector("conda")
def collect_conda(host) -> dict:
    """conda tools on PATH, and the CUDA-related packages of each conda environment judged."""
    envs = {prefix: pkgs for prefix in _prefixes(host) if (pkgs := _packages(host, prefix)) is not None}
    return {"tools": {name: path for name in TOOLS if (path := _which(host, name))},
            "active": host.environ.get("CONDA_PREFIX"), "envs": envs}


def conda_envs(conda: dict) -> dict:
    if not conda["envs"]:
        raise Skip("no conda environment is judged here (none active, and no --python inside one)")
    return conda["envs"]


@check("conda.env", "conda and the environment judged", needs=("conda",))
def env(conda):
    """Which conda tool and environments are in play; nothing to judge without them."""
    if not conda["tools"] and not conda["envs"]:
        raise Skip("no conda, mamba or micromamba on PATH, and no conda environment is active")
    tools = ", ".join(f"{name} at {path}" for name, path in conda["tools"].items()) or "no conda tool on PATH"
    lines = [f"{prefix}: " + (", ".join(f"{n} {p['version']} ({p['channel']})" for n, p in sorted(pkgs.items())) or "no CUDA packages")
             for prefix, pkgs in conda["envs"].items()]
    return ok(f"{tools}; {len(conda['envs'])} conda environment(s) judged", lines)


@check("conda.cuda_packages", "The environment's CUDA packages fit the driver", needs=("conda",), uses=("nvml", "nvidia_smi"))
def cuda_packages(conda, nvml, nvidia_smi):
    """cuda-version, cudatoolkit or pytorch-cuda newer than the driver runs (conda's __cuda conflict, failure mode 36)."""
    driver_cuda = _driver_cuda(nvml, nvidia_smi)
    for prefix, pkgs in conda_envs(conda).items():
        for name in ("cuda-version", "pytorch-cuda", "cudatoolkit", "cuda-runtime"):
            if name in pkgs and driver_cuda and not compat.runtime_runs_on(pkgs[name]["version"], driver_cuda):
                wanted = pkgs[name]["version"]
                return fail(f"{prefix} holds {name} {wanted}, but the driver runs CUDA {driver_cuda}",
                            fix=f"conda install -p {prefix} -c conda-forge 'cuda-version={driver_cuda}'   # or upgrade the driver to "
                                f">= {compat.minimum_driver(wanted)}")
    if not driver_cuda:
        raise Skip("no driver reports a CUDA version (see driver.loaded)")
    return ok(f"the CUDA packages of every judged environment run on a driver for CUDA {driver_cuda}")


@check("conda.channels", "CUDA packages from one channel", needs=("conda",))
def channels(conda):
    """Mixing pytorch, nvidia, defaults and conda-forge builds of CUDA packages; the pytorch channel ended at 2.5 (failure mode 36)."""
    for prefix, pkgs in conda_envs(conda).items():
        stale = pkgs.get("pytorch", {}).get("channel") == "pytorch"
        mixed = sorted({p["channel"] for p in pkgs.values()})
        if stale or len(mixed) > 1:
            lines = [f"{n} {p['version']} from {p['channel']}" for n, p in sorted(pkgs.items())]
            why = ("pytorch comes from the pytorch channel, whose last release is 2.5" if stale
                   else f"CUDA packages come from {len(mixed)} channels ({', '.join(mixed)})")
            return warn(f"{prefix}: {why}", details=lines,
                        fix="conda config --set channel_priority strict\n"
                            f"# recreate the env from conda-forge alone, or keep conda for Python and install torch with pip:\n"
                            f"conda create -p {prefix}-new -c conda-forge python pytorch-gpu")
    return ok("each environment takes its CUDA packages from one channel")


PIP_NAMES = {"pytorch": "torch", "pytorch-gpu": "torch", "tensorflow": "tensorflow", "tensorflow-gpu": "tensorflow", "jaxlib": "jaxlib"}


@check("conda.pip_mix", "No package installed by both conda and pip", needs=("conda", "python_envs"))
def pip_mix(conda, python_envs):
    """conda's pytorch and pip's torch in one env: whichever wrote last wins, and the other's files linger (failure mode 35)."""
    envs = conda_envs(conda)
    for interpreter in python_envs["interpreters"]:
        prefix = next((p for p in envs if interpreter["path"].startswith(p.rstrip("/") + "/")), None)
        if prefix is None or "failure" in interpreter["env"]:
            continue
        by_pip = {d["name"]: d for d in interpreter["env"]["distributions"] if d.get("installer") == "pip"}
        both = sorted(name for name in envs[prefix] if PIP_NAMES.get(name) in by_pip)
        if both:
            names = " ".join(PIP_NAMES[n] for n in both)
            shown = ", ".join(f"{n} {envs[prefix][n]['version']} from conda and {PIP_NAMES[n]} {by_pip[PIP_NAMES[n]]['version']} from pip"
                              for n in both)
            pins = " ".join(f"'{n}={envs[prefix][n]['version']}'" for n in both)
            return warn(f"{prefix} has {shown}: pip wrote over conda's files, and what imports is a mix",
                        fix=f"{interpreter['path']} -m pip uninstall -y {names}   # pip's copy over conda's\n"
                            f"conda install -p {prefix} --force-reinstall {pins}   # conda's own files back, the versions the env asks for\n"
                            f"# or keep pip's instead: conda remove -p {prefix} --force {' '.join(both)}, then reinstall with pip")
    return ok("no framework is installed by both conda and pip")
