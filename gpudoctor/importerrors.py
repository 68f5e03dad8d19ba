"""Why an installed framework does not import, and the fix for that cause.

The probe reports the exception and the traceback's last lines (or the signal that killed
the interpreter). Each kind of failure has its own evidence: a missing library is provided
by a wheel the framework itself requires (its Requires-Dist names the exact version); an
undefined symbol means another copy of the providing library was loaded first (a folder on
LD_LIBRARY_PATH, or a second wheel for another CUDA major); GLIBC and CPU-feature failures
are the machine against the build; NumPy's ABI break is the NumPy version against the build.
Sources per kind are in the incident corpus (tests/incidents/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from gpudoctor import kb
from gpudoctor.context import container_kind
from gpudoctor.frameworks import (
    cuda_major,
    distributions,
    framework_dist,
    state,
)
from gpudoctor.models import Verdict, fail

_MISSING = re.compile(r"(lib[\w+.-]*?\.so(?:\.[\d.]+)?): cannot open shared object file")
_UNDEFINED = re.compile(r"(/\S+?\.so[\d.]*): undefined symbol: (\S+?)(?:, version (\S+))?\s*$")
_GLIBC = re.compile(r"version [`'](GLIBC(?:XX)?)_([\d.]+)' not found")
_NUMPY = re.compile(r"compiled using NumPy 1\.x cannot be run in|_ARRAY_API not found|numpy\.core\.multiarray failed to import|"
                    r"module compiled against (?:ABI|API) version|numpy\.dtype size changed")
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")


@dataclass(frozen=True)
class Context:
    """What beside the probe's answer decides the fix."""

    ld_library_path: dict  # folder -> CUDA-family libraries in it (cuda_libraries collector)
    glibc: str | None = None
    cpu_flags: tuple[str, ...] | None = None
    cpu_model: str | None = None
    container: str | None = None


def import_context(cuda_libraries: dict | None, machine: dict | None, platform: dict | None, container: dict | None) -> Context:
    """The facts an import failure's fix depends on, from the collectors' answers."""
    flags = (platform or {}).get("cpu_flags")
    return Context((cuda_libraries or {}).get("ld_library_path") or {}, (machine or {}).get("glibc"),
                   tuple(flags) if flags is not None else None, (platform or {}).get("cpu_model"), container_kind(container))


def telling_lines(answer: dict) -> list[str]:
    """The lines a person needs: the traceback's tail, or what stderr said before a crash."""
    lines = answer.get("traceback_tail") or answer.get("stderr_tail") or []
    message = answer.get("failed") or answer.get("message") or ""
    return [line for line in lines if line.strip()][-6:] or [message]


def diagnose(probe: str, interpreter: dict, answer: dict, context: Context) -> Verdict:
    """The failing verdict for a framework that is installed but did not answer its probe."""
    python = interpreter["path"]
    dists = distributions(interpreter)
    dist = framework_dist(dists, probe)
    name = f"{probe} {dist['version']}" if dist.get("version") else probe
    kind = state(answer, probe)
    lines = telling_lines(answer)
    if kind == "crashed":
        if answer.get("signal") == "SIGILL":
            return _illegal_instruction(probe, name, python, context, lines)
        return fail(f"`import {probe}` crashes {python} ({answer.get('signal')})", details=lines,
                    fix=f"{python} -X faulthandler -c 'import {probe}'   # the Python stack where it crashes")
    if kind == "hung":
        return fail(f"`import {probe}` in {python} did not finish ({answer.get('message')})", details=lines,
                    fix=f"{python} -X importtime -c 'import {probe}' 2>&1 | tail -20   # the module it stalls in\n"
                        "# a hung import is usually a network file system, a lock, or a GPU that does not answer (see gpu.visible);\n"
                        "# one that is only slow (a cold file cache) passes with a longer limit: gpudoctor check --timeout 60")
    if kind in ("garbage", "not run"):
        return fail(f"the {probe} probe in {python} gave no answer: {answer.get('message')}", details=lines,
                    fix=f"{python} -c 'import {probe}'   # run the import by hand and read its error")
    raised = "\n".join([answer.get("failed") or ""] + list(answer.get("traceback_tail") or []))
    text = raised + "\n" + "\n".join(answer.get("stderr_tail") or [])
    for pattern, judge in ((_MISSING, _missing_library), (_UNDEFINED, _undefined_symbol), (_GLIBC, _glibc)):
        match = _last(pattern, raised)  # the exception itself, not warnings printed on the way
        if match:
            return judge(probe, name, python, dists, context, match, lines)
    if _NUMPY.search(text):
        return _numpy(probe, name, python, interpreter, text, lines)
    missing = _NO_MODULE.search(text)
    if missing:
        return fail(f"{name} in {python} does not import: its dependency '{missing.group(1)}' is missing", details=lines,
                    fix=f"{python} -m pip install {_pin(probe, dist)}   # installs what {probe} requires")
    return fail(f"{name} is installed in {python} but does not import: {(answer.get('failed') or '')[:200]}", details=lines,
                fix=f"{python} -c 'import {probe}'   # the whole traceback\n"
                    f"{python} -m pip install --force-reinstall {_pin(probe, dist)}")


