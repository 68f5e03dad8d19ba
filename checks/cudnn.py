"""The cudnn area: every cuDNN on the machine, the one each framework loads, and the ones that lie in wait.

The framework's own view comes from the torch probe (compiled and runtime versions, and the
library file the process really mapped); the rest from the linker cache and LD_LIBRARY_PATH,
inventoried here without loading anything (loading a cuDNN to read its version is how a probe
would cause the very mismatch it looks for: see the H200 capture's README).
"""

from __future__ import annotations

from gpudoctor import compat
from gpudoctor.frameworks import interpreters, torch_installs, value
from gpudoctor.host import NotRecorded
from gpudoctor.parsers import CUDA_LIBRARIES, library_version, parse_ldconfig
from gpudoctor.plugin import Skip, check, collector, fail, ok, skip, warn


def _version_of(host, path: str) -> str | None:
    try:
        return library_version(host.realpath(path)) or library_version(path)
    except NotRecorded:
        return library_version(path)


@collector("cuda_libraries")
def collect_cuda_libraries(host) -> dict:
    """CUDA-family libraries in the linker cache and on LD_LIBRARY_PATH, and every cuDNN copy's version."""
    ldconfig = host.run(["ldconfig", "-p"])
    cache = parse_ldconfig(ldconfig.stdout) if ldconfig.ok else None
    dirs = [d for d in (host.environ.get("LD_LIBRARY_PATH") or "").split(":") if d]
    on_path, unlisted = {}, []
    for folder in dirs:
        try:
            names = host.listdir(folder) or []
        except NotRecorded:
            unlisted.append(folder)
            continue
        libs = sorted(n for n in names if n.lower().startswith(CUDA_LIBRARIES) and ".so." in n)
        if libs:
            on_path[folder] = libs
    cudnn = [{"path": path, "version": _version_of(host, path), "where": "the linker cache"}
             for soname, paths in (cache or {}).items() if soname.startswith("libcudnn.so") for path in paths]
    cudnn += [{"path": f"{folder}/{name}", "version": _version_of(host, f"{folder}/{name}"), "where": "LD_LIBRARY_PATH"}
              for folder, names in on_path.items() for name in names if name.startswith("libcudnn.so.")]
    compat_versions = [_version_of(host, f"{folder}/libcuda.so.1") for folder in on_path if "compat" in folder]
    return {"cache": cache, "cache_error": ldconfig.error, "ld_library_path": on_path, "ld_library_path_dirs": dirs,
            "unlisted": unlisted, "cudnn": cudnn, "compat_versions": compat_versions,
            "resolved": {folder: _real(host, folder) for folder in on_path}}


def _real(host, path: str) -> str:
    """Where a folder on LD_LIBRARY_PATH really is (/usr/local/cuda/lib64 is a link into a versioned toolkit)."""
    try:
        return host.realpath(path)
    except NotRecorded:
        return path


def _pip_cudnn(python_envs: dict | None) -> list[str]:
    try:
        found = interpreters(python_envs) if python_envs else []
    except Skip:
        found = []
    return [f"{d['name']} {d['version']} in {d['location']}" for i in found for d in i["env"]["distributions"]
            if d["name"].startswith("nvidia-cudnn")]


@check("cudnn.inventory", "cuDNN copies on this machine", needs=("cuda_libraries",), uses=("python_envs", "conda"))
def inventory(cuda_libraries, python_envs, conda):
    """Every cuDNN, with its version and where it lives: pip wheels, conda, the linker cache, LD_LIBRARY_PATH."""
    in_conda = [f"cudnn {pkgs['cudnn']['version']} in {prefix} (conda, {pkgs['cudnn']['channel']})"
                for prefix, pkgs in ((conda or {}).get("envs") or {}).items() if "cudnn" in pkgs]
    lines = _pip_cudnn(python_envs) + in_conda + [f"{c['path']} ({c['version'] or 'version unknown'}, {c['where']})"
                                                  for c in cuda_libraries["cudnn"]]
    if not lines:
        return skip("no cuDNN is installed (frameworks that need it bring it as the nvidia-cudnn-cuXX wheel)")
    return ok(f"{len(lines)} cuDNN cop{'y' if len(lines) == 1 else 'ies'}", lines)


def _entry(folder: str, cuda_libraries: dict) -> str:
    """The LD_LIBRARY_PATH entry a loaded library came from, through the links that entry resolves."""
    for entry, real in (cuda_libraries.get("resolved") or {}).items():
        if folder in (entry, real):
            return entry
    return folder


