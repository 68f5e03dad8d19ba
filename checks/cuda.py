"""The cuda area: the driver against the CUDA runtimes in use, and the toolkits on the machine."""

from __future__ import annotations

import re

from gpudoctor import compat, fixes, kb
from gpudoctor.frameworks import install_fix, interpreters, value
from gpudoctor.gpus import driver_cuda as _driver_cuda
from gpudoctor.gpus import gpu_devices
from gpudoctor.host import NOT_RECORDED, NotRecorded
from gpudoctor.machineinfo import nvcc_full_version
from gpudoctor.plugin import Skip, check, collector, fail, ok, skip, warn


@collector("cuda_toolkits")
def collect_cuda_toolkits(host) -> dict:
    """Toolkits under /usr/local, nvcc on PATH with its version, CUDA_HOME/CUDA_PATH, and gcc."""
    nvcc = host.run(["nvcc", "--version"])
    if nvcc.error == NOT_RECORDED:
        raise NotRecorded("nvcc --version")
    gcc = host.run(["gcc", "-dumpfullversion", "-dumpversion"])
    try:
        local = host.listdir("/usr/local") or []
    except NotRecorded:
        local = []
    return {
        "installed": sorted(name[len("cuda-"):] for name in local if re.fullmatch(r"cuda-\d+\.\d+", name)),
        "nvcc_path": host.which("nvcc"),
        "nvcc_version": _nvcc_release(nvcc.stdout) if nvcc.ok else None,
        "nvcc_full_version": nvcc_full_version(nvcc.stdout) if nvcc.ok else None,
        "cuda_home": {name: host.environ.get(name) for name in ("CUDA_HOME", "CUDA_PATH") if host.environ.get(name)},
        "cuda_home_exists": {name: host.stat(path) is not None for name, path in
                             ((n, host.environ.get(n)) for n in ("CUDA_HOME", "CUDA_PATH")) if path},
        "cuda_home_version": {name: _toolkit_version(host, path) for name, path in
                              ((n, host.environ.get(n)) for n in ("CUDA_HOME", "CUDA_PATH")) if path},
        "gcc": gcc.stdout.strip() if gcc.ok else None,
    }


def _toolkit_version(host, root: str) -> str | None:
    """A toolkit's release from its own version.json (CUDA 11.1+) or version.txt, without running its nvcc."""
    found = host.read(f"{root.rstrip('/')}/version.json")
    match = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"(\d+\.\d+)', found.text or "")
    if not match:
        match = re.search(r"CUDA Version (\d+\.\d+)", host.read(f"{root.rstrip('/')}/version.txt").text or "")
    return match.group(1) if match else None


def _nvcc_release(text: str) -> str | None:
    """'Cuda compilation tools, release 13.0, V13.0.88' -> '13.0'."""
    match = re.search(r"release (\d+\.\d+)", text)
    return match.group(1) if match else None


@check("cuda.driver_runtime", "The driver runs every CUDA runtime in use", needs=("python_envs",),
       uses=("nvml", "nvidia_smi", "driver"))
def driver_runtime(python_envs, nvml, nvidia_smi, driver):
    """A framework (torch, TensorFlow, JAX's plugin, CuPy) built for a newer CUDA major than the driver: error 35 (failure modes 8, 9)."""
    driver_cuda = _driver_cuda(nvml, nvidia_smi)
    if not driver_cuda:
        raise Skip("no driver reports a CUDA version (see driver.loaded)")
    runtimes = _runtimes(python_envs)
    if not runtimes:
        raise Skip("no CUDA build of a framework is installed (see torch.build, tensorflow.build, jax.install)")
    for name, interpreter, version, runtime in runtimes:
        if not compat.runtime_runs_on(runtime, driver_cuda):
            floor = compat.minimum_driver(runtime)
            other = (install_fix(interpreter["path"], version, driver_cuda, []) if name == "torch"
                     else f"# install the {name} build for CUDA {driver_cuda.split('.')[0]} (see {name}'s checks)")
            return fail(f"{name} {version} needs a driver for CUDA {runtime} (>= {floor}); "
                        f"this driver runs CUDA {driver_cuda}: 'The NVIDIA driver on your system is too old'",
                        fix=f"# either upgrade the driver to >= {floor} (see driver.loaded's commands), or install a build for CUDA {driver_cuda}:\n{other}")
    shown = ", ".join(sorted({f"{name} CUDA {runtime}" for name, _, _, runtime in runtimes}))
    return ok(f"the driver runs CUDA {driver_cuda}; in use: {shown}")