_API = re.compile(r"module compiled against (?:ABI|API) version (?:0x)?([0-9a-f]+) but this version of numpy is (?:0x)?([0-9a-f]+)")


def _numpy(probe, name, python, interpreter, text, lines) -> Verdict:
    """NumPy's ABI against the build: NumPy 2 under a module built for 1.x, or a NumPy older than the build needs."""
    copies = [d for d in (interpreter.get("env") or {}).get("distributions") or [] if d["name"] == "numpy"]
    api = _API.search(text)
    if api and int(api.group(1), 16) > int(api.group(2), 16):
        system = [d for d in copies if "/dist-packages" in d["location"] and d["location"].startswith("/usr/lib")]
        package = "python3-numpy" if (interpreter.get("env") or {}).get("python", {}).get("version", "3").startswith("3") else "python-numpy"
        if system and len(copies) > 1:
            return fail(f"{name} in {python} needs a newer NumPy, but the distribution's older NumPy ({system[0]['version']} in "
                        f"{system[0]['location']}) is imported before pip's", details=lines,
                        fix=f"sudo apt-get remove {package}   # the old copy that shadows pip's NumPy")
        return fail(f"{name} in {python} was built against a newer NumPy than the one it imports", details=lines,
                    fix=f"{python} -m pip install -U numpy")
    numpy = copies[-1]["version"] if copies else "2.x"
    return fail(f"{name} in {python} was built against NumPy 1.x but NumPy {numpy} is installed", details=lines,
                fix=f"{python} -m pip install 'numpy<2'   # the ABI {probe} was built for\n"
                    f"# or upgrade {probe} to a release built against NumPy 2")


def abi_warning(probe: str, interpreter: dict, answer: dict) -> Verdict | None:
    """A framework that imported while NumPy printed its ABI banner: it crashes at the first array it shares with NumPy."""
    text = "\n".join(answer.get("stderr_tail") or [])
    if not _NUMPY.search(text):
        return None
    dist = framework_dist(distributions(interpreter), probe)
    name = f"{probe} {dist['version']}" if dist.get("version") else probe
    return _numpy(probe, name, interpreter["path"], interpreter, text, [line for line in answer.get("stderr_tail") or [] if line.strip()][-6:])


def _last(pattern: re.Pattern, text: str):
    found = [m for line in text.splitlines() for m in [pattern.search(line)] if m]
    return found[-1] if found else None


def _pin(probe: str, dist: dict) -> str:
    version = dist.get("version")
    return f"'{probe}=={version.split('+')[0]}'" if version else probe


def _library(soname: str) -> tuple[str, dict]:
    """The knowledge row for a soname ('libcudnn.so.9' -> libcudnn); the longest stem wins (cusparseLt over cusparse)."""
    stem = soname.split(".so")[0]
    rows = kb.load("libraries")["libraries"]
    best = max((key for key in rows if stem.lower().startswith(key.lower())), key=len, default=None)
    return (best, rows[best]) if best else (stem, {})