def _compatible(compiled: list, runtime: list) -> bool:
    """PyTorch's own rule for cuDNN 9: same major, runtime minor at least the compiled one."""
    return runtime[0] == compiled[0] and tuple(runtime[:2]) >= tuple(compiled[:2])


@check("cudnn.torch", "PyTorch loads the cuDNN it was built with", needs=("python_envs",), uses=("cuda_libraries",))
def torch_cudnn(python_envs, cuda_libraries):
    """A foreign cuDNN loaded instead of the bundled one: 'cuDNN version incompatibility' (failure mode 30)."""
    for interpreter, facts in torch_installs(python_envs):
        compiled = value(facts, "cudnn_compile")
        runtime = value(facts, "cudnn_runtime") or value(facts, "cudnn_runtime_raw")
        if not value(facts, "version_cuda") or not compiled:
            raise Skip("PyTorch is not a CUDA build with cuDNN (see torch.build)")
        loaded = [p for p in facts.get("loaded_libs") or [] if "/libcudnn.so" in p]
        error = (facts.get("cudnn_version") or {}).get("error", "")
        dirs = (cuda_libraries or {}).get("ld_library_path_dirs") or []
        foreign = bool(loaded) and _entry(loaded[0].rsplit("/", 1)[0], cuda_libraries or {}) in dirs
        broken_parts = [line.strip() for line in facts.get("stderr_tail") or [] if "Could not load library libcudnn" in line]
        if foreign and runtime and (list(runtime[:3]) != list(compiled[:3]) or broken_parts):
            error = error or (broken_parts[0][:300] if broken_parts else "")
        if (runtime and not _compatible(compiled, runtime)) or "incompatib" in error or (foreign and error):
            where = loaded[0] if loaded else "a library outside the wheel"
            folder = _entry(where.rsplit("/", 1)[0], cuda_libraries or {})
            dirs = (cuda_libraries or {}).get("ld_library_path_dirs") or []
            rest = ":".join(d for d in dirs if d != folder)
            fix = ((f"export LD_LIBRARY_PATH={rest}" if rest else "unset LD_LIBRARY_PATH") +
                   f"   # drop {folder}, which holds the foreign cuDNN" if folder in dirs else
                   f"{interpreter['path']} -m pip install --force-reinstall 'nvidia-cudnn-cu{value(facts, 'version_cuda').split('.')[0]}"
                   f"=={compiled[0]}.{compiled[1]}.*'   # the cuDNN this torch was built with")
            shown = ".".join(str(n) for n in runtime) if runtime else "another version"
            return fail(f"torch in {interpreter['path']} was built with cuDNN {'.'.join(map(str, compiled))} "
                        f"but loads {shown} from {where}", fix=fix, details=[error] if error else [])
    return ok("each PyTorch loads a cuDNN compatible with the one it was built with")


@check("cudnn.hazard", "No other cuDNN waiting where the linker looks", needs=("cuda_libraries", "python_envs"))
def hazard(cuda_libraries, python_envs):
    """A second cuDNN in the linker cache or on LD_LIBRARY_PATH wins in any process that loads it first."""
    if cuda_libraries["cache"] is None and not cuda_libraries["ld_library_path"]:
        raise Skip(f"the linker cache could not be read ({cuda_libraries['cache_error']})")
    judged = [(f, [p for p in f.get("loaded_libs") or [] if "/libcudnn.so" in p]) for _, f in torch_installs(python_envs)]
    if not any(loaded for _, loaded in judged):
        raise Skip("no framework here loaded a cuDNN (CPU-only builds, or none installed)")
    for facts, loaded in judged:
        ours = value(facts, "cudnn_runtime") or value(facts, "cudnn_runtime_raw")
        if not loaded or not ours:
            continue
        mine = ".".join(str(n) for n in ours)
        others = [c for c in cuda_libraries["cudnn"] if c["path"] not in loaded and c["version"]
                  and compat.version_key(c["version"])[:2] != tuple(ours[:2])]
        if others:
            lines = [f"{c['path']} ({c['version']}, {c['where']})" for c in others]
            return warn(f"torch loads cuDNN {mine} from its wheel, but {len(others)} other cuDNN cop{'y' if len(others) == 1 else 'ies'} "
                        "sit where the dynamic linker looks: a library that loads one first makes torch use it",
                        fix=f"dpkg -S {others[0]['path']} 2>/dev/null || rpm -qf {others[0]['path']}   # which package brought it\n"
                            "# keep cuDNN folders off LD_LIBRARY_PATH; in one process the first library that loads a cuDNN decides\n"
                            "# which one every framework gets, so remove that copy if nothing needs it", details=lines)
    return ok("no other cuDNN version sits in the linker cache or on LD_LIBRARY_PATH")
