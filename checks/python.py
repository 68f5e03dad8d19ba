"""The python area: which interpreter is judged, and whether its environment is sound.

Every fact about a framework comes from probes run inside the judged interpreter, never from
gpudoctor's own process: the env probe (no framework imported), the torch probe, `pip check`.
They run concurrently, each under the run's timeout.
"""

from __future__ import annotations

import threading

from gpudoctor.parsers import parse_pip_check
from gpudoctor.frameworks import choose_interpreters, interpreters
from gpudoctor.plugin import Skip, check, collector, fail, ok, skip, warn

FRAMEWORKS = ("torch", "tensorflow", "jax", "jaxlib", "cupy")


def _judge_interpreter(host, chosen: dict) -> dict:
    path = chosen["path"]
    answers: dict = {}
    jobs = {
        "env": lambda: host.probe(path, "env"),
        "torch": lambda: host.probe(path, "torch"),
        "jax": lambda: host.probe(path, "jax"),
        "tensorflow": lambda: host.probe(path, "tensorflow"),
        "cupy": lambda: host.probe(path, "cupy"),
        "pip_check": lambda: host.run([path, "-m", "pip", "check"]).to_dict(),
    }
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
        return fail(f"{i['path']} ({i['why']}) {why} when probed", details=failure.get("stderr_tail") or [],
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
        seen: dict[str, list[str]] = {}
        for d in i["env"]["distributions"]:
            seen.setdefault(d["name"], []).append(f"{d['version']} in {d['location']} ({d.get('installer') or 'unknown installer'})")
        doubled = {name: places for name, places in seen.items() if len(places) > 1}
        if doubled:
            name, places = sorted(doubled.items())[0]
            return warn(f"{name} is installed {len(places)} times for {i['path']}", details=places,
                        fix=f"{i['path']} -m pip uninstall -y {name}   # repeat until none is left, then reinstall once:\n"
                            f"{i['path']} -m pip install {name}")
    return ok("each framework and CUDA library is installed once")


@check("python.pip_check", "Installed packages have compatible requirements", needs=("python_envs",))
def pip_check(python_envs):
    """`pip check`: a package whose requirements are broken fails at import or, worse, at run time."""
    for i in interpreters(python_envs):
        result = i.get("pip_check") or {}
        if result.get("error") or result.get("rc") not in (0, 1):
            raise Skip(f"`pip check` did not run in {i['path']} ({result.get('error') or result.get('stderr', '').strip()[:120]})")
        if result["rc"] == 1:
            lines = [line for line in result["stdout"].splitlines() if line.strip()]
            specs = " ".join(f"'{spec}'" for spec in parse_pip_check(result["stdout"]))
            fix = (f"{i['path']} -m pip install {specs}   # what the broken packages ask for; check it does not downgrade a framework"
                   if specs else f"# reinstall the packages named above into {i['path']}, or recreate the environment")
            return warn(f"`pip check` finds {len(lines)} broken requirement(s) in {i['path']}", details=lines, fix=fix)
    return ok("`pip check` finds no broken requirements")