def _family(dists: dict, wheel: str | None) -> list[str]:
    """The installed NVIDIA wheels of one library, whatever their CUDA major: nvidia-nccl-cu12, nvidia-nccl-cu13, nvidia-cublas."""
    return sorted(n for n in dists if wheel and re.fullmatch(rf"nvidia-{re.escape(wheel)}(-cu\d+)?", n))


def _requirement(dists: dict, wheel: str | None) -> tuple[str, Requirement] | None:
    """(requiring distribution, requirement) for the nvidia-<wheel> package a framework requires."""
    if not wheel:
        return None
    for owner, dist in dists.items():
        for text in dist.get("requires") or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            name = req.name.lower().replace("_", "-")
            if name == f"nvidia-{wheel}" or re.fullmatch(rf"nvidia-{re.escape(wheel)}-cu\d+", name):
                return owner, req
    return None


def _installed(dists: dict, req: Requirement) -> dict | None:
    return dists.get(req.name.lower().replace("_", "-"))


def _satisfied(dist: dict, req: Requirement) -> bool:
    try:
        return req.specifier.contains(Version(dist["version"]), prereleases=True)
    except InvalidVersion:
        return False


def _spec(req: Requirement) -> str:
    return f"'{req.name}{req.specifier}'"


def _missing_library(probe, name, python, dists, context, match, lines) -> Verdict:
    soname = match.group(1)
    stem, row = _library(soname)
    if row.get("driver"):
        where = (f"# this is a {context.container} container started without the GPUs: the host's driver libraries arrive "
                 "only through the NVIDIA runtime.\n# restart it with them: docker run --gpus all (Podman: --device nvidia.com/gpu=all)"
                 if context.container else "# libcuda.so.1 comes with the NVIDIA driver: install or repair it (see driver.loaded)")
        return fail(f"{name} in {python} cannot load {soname}, the NVIDIA driver's own library", details=lines,
                    fix=f"ldconfig -p | grep {stem}.so   # the driver's library must be in the linker cache\n{where}")
    owner_dist = framework_dist(dists, probe)
    wheel = next((dists[n] for n in _family(dists, row.get("wheel"))), None)
    home = owner_dist.get("location")
    if wheel and home and wheel.get("location") and home.rstrip("/") != wheel["location"].rstrip("/"):
        prefix = python.rsplit("/bin/", 1)[0]
        return fail(f"{name} in {python} cannot load {soname}: {wheel['name']} is installed in {wheel['location']}, "
                    f"but {probe} looks for it beside itself in {home}", details=lines,
                    fix=f"ls -ld {prefix}/lib64 {prefix}/lib   # lib64 should be a link to lib, as python -m venv makes it\n"
                        f"# recreate the environment with python -m venv, or move {prefix}/lib64's packages into lib and link lib64 to lib")
    found = _requirement(dists, row.get("wheel"))
    if found:
        owner, req = found
        have = _installed(dists, req)
        if not have:
            why = f"{owner} requires {req.name}{req.specifier}, which is not installed (installed with --no-deps, or removed since)"
        elif not _satisfied(have, req):
            why = f"{req.name} {have['version']} is installed, but {owner} requires {req.specifier}"
        else:
            why = f"{req.name} {have['version']} is installed in {have['location']} but its library is not found there"
        extra = "'tensorflow[and-cuda]==" + dists[owner]["version"] + "'" if req.marker and "and-cuda" in str(req.marker) else _spec(req)
        force = "--force-reinstall " if have and _satisfied(have, req) else ""
        return fail(f"{name} in {python} cannot load {soname}: {why}", details=lines,
                    fix=f"{python} -m pip install {force}{extra}   # what {owner} requires")
    if _in_conda(python):
        prefix = python.rsplit("/bin/", 1)[0]
        return fail(f"{name} in {python} cannot load {soname}, and no installed package provides it", details=lines,
                    fix=f"conda install -p {prefix} -c conda-forge {row.get('conda', stem)}")
    built_for = re.search(r"\.so\.(\d+\.\d+)$", soname)
    if built_for and int(built_for.group(1).split(".")[0]) <= 11:  # CUDA 11 and older named the library by its CUDA release
        cuda = built_for.group(1)
        return fail(f"{name} in {python} cannot load {soname}: it was built for CUDA {cuda}, whose libraries are not installed",
                    details=lines, fix=f"ldconfig -p | grep -E 'libcudart|{stem}'   # the CUDA libraries installed here\n"
                                       f"# install CUDA {cuda}'s libraries (and the cuDNN built for it), or the {probe} release built for the CUDA installed here")
    major = _cuda_major(framework_dist(dists, probe), soname)
    wheel = f"nvidia-{row['wheel']}-cu{major}" if row.get("wheel") and major else None
    fix = (f"{python} -m pip install 'tensorflow[and-cuda]=={dists['tensorflow']['version']}'   # TensorFlow's own CUDA libraries"
           if probe == "tensorflow" and "tensorflow" in dists else
           f"{python} -m pip install {wheel}   # the library, as NVIDIA's wheel" if wheel else
           f"ldconfig -p | grep {stem}   # where the system keeps it, if anywhere")
    return fail(f"{name} in {python} cannot load {soname}, and no installed package provides it", details=lines, fix=fix)