def _runtimes(python_envs: dict) -> list[tuple[str, dict, str, str]]:
    """(framework, interpreter, version, CUDA runtime) for every CUDA build in the judged interpreters."""
    found = []
    for i in python_envs["interpreters"]:
        torch = i.get("torch") or {}
        if value(torch, "version_cuda"):
            found.append(("torch", i, value(torch, "version"), value(torch, "version_cuda")))
        tf = i.get("tensorflow") or {}
        if (tf.get("build") or {}).get("cuda_version"):
            found.append(("tensorflow", i, tf.get("version"), str(tf["build"]["cuda_version"])))
        cupy = i.get("cupy") or {}
        if isinstance(cupy.get("runtime"), int):
            found.append(("cupy", i, cupy.get("cupy"), compat.cuda_of_driver(cupy["runtime"])))
        for dist in (i.get("env") or {}).get("distributions") or []:
            if dist["name"].startswith("jax-cuda") and dist["name"].endswith("-plugin"):
                plugin = kb.load("jax")["plugins"].get(dist["name"][len("jax-"):-len("-plugin")])
                if plugin:
                    found.append(("jax", i, dist["version"], plugin["cuda"]))
    return found


@check("cuda.toolkits", "CUDA toolkits installed", needs=("cuda_toolkits",), uses=("conda",))
def toolkits(cuda_toolkits, conda):
    """Which toolkits exist (/usr/local, nvcc on PATH, conda's cuda-nvcc) and which nvcc wins."""
    found = cuda_toolkits["installed"]
    nvcc = cuda_toolkits["nvcc_path"]
    in_conda = [f"{prefix}: cuda-nvcc {pkgs['cuda-nvcc']['version']}" for prefix, pkgs in ((conda or {}).get("envs") or {}).items()
                if "cuda-nvcc" in pkgs]
    if not found and not nvcc and not in_conda:
        return skip("no CUDA toolkit is installed: frameworks bring their own CUDA runtime; nvcc is needed only to build extensions")
    lines = [f"/usr/local/cuda-{v}" for v in found] + in_conda
    if nvcc:
        lines.append(f"nvcc on PATH: {nvcc} (release {cuda_toolkits['nvcc_version']})")
    head = (f"nvcc {cuda_toolkits['nvcc_version']} at {nvcc}" if nvcc else
            f"CUDA {', '.join(found)} under /usr/local, no nvcc on PATH" if found else in_conda[0])
    if len(found) > 1:
        head = f"{len(found)} CUDA toolkits, {' and '.join(found)}; " + (f"nvcc on PATH is {cuda_toolkits['nvcc_version']} ({nvcc})"
                                                                       if nvcc else "no nvcc on PATH")
    return ok(head, lines)


@check("cuda.cuda_home", "CUDA_HOME and nvcc agree", needs=("cuda_toolkits",))
def cuda_home(cuda_toolkits):
    """A CUDA_HOME pointing nowhere, or at another toolkit than the nvcc on PATH, breaks extension builds (failure mode 28)."""
    homes = cuda_toolkits["cuda_home"]
    if not homes:
        return ok("CUDA_HOME and CUDA_PATH are unset: builds use the nvcc on PATH")
    for name, path in homes.items():
        if not cuda_toolkits["cuda_home_exists"].get(name):
            return fail(f"{name}={path} does not exist", fix=f"unset {name}   # or point it at an installed toolkit, e.g. /usr/local/cuda-{(cuda_toolkits['installed'] or ['13.0'])[-1]}")
    nvcc = cuda_toolkits["nvcc_path"] or ""
    versions = cuda_toolkits.get("cuda_home_version") or {}
    release = cuda_toolkits.get("nvcc_version")
    strays = {name: path for name, path in homes.items() if nvcc and not nvcc.startswith(path.rstrip("/") + "/")
              and not (versions.get(name) and versions.get(name) == release)}
    if strays:
        name, path = next(iter(strays.items()))
        home = f"{name}={path} (CUDA {versions[name]})" if versions.get(name) else f"{name}={path}"
        return warn(f"{home} but the nvcc on PATH is {nvcc} (CUDA {release}): extension builds mix two toolkits",
                    fix=f"export PATH={path.rstrip('/')}/bin:$PATH   # or set {name} to the toolkit of {nvcc}")
    return ok(f"{', '.join(f'{k}={v}' for k, v in homes.items())} holds the nvcc on PATH")


