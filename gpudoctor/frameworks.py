"""Frameworks in the judged interpreters: how each probe came out, in one vocabulary.

A probe answer is one of: the framework's facts (`ok`); the framework is not installed
(`absent`); importing it raised (`import_error`); the interpreter crashed on it (`crashed`,
with the signal: SIGILL is an illegal instruction), hung, printed garbage, could not be run,
or was not recorded in replayed evidence. Checks of every area read answers through
`state()`, so an installed framework that fails to import is never taken for a missing one.
"""

from __future__ import annotations

import re
import time

from gpudoctor import compat, gputurn
from gpudoctor.plugin import Skip

# The frameworks the smoke test trains with, one after another; their facts probe keeps its interpreter for it.
SMOKED = ("torch", "jax", "tensorflow")
BROKEN = ("import_error", "crashed", "hung", "garbage", "not run")
ALSO_NAMED = {"tensorflow": ("tensorflow-gpu", "tensorflow-cpu", "tf-nightly"), "cupy": ("cupy-cuda11x", "cupy-cuda12x", "cupy-cuda13x"),
              "onnxruntime": ("onnxruntime-gpu",)}
BUILD_CHECK = {"torch": "torch.build", "tensorflow": "tensorflow.build", "jax": "jax.install", "cupy": "cuda.driver_runtime",
               "onnxruntime": "onnxruntime.install"}


def ask_facts(host, python: str, what: str) -> dict:
    """A facts question (`env`, `torch`, ...) as every collector asks it, so whichever asks first asks it right.

    A smoked framework keeps its interpreter for the smoke test. A question that opens CUDA contexts holds the GPU
    turn (gpudoctor/gputurn.py); one that waited for it gets what is left of the run's limit, or is not asked."""
    if what == "jax":
        with host.gpu_turn.shared():
            return host.probe(python, what, keep=lambda: not gputurn.exclusive(host))
    if what == "onnxruntime":
        start = time.monotonic()
        if not gputurn.exclusive(host):
            return host.probe(python, what, timeout=_left(host, start))
        with host.gpu_turn(first=True):
            return host.probe(python, what, timeout=_left(host, start))
    return host.probe(python, what, keep=what in SMOKED)


def _left(host, start: float) -> float:
    """The run's limit less the wait since `start`, so that the collector's deadline holds; nothing under 1 s."""
    left = host.timeout - (time.monotonic() - start)
    return left if left >= 1.0 else 0.0


def state(answer: dict | None, probe: str) -> str:
    """How one probe came out: ok, absent, import_error, crashed, hung, garbage, not run or not recorded."""
    if answer is None:  # a report from before this probe existed
        return "not recorded"
    failure = answer.get("failure")
    if failure:
        return failure
    if answer.get("absent"):
        return "absent"
    failed = answer.get("failed")
    if failed:  # answers recorded before `absent` existed say only this
        return "absent" if failed.startswith(f"ModuleNotFoundError: No module named '{probe}'") else "import_error"
    return "ok"


def value(facts: dict, key: str):
    """A probed fact's value, or None where the call failed or was not made."""
    return (facts.get(key) or {}).get("value")


def distributions(interpreter: dict) -> dict[str, dict]:
    """The interpreter's interesting distributions by name (the last found wins, as Python's path order does not)."""
    env = interpreter.get("env") or {}
    return {} if "failure" in env else {d["name"]: d for d in env.get("distributions") or []}


def cuda_major(dist: dict) -> str | None:
    """The CUDA major a framework's build uses: its local version (torch +cu130, jaxlib +cuda12.cudnn89), a plugin's or
    CuPy's name, the -cuNN of its nvidia-* requirements, else for torch the release's default PyPI build."""
    name, version = dist.get("name") or "", dist.get("version") or ""
    local = re.search(r"\+cu(\d+?)\d$", version) or re.search(r"\+cuda(\d+)\b", version)
    if local:
        return local.group(1)
    named = re.fullmatch(r"(?:jax-cuda|cupy-cuda)(\d+)(?:x|-plugin|-pjrt)?", name)
    if named:
        return named.group(1)
    for text in dist.get("requires") or []:
        found = re.match(r"nvidia-[a-z-]+?-cu(\d+)\b", text)
        if found and (name != "tensorflow" or "and-cuda" in text or "extra" not in text):
            return found.group(1)
    if name == "torch" and "+" not in version:
        default = (compat.torch_release(version) or {}).get("pypi_default")
        return default[2:-1] if default else None
    return None


def framework_dist(dists: dict, probe: str) -> dict:
    """The distribution that installed a framework: torch, or tensorflow-gpu, cupy-cuda12x and the like."""
    for name in (probe, *ALSO_NAMED.get(probe, ())):  # each probe is named for its module and its main distribution
        if name in dists:
            return dists[name]
    return {}


