"""Compatibility judgements over the knowledge tables: driver against CUDA, builds against GPUs.

Pure functions; the tables live in gpudoctor/knowledge/ (cuda.json, torch.json) with sources.
"""

from __future__ import annotations

import re

from gpudoctor import kb

TORCH_INDEX = "https://download.pytorch.org/whl/{variant}"


def version_key(version: str | None) -> tuple[int, ...]:
    """'580.159.04' -> (580, 159, 4); anything unreadable sorts first."""
    return tuple(int(x) for x in re.findall(r"\d+", version or ""))


def cuda_of_driver(cuda_driver_version: int | None) -> str | None:
    """NVML's CUDA driver version (13000) as '13.0': the newest CUDA this driver runs."""
    if not isinstance(cuda_driver_version, int) or cuda_driver_version <= 0:
        return None
    return f"{cuda_driver_version // 1000}.{cuda_driver_version % 1000 // 10}"


def cuda_of_driver_version(driver_version: str | None) -> str | None:
    """The newest CUDA a driver version runs ('430.26' -> '10.1'), from NVIDIA's table of minimum drivers.

    For drivers whose nvidia-smi XML carries no <cuda_version> (schema 9 and older) or says "Not Found"."""
    if not driver_version or not version_key(driver_version):
        return None
    table = {**kb.load("cuda")["toolkit_driver_before_11"], **kb.load("cuda")["toolkit_driver"]}
    runs = [cuda for cuda, floor in table.items() if version_key(floor) <= version_key(driver_version)]
    return max(runs, key=version_key, default=None)


def minimum_driver(cuda: str) -> str | None:
    """The oldest Linux driver that runs a CUDA `major.minor` runtime (minor version compatibility)."""
    return kb.load("cuda")["minor_version_compat"].get(cuda.split(".")[0])


def runtime_runs_on(runtime_cuda: str, driver_cuda: str) -> bool:
    """A runtime runs when the driver's CUDA major is at least the runtime's (minor version compatibility)."""
    return version_key(runtime_cuda)[:1] <= version_key(driver_cuda)[:1]


def torch_release(version: str | None) -> dict | None:
    """The knowledge for a torch version ('2.13.0+cpu' -> release '2.13')."""
    key = ".".join(str(n) for n in version_key(version)[:2])
    return kb.load("torch")["releases"].get(key)


def load_release(name: str) -> dict | None:
    """A torch release's knowledge by its name ('2.7')."""
    return kb.load("torch")["releases"].get(name)


def variant_supports(variant: dict, capability: tuple[int, int]) -> bool:
    """A build runs on a GPU when it has SASS for the GPU's major at a minor no newer than the GPU's.

    CUDA's binary compatibility (sm_86 code runs on sm_89; PyTorch's own _check_cubins applies
    the same rule). PTX of an older major is not counted: it JIT-compiles, but the libraries
    built alongside it (cuBLAS, cuDNN) lack the new GPU's kernels (failure mode 33).
    """
    major, minor = capability
    return any(a[0] == major and a[1] <= minor for a in (version_key(arch)[:2] for arch in variant["arch"]))


def torch_choice(torch_version: str | None, driver_cuda: str | None,
                 capabilities: list[tuple[int, int]]) -> tuple[str, str] | None:
    """(release, variant): the official build closest to the installed release that has kernels for every GPU and
    runs on this driver. The installed release first (its stable variants, then the others), then newer releases
    from the nearest, then older ones (failure modes 33, 34: Blackwell needs 2.7+cu128, Pascal a cu126 build)."""
    releases = kb.load("torch")["releases"]
    here = ".".join(str(n) for n in version_key(torch_version)[:2]) or max(releases, key=version_key)  # unknown: the newest
    newer = sorted((r for r in releases if version_key(r) > version_key(here)), key=version_key)
    older = sorted((r for r in releases if version_key(r) < version_key(here)), key=version_key, reverse=True)
    for name in ([here] if here in releases else []) + newer + older:
        release = releases[name]
        ordered = sorted(release["variants"], key=lambda v: (v not in release["stable"], [-n for n in version_key(v)]))
        for variant in ordered:
            build = release["variants"][variant]
            if driver_cuda and not runtime_runs_on(build["cuda"], driver_cuda):
                continue
            if all(variant_supports(build, cc) for cc in capabilities):
                return name, variant
    return None


def torch_install(python: str, torch_version: str | None, variant: str) -> str:
    """The pip command that puts this torch release's `variant` build into `python`."""
    parts = version_key(torch_version)
    pinned = ".".join(str(n) for n in parts[:3])
    spec = f"'torch=={pinned}.*'" if len(parts) == 2 else f"torch=={pinned}" if pinned else "torch"
    return (f"{python} -m pip install --force-reinstall {spec} "
            f"--index-url {TORCH_INDEX.format(variant=variant)}")