@check("cuda.host_compiler", "gcc is one nvcc accepts", needs=("cuda_toolkits",), uses=("os",))
def host_compiler(cuda_toolkits, os):
    """nvcc refuses a newer gcc: 'unsupported GNU version! gcc versions later than N are not supported' (failure mode 27)."""
    release, gcc = cuda_toolkits["nvcc_version"], cuda_toolkits["gcc"]
    if not release or not gcc:
        return skip("no nvcc or no gcc here: nothing compiles CUDA code")
    ceiling = kb.load("cuda")["host_gcc_max_exclusive"].get(release)
    if ceiling is None:
        return skip(f"gpudoctor has no gcc table for CUDA {release}")
    major = compat.version_key(gcc)[0]
    if major >= ceiling:
        good = ceiling - 1
        return warn(f"gcc {gcc} is newer than CUDA {release}'s nvcc accepts (gcc < {ceiling})",
                    fix=f"{fixes.install(os, f'gcc-{good}', f'g++-{good}')}\nexport CC=gcc-{good} CXX=g++-{good} CUDAHOSTCXX=g++-{good}")
    return ok(f"gcc {gcc} is accepted by nvcc {release} (gcc < {ceiling})")


@check("cuda.ld_library_path", "LD_LIBRARY_PATH does not shadow bundled CUDA libraries",
       needs=("cuda_libraries",), uses=("python_envs",))
def ld_library_path(cuda_libraries, python_envs):
    """A toolkit's lib folder on LD_LIBRARY_PATH shadows the wheels' copies: 'undefined symbol: __nvJitLinkComplete_12_4' (failure mode 29)."""
    folders = {folder: libs for folder, libs in cuda_libraries["ld_library_path"].items()
               if any(not lib.startswith(DRIVER_LIBRARIES) for lib in libs)}
    if not folders and cuda_libraries.get("unlisted"):
        return skip(f"the folders on LD_LIBRARY_PATH were not recorded ({':'.join(cuda_libraries['unlisted'])})")
    if not folders:
        return ok("no CUDA library folder is on LD_LIBRARY_PATH")
    try:
        judged = interpreters(python_envs) if python_envs else []
    except Skip:
        judged = []
    wheels = sorted({d["name"] for i in judged for d in i["env"]["distributions"]
                     if d["name"].startswith("nvidia-") and d["name"] != "nvidia-ml-py"})
    lines = [f"{folder}: {', '.join(libs)}" for folder, libs in folders.items()]
    if not wheels:
        return ok("CUDA libraries are on LD_LIBRARY_PATH, but no framework here bundles its own to be shadowed", lines)
    rest = ":".join(d for d in cuda_libraries["ld_library_path_dirs"] if d not in folders)
    return warn(f"LD_LIBRARY_PATH puts {len(folders)} CUDA library folder(s) ahead of what the {len(wheels)} nvidia-* wheel(s) bundle",
                fix=(f"export LD_LIBRARY_PATH={rest}" if rest else "unset LD_LIBRARY_PATH") +
                    "   # and remove the folder from ~/.bashrc or the job script that sets it", details=lines + wheels)


# the driver's own user-space libraries: no wheel bundles them, so a folder of only these shadows nothing (NVIDIA's
# container images put /usr/local/nvidia/lib64, holding libcuda, on LD_LIBRARY_PATH: seen on the H200, 2026-11-27)
DRIVER_LIBRARIES = ("libcuda.", "libnvidia-", "libnvcuvid.", "libnvoptix.")


@check("cuda.forward_compat", "The forward-compatibility package only where it works", needs=("cuda_libraries",),
       uses=("nvml", "nvidia_smi", "driver"))