def interpreters(python_envs: dict) -> list[dict]:
    """The interpreters whose env probe answered; skips the check when there are none."""
    good = [i for i in python_envs["interpreters"] if "failure" not in i["env"]]
    if not good:
        raise Skip("no interpreter could be probed (see python.interpreter)")
    return good


def broken(python_envs: dict, probe: str) -> list[tuple[dict, dict]]:
    """(interpreter, answer) where the framework is installed but its probe did not answer.

    An interpreter whose plain env probe failed too is broken as a whole: python.interpreter says so."""
    return [(i, i[probe]) for i in python_envs["interpreters"]
            if state(i.get(probe), probe) in BROKEN and "failure" not in (i.get("env") or {})]


def installs(python_envs: dict, probe: str, name: str) -> list[tuple[dict, dict]]:
    """(interpreter, probe answer) where the framework imported; skips the check, saying why, where none did."""
    found = [(i, i[probe]) for i in python_envs["interpreters"] if state(i.get(probe), probe) == "ok"]
    if found:
        return found
    if broken(python_envs, probe):
        raise Skip(f"{name} is installed but does not import (see {BUILD_CHECK.get(probe, probe + '.build')})")
    judged = python_envs["interpreters"]
    if judged and all("failure" in (i.get("env") or {}) and i["env"]["failure"] != "not recorded" for i in judged):
        raise Skip("no interpreter could be probed (see python.interpreter)")
    if judged and all(state(i.get(probe), probe) == "not recorded" for i in judged):
        raise Skip(f"the {name} probe was not recorded")
    where = ", ".join(i["path"] for i in judged) or "no interpreter"
    hint = ": point --python at your training environment (gpudoctor check --python ENV/bin/python)" \
        if any((i.get("why") or "").startswith("python3 on PATH") for i in judged) else ""
    raise Skip(f"{name} is not installed in {where}{hint}")


def torch_installs(python_envs: dict) -> list[tuple[dict, dict]]:
    """(interpreter, torch facts) for each judged interpreter where torch imported."""
    return installs(python_envs, "torch", "PyTorch")


def install_fix(python: str, version: str | None, driver_cuda: str | None, capabilities: list, interpreter: dict | None = None) -> str:
    """The build closest to the installed release that runs on this driver and has kernels for every GPU; by branch without a driver.

    A torch that conda installed is replaced with conda (pip on top of it leaves two copies).
    """
    conda = _conda_prefix(interpreter)
    if driver_cuda:
        choice = compat.torch_choice(version, driver_cuda, capabilities)
        if not choice:
            return (f"# no official torch build runs on a driver for CUDA {driver_cuda} with these GPUs:\n"
                    "# upgrade the driver (see driver.loaded)")
        release, variant = choice
        wanted = version if ".".join(str(n) for n in compat.version_key(version)[:2]) == release else release
        pip = compat.torch_install(python, wanted, variant)
        if conda:
            cuda = compat.load_release(release)["variants"][variant]["cuda"]
            return (f"conda install -p {conda} -c conda-forge 'pytorch={release}.*=cuda*' 'cuda-version={cuda}'   # conda installed this torch\n"
                    f"# or drop conda's copy and use PyTorch's wheel: conda remove -p {conda} --force pytorch, then {pip}")
        return pip
    release = compat.torch_release(version) or {}
    lines = ["# no NVIDIA driver is loaded here; pick the line for the driver you will install:"]
    for name in sorted(release.get("stable") or [], key=compat.version_key, reverse=True):
        variant = release["variants"].get(name)
        if variant:
            floor = compat.minimum_driver(variant["cuda"])
            lines.append(f"# driver >= {floor}: {compat.torch_install(python, version, name)}")
    return "\n".join(lines) if len(lines) > 1 else f"{python} -m pip install torch   # no build table for torch {version}"


def _conda_prefix(interpreter: dict | None) -> str | None:
    """The conda env that installed torch, when conda did (its dist-info's INSTALLER says conda)."""
    if not interpreter:
        return None
    dist = distributions(interpreter).get("torch") or {}
    if dist.get("installer") == "conda":
        return interpreter["path"].rsplit("/bin/", 1)[0]
    return None


def choose_interpreters(host) -> list[dict]:
    """--python as given; else the active venv, the active conda env, or python3 on PATH, saying why."""
    given = host.options.get("python") or []
    if given:
        return [{"path": path, "why": "--python"} for path in given]
    env = host.environ
    if env.get("VIRTUAL_ENV"):
        return [{"path": f"{env['VIRTUAL_ENV']}/bin/python", "why": "the active virtual environment ($VIRTUAL_ENV)"}]
    if env.get("CONDA_PREFIX"):
        return [{"path": f"{env['CONDA_PREFIX']}/bin/python", "why": "the active conda environment ($CONDA_PREFIX)"}]
    path = host.which("python3")
    return [{"path": path, "why": "python3 on PATH (no virtual or conda environment is active)"}] if path else []
