"""The python area: which interpreter is judged, and whether its environment is sound.

Every fact about a framework comes from probes run inside the judged interpreter, never from
gpudoctor's own process: the env probe (no framework imported), the torch probe, `pip check`.
They run concurrently, each under the run's timeout. The interpreters that imported torch, JAX
and TensorFlow stay up for the smoke test, which trains in them.
"""

from __future__ import annotations

import re
import threading

from packaging.requirements import InvalidRequirement, Requirement

from gpudoctor import fixes
from gpudoctor.frameworks import (
    ALSO_NAMED,
    ask_facts,
    choose_interpreters,
    cuda_major,
    distributions,
    interpreters,
)
from gpudoctor.host import why_no_answer
from gpudoctor.parsers import parse_pip_check
from gpudoctor.requirements import broken_requirements
from gpudoctor.plugin import Skip, check, collector, fail, ok, skip, warn

FRAMEWORKS = ("torch", "tensorflow", "jax", "jaxlib", "cupy")


def _judge_interpreter(host, chosen: dict) -> dict:
    path = chosen["path"]
    answers: dict = {}
    jobs = {what: lambda what=what: ask_facts(host, path, what) for what in ("env", "torch", "jax", "tensorflow", "cupy", "onnxruntime")}
    jobs["pip_check"] = lambda: host.run([path, "-m", "pip", "check"]).to_dict()
    threads = [threading.Thread(target=lambda k=k, f=f: answers.__setitem__(k, f()), daemon=True) for k, f in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {**chosen, **answers}


@collector("python_envs")
def collect_python_envs(host) -> dict:
    """The judged interpreters, each with its env probe, framework probes and `pip check`.

    Every probe starts at once: one for a framework that is not installed fails in milliseconds,
    and the slow imports (torch, TensorFlow) overlap instead of adding up.
    """
    chosen = choose_interpreters(host)
    results: list = [None] * len(chosen)
    threads = [threading.Thread(target=lambda i=i, c=c: results.__setitem__(i, _judge_interpreter(host, c)), daemon=True)
               for i, c in enumerate(chosen)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"interpreters": results}


@check("python.interpreter", "The judged Python interpreter", needs=("python_envs",))
def interpreter(python_envs):
    """Names which interpreter was judged and why; a probe that crashed, hung or babbled is a finding."""
    judged = python_envs["interpreters"]
    if not judged:
        return warn("no Python interpreter to judge: no environment is active and python3 is not on PATH",
                    fix="gpudoctor check --python /path/to/env/bin/python   # name the interpreter that trains")
    broken = [i for i in judged if "failure" in i["env"]]
    unrecorded = [i for i in broken if i["env"]["failure"] == "not recorded"]
    if broken and len(unrecorded) == len(broken):
        return skip(f"the environment probe of {broken[0]['path']} was not recorded")
    if broken:
        i = broken[0]
        failure = i["env"]
        why = {"crashed": f"crashed ({failure.get('signal')})", "hung": "hung", "garbage": "answered garbage",
               "not run": f"could not be run ({failure.get('message')})"}.get(failure["failure"], failure["failure"])
        limit = f" ({failure['message']})" if failure["failure"] == "hung" else ""
        return fail(f"{i['path']} ({i['why']}) {why} when probed{limit}", details=failure.get("stderr_tail") or [],
                    fix=f"{i['path']} -X faulthandler -c 'import sys; print(sys.version)'   # does it start at all?\n"
                        "# a crash here is the interpreter's or a sitecustomize's: reinstall the environment")
    lines = [f"{i['env']['python']['version']} at {i['path']}: {i['why']}" + _kind(i["env"]["python"]) for i in judged]
    return ok(lines[0]) if len(lines) == 1 else ok(f"{len(lines)} interpreters judged", lines)


def _kind(python: dict) -> str:
    return " (conda env)" if python.get("conda") else " (venv)" if python.get("venv") else " (system Python)"


@check("python.user_site", "User site-packages not shadowing the environment", needs=("python_envs",))
def user_site(python_envs):
    """Packages in ~/.local shadow a venv's or conda env's own copies (failure mode 35)."""
    for i in interpreters(python_envs):
        site = i["env"]["python"].get("user_site")
        if not site:
            continue
        mine = [d for d in i["env"]["distributions"] if d["location"].startswith(site) and d["name"] in FRAMEWORKS]
        if mine:
            names = " ".join(sorted({d["name"] for d in mine}))
            return warn(f"{names} in the user site {site} is importable from {i['path']} and can shadow its own copy",
                        fix=f"{i['path']} -m pip uninstall -y {names}   # run as the user, outside the env, to remove the --user copy\n"
                            "export PYTHONNOUSERSITE=1   # or keep ~/.local out of this environment")
    return ok("no framework is installed in a user site-packages that the environment sees")


@check("python.duplicates", "One copy of each framework", needs=("python_envs",))
def duplicates(python_envs):
    """Two copies of one framework on sys.path: which one imports depends on path order (failure mode 35)."""
    for i in interpreters(python_envs):
        seen: dict[str, list[dict]] = {}
        for d in i["env"]["distributions"]:
            seen.setdefault(_package(d["name"]), []).append(d)
        doubled = {name: found for name, found in seen.items() if len(found) > 1}
        if doubled:
            package, found = sorted(doubled.items())[0]
            names = sorted({d["name"] for d in found})
            places = [f"{d['name']} {d['version']} in {d['location']} ({d.get('installer') or 'unknown installer'})" for d in found]
            apt = [d for d in found if d["location"].startswith("/usr/lib/") and "dist-packages" in d["location"]]
            if len(names) > 1:  # two distributions sharing one package folder: removing one breaks the other
                torch = distributions(i).get("torch")
                keep = _preferred(names, cuda_major(torch) if torch else None)
                fix = (f"{i['path']} -m pip uninstall -y {' '.join(names)}   # both write {package}/; remove both, then reinstall one:\n"
                       f"{i['path']} -m pip install --force-reinstall {keep}")
            elif apt:
                fix = f"sudo apt-get remove python3-{package}   # the distribution's copy in {apt[0]['location']}"
            else:
                fix = (f"{i['path']} -m pip uninstall -y {package}   # repeat until none is left, then reinstall once:\n"
                       f"{i['path']} -m pip install {package}")
            return warn(f"{package} is installed {len(found)} times for {i['path']}" + (f" ({', '.join(names)})" if len(names) > 1 else ""),
                        details=places, fix=fix)
    return ok("each framework and CUDA library is installed once")


def _preferred(names: list[str], major: str | None) -> str:
    """Which of two distributions of one package to keep: the GPU build (tensorflow, not tensorflow-cpu), or the CuPy
    for the CUDA major the environment's torch uses, else the newest CUDA major."""
    if "tensorflow" in names:
        return "tensorflow"
    if "onnxruntime-gpu" in names:  # it holds the CPU provider too
        return "onnxruntime-gpu"
    matching = [n for n in names if major and n == f"cupy-cuda{major}x"]
    return matching[0] if matching else sorted(names, key=lambda n: [int(x) for x in re.findall(r"\d+", n)] or [0])[-1]


def _package(distribution: str) -> str:
    """The import package a distribution installs: cupy-cuda12x and cupy-cuda13x both write cupy/."""
    return next((package for package, names in ALSO_NAMED.items() if distribution in names), distribution)


@check("python.pip_check", "Installed packages have compatible requirements", needs=("python_envs",), uses=("os",))
def pip_check(python_envs, os):
    """`pip check`: a package whose requirements are broken fails at import or, worse, at run time.

    On a distribution's own Python (PEP 668: externally managed) pip refuses to install: the fix is the
    distribution's package, or a virtual environment.
    """
    for i in interpreters(python_envs):
        result = _pip_check(i)
        if result.get("error") or result.get("rc") not in (0, 1):
            why = why_no_answer(result["error"], result.get("duration_s") or 0.0) if result.get("error") else result.get("stderr", "").strip()[:120]
            raise Skip(f"`pip check` did not run in {i['path']} ({why})")
        if result["rc"] == 1:
            lines = [line for line in result["stdout"].splitlines() if line.strip()]
            specs = result.get("specs") or parse_pip_check(result["stdout"])
            python = i["env"]["python"]
            if result.get("uv") is not None:  # no pip here: its installer is uv, or nothing
                quoted = " ".join(f"'{spec}'" for spec in specs)
                fix = (f"uv pip install --python {i['path']} {quoted}   # this environment has no pip; uv installed it" if result["uv"]
                       else f"{i['path']} -m ensurepip\n{i['path']} -m pip install {quoted}   # this interpreter has no pip yet")
            elif python.get("externally_managed") and not python.get("venv") and fixes.family(os) == "apt":
                names = " ".join("python3-" + re.split(r"[<>=!~ ;\[]", spec)[0].lower().replace("_", "-") for spec in specs)
                fix = (f"{fixes.install(os, names)}   # the distribution's Python (PEP 668): its packages come from apt, mostly as python3-NAME\n"
                       f"# or give the project a virtual environment: python3 -m venv ~/venv, then ~/venv/bin/pip install there"
                       if names else "# this is the distribution's Python (PEP 668): install the packages named above with apt, or use a venv")
            elif specs:
                quoted = " ".join(f"'{spec}'" for spec in specs)
                fix = f"{i['path']} -m pip install {quoted}   # what the broken packages ask for; check it does not downgrade a framework"
            else:
                fix = f"# reinstall the packages named above into {i['path']}, or recreate the environment"
            how = "`pip check`" if result.get("uv") is None else "the installed metadata (no pip here, as `pip check` would)"
            return warn(f"{how} finds {len(lines)} broken requirement(s) in {i['path']}", details=lines, fix=fix)
    return ok("`pip check` finds no broken requirements" + (" (read from the installed metadata where pip is missing)"
              if any(_pip_check(i).get("uv") is not None for i in interpreters(python_envs)) else ""))


def _pip_check(interpreter: dict) -> dict:
    """`pip check`'s run; where pip is missing, the same judgement from the env probe's metadata (`uv`: whether uv installed it)."""
    env = interpreter["env"]
    result = interpreter.get("pip_check") or {}
    if env["python"].get("pip") is not False and "No module named pip" not in result.get("stderr", ""):
        if result.get("rc") == 1 and env.get("requirements"):  # pip names a missing package without the version asked for
            specs = [spec for _, spec in broken_requirements(env["requirements"], env.get("markers") or {})]
            return {**result, "specs": list(dict.fromkeys(specs))} if specs else result
        return result
    if "requirements" not in env:
        raise Skip(f"pip is not installed in {interpreter['path']}, so `pip check` cannot run")
    found = broken_requirements(env["requirements"], env.get("markers") or {})
    uv = any(d.get("installer") == "uv" for d in env["requirements"].values())
    return {"rc": 1 if found else 0, "stdout": "\n".join(line for line, _ in found), "stderr": "", "error": None, "uv": uv,
            "specs": list(dict.fromkeys(spec for _, spec in found))}


def _cudnn(dist: dict, interpreter: dict) -> tuple[str, tuple[int, ...], str] | None:
    """(how, version, wheel) of the cuDNN a framework uses: it `loads` one (torch's own copy, an exact pin) or
    `needs` at least one (a plugin's >= requirement, jaxlib's +cudnn86 build)."""
    if dist["name"] == "torch":
        loaded = ((interpreter.get("torch") or {}).get("cudnn_runtime") or {}).get("value")
        if loaded:
            return "loads", tuple(loaded[:2]), ""
    local = re.search(r"\+cuda\d+\.cudnn(\d)(\d+)", dist.get("version") or "")
    if local:
        return "needs", (int(local.group(1)), int(local.group(2))), ""
    for text in dist.get("requires") or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if not re.fullmatch(r"nvidia-cudnn(-cu\d+)?", req.name.lower()) or (dist["name"] == "tensorflow" and "and-cuda" not in text):
            continue
        for spec in sorted(req.specifier, key=lambda sp: sp.operator != "=="):
            if spec.operator in ("==", "~=", ">="):
                version = tuple(int(n) for n in re.findall(r"\d+", spec.version)[:2])
                return ("needs" if spec.operator == ">=" else "loads"), version, req.name
    return None


def _cudnn_clash(users: dict) -> tuple[str, str] | None:
    """(older, newer): a framework whose cuDNN is older than another one needs, or of another major."""
    for a, (how_a, have, _) in users.items():
        for b, (how_b, want, _) in users.items():
            if a != b and how_a == "loads" and (have[0] != want[0] or (how_b == "needs" and have < want)):
                return a, b
    return None


FRAMEWORK_DISTS = ("torch", "tensorflow", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "cupy-cuda11x", "cupy-cuda12x", "cupy-cuda13x")


@check("python.framework_cuda", "Frameworks in one environment agree on CUDA and cuDNN", needs=("python_envs",))
def framework_cuda(python_envs):
    """Two frameworks in one interpreter load one copy of each CUDA library: when one needs CUDA 12 and the other 13,
    or one cuDNN older than the other needs, whichever loads first breaks the other (jax-ml/jax#19004)."""
    for i in interpreters(python_envs):
        dists = {d["name"]: d for d in i["env"]["distributions"]}
        present = [dists[n] for n in FRAMEWORK_DISTS if n in dists]
        majors = {d["name"]: m for d in present if (m := cuda_major(d))}
        if len(set(majors.values())) > 1:
            shown = ", ".join(f"{n} {dists[n]['version']} (CUDA {m})" for n, m in sorted(majors.items()))
            return fail(f"{i['path']} mixes CUDA majors: {shown}; in one process one framework loads the other's libraries",
                        fix=_align_fix(i["path"], majors, dists), details=[shown])
        users = {d["name"]: c for d in present if (c := _cudnn(d, i))}
        clash = _cudnn_clash(users)
        if clash:
            older, newer = clash
            wants = "; ".join(f"{n} {dists[n]['version']} {how} cuDNN {'.'.join(map(str, v))}" + (" or newer" if how == "needs" else "")
                              for n, (how, v, _) in sorted(users.items()))
            wheel = users[newer][2] or users[older][2] or "nvidia-cudnn-cu" + (majors.get(newer) or majors.get(older) or "12")
            python = i["path"]
            have = next((f"; {d['name']} {d['version']} is installed" for n, d in sorted(dists.items()) if n.startswith("nvidia-cudnn")), "")
            return fail(f"{python}: {wants}{have}: in one process the first one imported decides which cuDNN both get", details=[wants],
                        fix=f"{python} -m venv ~/venv-{older}   # one cuDNN per process: give {older} its own environment\n"
                            f"~/venv-{older}/bin/python -m pip install {_requirement_of(older, dists)}\n"
                            f"{python} -m pip uninstall -y {older}   # then this environment keeps {newer}\n"
                            f"{python} -m pip install --force-reinstall '{wheel}>={'.'.join(map(str, users[newer][1]))}'   # the cuDNN {newer} needs")
    return ok("the frameworks in each judged environment agree on their CUDA and cuDNN libraries")


def _align_fix(python: str, majors: dict, dists: dict) -> str:
    """Move JAX or CuPy to torch's (or TensorFlow's) CUDA major; else two environments."""
    anchor = next((n for n in ("torch", "tensorflow") if n in majors), None)
    movers = [n for n in majors if n != anchor and majors[n] != majors.get(anchor)]
    if anchor and all(n.startswith(("jax-cuda", "cupy-cuda")) for n in movers):
        major = majors[anchor]
        cupy = sorted(n for n in majors if n.startswith("cupy-cuda"))  # they share cupy/: remove every one, then reinstall
        gone = sorted(set(movers) | set(cupy))
        lines = [f"{python} -m pip uninstall -y {' '.join(gone)}   # the other CUDA major's builds" + (" (CuPy's share cupy/)" if cupy else "")]
        extras = [f'"jax[cuda{major}]"' if n.startswith("jax-cuda") else f"cupy-cuda{major}x" for n in gone]
        return "\n".join(lines + [f"{python} -m pip install --force-reinstall {' '.join(dict.fromkeys(extras))}   # reinstall for CUDA {major}, as {anchor}"])
    other = movers[0] if movers else sorted(majors)[-1]
    return (f"{python} -m venv ~/venv-{other}   # one CUDA major per process: give {other} its own environment\n"
            f"~/venv-{other}/bin/python -m pip install {_requirement_of(other, dists)}")


def _requirement_of(name: str, dists: dict) -> str:
    """What to pip install to get this framework again: a JAX plugin comes through jax's own extra."""
    version = dists[name]["version"].split("+")[0]
    plugin = re.fullmatch(r"jax-(cuda\d+)-(?:plugin|pjrt)", name)
    return f"'jax[{plugin.group(1)}]=={version}'" if plugin else f"'{name}=={version}'"