def _in_conda(python: str) -> bool:
    return "/conda" in python or "/envs/" in python or "miniconda" in python or "anaconda" in python or "miniforge" in python


def _cuda_major(dist: dict, soname: str) -> str | None:
    """The framework build's CUDA major, else the one its library's soname names (libcudart.so.12)."""
    major = cuda_major(dist)
    if major:
        return major
    named = re.search(r"\.so\.(\d+)", soname)
    return named.group(1) if named and named.group(1) in ("11", "12", "13") else None


def _provider(path: str, symbol: str, version: str | None) -> tuple[str, dict]:
    """The library that should define `symbol`: its symbol version names it, else its prefix."""
    if version:
        return _library(version)
    rows = kb.load("libraries")["libraries"]
    for key, row in sorted(rows.items(), key=lambda kv: -max((len(s) for s in kv[1].get("symbols", [])), default=0)):
        if any(symbol.startswith(prefix) for prefix in row.get("symbols", [])) and not path.rsplit("/", 1)[-1].startswith(key):
            return key, row
    return "", {}


def _undefined_symbol(probe, name, python, dists, context, match, lines) -> Verdict:
    path, symbol, version = match.group(1), match.group(2), match.group(3)
    stem, row = _provider(path, symbol, version)
    shadows = [folder for folder, libs in context.ld_library_path.items() if stem and any(lib.startswith(stem + ".so") for lib in libs)]
    if shadows:
        keep = [f for f in context.ld_library_path if f not in shadows]
        return fail(f"{name} in {python} does not import: {path.rsplit('/', 1)[-1]} needs {symbol} from {stem}, "
                    f"but LD_LIBRARY_PATH loads an older {stem} from {shadows[0]} first", details=lines,
                    fix=("unset LD_LIBRARY_PATH" if not keep else f"export LD_LIBRARY_PATH={':'.join(keep)}") +
                        f"   # and remove {shadows[0]} from the shell profile or job script that adds it")
    found = _requirement(dists, row.get("wheel"))
    if found:
        owner, req = found
        others = [n for n in _family(dists, row["wheel"]) if n != req.name.lower()]
        have = _installed(dists, req)
        if others:
            return fail(f"{name} in {python} does not import: it needs {symbol} from {req.name}, but {', '.join(others)} "
                        f"is installed beside it and its {stem} is loaded first", details=lines,
                        fix=f"{python} -m pip uninstall -y {' '.join(others)}   # {owner} requires {req.name}{req.specifier}\n"
                            f"{python} -m pip install --force-reinstall {_spec(req)}")
        if have and not _satisfied(have, req):
            return fail(f"{name} in {python} does not import: {req.name} {have['version']} lacks {symbol}; "
                        f"{owner} requires {req.specifier}", details=lines, fix=f"{python} -m pip install {_spec(req)}")
        if have:
            folder = f"{have['location'].rstrip('/')}/nvidia/{row['wheel'].replace('-', '_')}/lib"
            return fail(f"{name} in {python} does not import: another {stem} (the linker cache's) is loaded before the "
                        f"one in {req.name} {have['version']}", details=lines,
                        fix=f"export LD_LIBRARY_PATH={folder}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}   # its own copy first\n"
                            f"ldconfig -p | grep {stem}   # the system copy that wins otherwise")
    family = _family(dists, row.get("wheel"))
    major = _cuda_major(framework_dist(dists, probe), "")
    stray = [n for n in family if re.search(r"-cu(\d+)$", n) and not n.endswith(f"-cu{major}")]  # another major's wheel
    if len(family) > 1 and major and stray:
        return fail(f"{name} in {python} does not import: it needs {symbol}, but {', '.join(family)} are both installed "
                    f"and the CUDA {major} build's {stem} is not the one loaded", details=lines,
                    fix=f"{python} -m pip uninstall -y {' '.join(stray)}   # {name} is a CUDA {major} build")
    if family:
        have = dists[family[0]]
        folder = f"{have['location'].rstrip('/')}/nvidia/{row['wheel'].replace('-', '_')}/lib"
        return fail(f"{name} in {python} does not import: another {stem} is loaded before the one in {family[0]} {have['version']}",
                    details=lines, fix=f"export LD_LIBRARY_PATH={folder}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}   # its own copy first")
    keyword = (row.get("wheel") or stem.replace("lib", "", 1) or "nvidia").split("-")[-1]
    return fail(f"{name} in {python} does not import: {path.rsplit('/', 1)[-1]} needs {symbol}, which the loaded "
                f"{stem or 'library'} lacks (two versions of one library)", details=lines,
                fix=f"{python} -m pip list 2>/dev/null | grep -i {keyword}   # a second package that brings its own {stem or 'copy'}\n"
                    f"echo $LD_LIBRARY_PATH   # folders that load another copy first")