def forward_compat(cuda_libraries, nvml, nvidia_smi, driver):
    """cuda-compat's libcuda on a GeForce GPU fails with error 804, and one older than the driver with 803 (failure mode 31)."""
    folders = [f for f, libs in cuda_libraries["ld_library_path"].items() if "compat" in f and any(n.startswith("libcuda.so") for n in libs)]
    cached = [p for p in (cuda_libraries["cache"] or {}).get("libcuda.so.1", []) if "/compat/" in p]
    if not folders and not cached:
        if cuda_libraries["cache"] is None or cuda_libraries.get("unlisted"):
            return skip("the linker cache or the folders on LD_LIBRARY_PATH were not recorded")
        return ok("the forward-compatibility package (cuda-compat) is not in use")
    where = (folders or cached)[0]
    geforce = [d["name"] for d in gpu_devices(nvml, nvidia_smi) if "GeForce" in (d.get("name") or "")]
    undo = (f"export LD_LIBRARY_PATH={':'.join(d for d in cuda_libraries['ld_library_path_dirs'] if d not in folders)}"
            if folders else f"sudo rm /etc/ld.so.conf.d/*compat* && sudo ldconfig   # whichever file lists {where}")
    if geforce:
        return fail(f"cuda-compat ({where}) is in use on {geforce[0]}: forward compatibility works only on data-center GPUs "
                    "(cudaErrorCompatNotSupportedOnDevice, 804)", fix=undo)
    module = (driver or {}).get("version")
    compat_version = next((c for c in cuda_libraries.get("compat_versions", []) if c), None)
    if module and compat_version and compat.version_key(compat_version) < compat.version_key(module):
        return fail(f"cuda-compat's libcuda {compat_version} ({where}) is older than the driver {module}: CUDA fails with 803",
                    fix=undo + "   # the driver itself is newer: the compat package is not needed")
    return ok(f"cuda-compat is in use from {where} on data-center GPUs")


@check("cuda.ptx_compiler", "The run-time PTX compiler is no newer than the driver", needs=("python_envs",),
       uses=("nvml", "nvidia_smi", "cuda_toolkits"))
def ptx_compiler(python_envs, nvml, nvidia_smi, cuda_toolkits):
    """JAX and XLA compile PTX with the ptxas of the nvidia-cuda-nvcc wheel: PTX from a newer CUDA than the driver's
    fails to load ('CUDA_ERROR_UNSUPPORTED_PTX_VERSION', 'the provided PTX was compiled with an unsupported toolchain')."""
    driver_cuda = _driver_cuda(nvml, nvidia_smi)
    if not driver_cuda:
        raise Skip("no driver reports a CUDA version (see driver.loaded)")
    nvcc = (cuda_toolkits or {}).get("nvcc_version")
    if nvcc and compat.version_key(nvcc) > compat.version_key(driver_cuda):
        floor = kb.load("cuda")["toolkit_driver"].get(nvcc)
        return warn(f"nvcc {nvcc} at {cuda_toolkits.get('nvcc_path')} makes PTX for CUDA {nvcc}, newer than this driver's CUDA "
                    f"{driver_cuda}: kernels it builds, and JIT compilers that use this toolkit (Numba, CuPy), fail to load "
                    "('the provided PTX was compiled with an unsupported toolchain')",
                    fix=f"# upgrade the driver to >= {floor or 'the one CUDA ' + nvcc + ' needs'} (CUDA {nvcc}'s own; see driver.loaded),\n"
                        f"# or put the CUDA {driver_cuda} toolkit first on PATH")
    try:
        judged = interpreters(python_envs)
    except Skip:
        judged = []
    wheels = [(i, d) for i in judged for d in i["env"]["distributions"] if d["name"].startswith("nvidia-cuda-nvcc")]
    if not wheels:
        return skip("no nvidia-cuda-nvcc wheel: no run-time PTX compiler is installed in the judged environments")
    for interpreter, dist in wheels:
        release = ".".join(str(n) for n in compat.version_key(dist["version"])[:2])
        if compat.version_key(release) > compat.version_key(driver_cuda):
            return warn(f"{dist['name']} {dist['version']} in {interpreter['path']} is the ptxas of CUDA {release}, newer than this "
                        f"driver's CUDA {driver_cuda}: XLA then compiles serially, and PTX it leaves to the driver fails to load "
                        "('CUDA_ERROR_UNSUPPORTED_PTX_VERSION')",
                        fix=f"# upgrade the driver to >= {kb.load('cuda')['toolkit_driver'].get(release) or 'one for CUDA ' + release}"
                            f" (CUDA {release}'s own; see driver.loaded);\n"
                            f"# pinning {dist['name']} to {driver_cuda} instead works only where jax's own requirement allows it:\n"
                            f"{interpreter['path']} -m pip show jax-cuda12-plugin jax-cuda13-plugin 2>/dev/null | grep -i requires")
    return ok(f"the run-time PTX compiler ({', '.join(sorted({d['name'] + ' ' + d['version'] for _, d in wheels}))}) "
              f"is no newer than the driver's CUDA {driver_cuda}")