def _glibc(probe, name, python, dists, context, match, lines) -> Verdict:
    library, needed = match.group(1), match.group(2)
    if library == "GLIBCXX":
        prefix = python.rsplit("/bin/", 1)[0]
        conda = _in_conda(python)
        return fail(f"{name} in {python} needs GLIBCXX_{needed} (libstdc++), newer than the one it loads", details=lines,
                    fix=(f"conda install -p {prefix} -c conda-forge 'libstdcxx-ng>=12'   # the conda env's own libstdc++\n" if conda else
                         "strings /usr/lib/x86_64-linux-gnu/libstdc++.so.6 | grep -c GLIBCXX   # what the system's offers\n") +
                        "# or the distribution's newer libstdc++6, or a release of the framework built for this one")
    have = context.glibc or "unknown"
    return fail(f"{name} in {python} needs glibc {needed}; this machine has glibc {have}", details=lines,
                fix=f"ldd --version | head -1   # glibc {have}\n"
                    f"# move to a distribution with glibc >= {needed} (RHEL 8+, Ubuntu 20.04+, Debian 10+), or run in a container of one,\n"
                    f"# or install an older {probe} release whose wheels were built for glibc {have}")


def _illegal_instruction(probe, name, python, context, lines) -> Verdict:
    flags = set(context.cpu_flags or ())
    lacking = [f for f in ("avx", "avx2", "fma") if context.cpu_flags is not None and f not in flags]
    cpu = context.cpu_model or "this CPU"
    has = f"{cpu} lacks {', '.join(lacking)}" if lacking else f"{cpu} has avx, avx2 and fma" if context.cpu_flags else cpu
    return fail(f"`import {probe}` in {python} dies with an illegal instruction (SIGILL): {name} is built for CPU "
                f"instructions that {has}", details=lines,
                fix="grep -o -w -E 'avx|avx2|fma|avx512f' /proc/cpuinfo | sort -u   # what this CPU offers\n"
                    "# in a VM, pass the host CPU's features through (libvirt: <cpu mode='host-passthrough'/>; Proxmox: CPU type host)\n"
                    + (f"# on old hardware: TensorFlow 1.6 and newer are built with AVX (1.6's release notes); the last without:"
                       f" {python} -m pip install 'tensorflow==1.5.*'" if probe == "tensorflow" else
                       f"# on old hardware: a {probe} release built without AVX, or a newer CPU"))
