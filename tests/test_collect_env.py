"""Everything `python -m torch.utils.collect_env` says has a place in gpudoctor's facts, with the same value.

Two real pairs, each collect_env and gpudoctor run on the same interpreter in the same minute:
- fixtures/cpu-torch-venv-collect-env-2026-11-27: this machine's torch venv, gpudoctor's raw evidence (replayed here
  through today's collectors), so every field is compared;
- fixtures/h200-firecracker-2026-11-27: the H200's torch venv, with the facts of the gpudoctor of that day (check.json).
  The fields gpudoctor learnt after it (NEW) are absent there; every other field must match.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from evidence_helpers import FIXTURES, fixture

from gpudoctor.host import RecordedHost
from gpudoctor.loader import load_plugins
from gpudoctor.runner import run_checks

NA, NOT_COLLECTED = "N/A", "Could not collect"
# fields gpudoctor learnt after the H200 capture of 2026-11-27 (its check.json cannot have them)
NEW = {"Is debug build", "GCC version", "Clang version", "CMake version", "Python version", "Python platform", "CUDA runtime version",
       "CUDA_MODULE_LOADING set to", "Is XPU available", "Is XNNPACK available", "Caching allocator config",
       "CPU: Socket(s)", "CPU: NUMA node(s)", "CPU: Hypervisor vendor", "CPU: Virtualization type", "CPU: CPU(s)"}


def parse_collect_env(text: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """collect_env's top fields, its CPU block (lscpu's lines) and its library lines ([pip3] name==version, [conda] ...)."""
    top, cpu, libraries, section, last = {}, {}, [], "top", None
    for line in text.splitlines():
        if line in ("CPU:", "Versions of relevant libraries:"):
            section = {"CPU:": "cpu", "Versions of relevant libraries:": "libraries"}[line]
        elif section == "libraries" and line.strip():
            libraries.append(line.strip())
        elif section == "cpu" and ":" in line:
            key, _, value = line.partition(":")
            cpu[key.strip()] = value.strip()
        elif section == "top" and ": " in line:
            key, _, value = line.partition(": ")
            top[key], last = value.strip(), key
        elif section == "top" and line.startswith("/") and last:  # cuDNN's "Probably one of the following:" list
            top[last] += "\n" + line.strip()
    return top, cpu, libraries


def _interpreter(facts: dict) -> dict:
    return facts["python_envs"]["interpreters"][0]


def _torch(facts: dict, key: str):
    return ((_interpreter(facts).get("torch") or {}).get(key) or {}).get("value")


def _text(value, none: str = NOT_COLLECTED) -> str | None:
    return none if value is None else str(value)


def _cudnn(facts: dict) -> str | None:
    """collect_env's libcudnn* list (realpaths in the linker cache) as gpudoctor holds it: sonames and the version read."""
    libraries = facts.get("cuda_libraries") or {}
    names = sorted(k for k in (libraries.get("cache") or {}) if k.startswith("libcudnn"))
    version = next((c.get("version") for c in libraries.get("cudnn") or [] if c.get("version")), None)
    if not names:
        return NOT_COLLECTED
    return "\n".join(f"{name}.{version.split('.', 1)[1]}" if version else name for name in names)


def _gpus(facts: dict) -> str:
    """nvidia-smi -L's lines without UUIDs, as collect_env shows them (names only: that capture's NVML bus ids are broken)."""
    nvml = facts.get("nvml") or {}
    devices = nvml.get("devices") if not nvml.get("error") else ((facts.get("nvidia_smi") or {}).get("parsed") or {}).get("devices")
    return "\n".join(f"GPU {i}: {d.get('name')}" for i, d in enumerate(devices or [])) or NOT_COLLECTED


def _allocator(facts: dict) -> str | None:
    env = facts.get("environment")
    if env is None or _torch(facts, "debug") is None:  # gpudoctor recorded these variables from the day it read debug builds
        return None
    found = {k: env[k] for k in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_HIP_ALLOC_CONF", "PYTORCH_ALLOC_CONF") if env.get(k)}
    return str(found) if found else NA


def _module_loading(facts: dict) -> str | None:
    if _torch(facts, "debug") is None:  # a torch probe from before gpudoctor read it
        return None
    return _text(_torch(facts, "cuda_module_loading"), "") if _torch(facts, "is_available") else NA


def _python(facts: dict) -> str | None:
    python = _interpreter(facts)["env"]["python"]
    return f"{python['build']} ({python['bits']}-bit runtime)" if python.get("build") else None


def _rocm(facts: dict, word: str) -> str | None:
    lines = _torch(facts, "rocm_runtimes") or []
    return next((line.rsplit(None, 1)[-1] for line in lines if word in line), NA)

PLACES = {
    "PyTorch version": lambda f: _torch(f, "version"),
    "Is debug build": lambda f: None if _torch(f, "debug") is None else str(_torch(f, "debug")),
    "CUDA used to build PyTorch": lambda f: _text(_torch(f, "version_cuda")),
    "ROCM used to build PyTorch": lambda f: _text(_torch(f, "version_hip"), NA),
    "OS": lambda f: f"{f['os']['pretty_name']} ({f['os']['kernel']['arch']})",
    "GCC version": lambda f: None if "toolchain" not in f else _text(f["toolchain"].get("gcc")),
    "Clang version": lambda f: None if "toolchain" not in f else _text(f["toolchain"].get("clang")),
    "CMake version": lambda f: None if "toolchain" not in f else _text(f["toolchain"].get("cmake")),
    "Libc version": lambda f: f"glibc-{f['machine']['glibc']}",
    "Python version": _python,
    "Python platform": lambda f: _interpreter(f)["env"]["python"].get("platform"),
    "Is CUDA available": lambda f: str(_torch(f, "is_available")),
    "CUDA runtime version": lambda f: (f.get("cuda_toolkits") or {}).get("nvcc_full_version"),
    "CUDA_MODULE_LOADING set to": _module_loading,
    "GPU models and configuration": _gpus,
    "Nvidia driver version": lambda f: _text((f.get("driver") or {}).get("version")),
    "cuDNN version": _cudnn,
    "Is XPU available": lambda f: None if _torch(f, "debug") is None else str(_torch(f, "xpu")),
    "HIP runtime version": lambda f: _rocm(f, "HIP Runtime"),
    "MIOpen runtime version": lambda f: _rocm(f, "MIOpen"),
    "Is XNNPACK available": lambda f: None if _torch(f, "xnnpack") is None else str(_torch(f, "xnnpack")),
    "Caching allocator config": _allocator,
}
CPU_PLACES = {"Model name": "model", "Socket(s)": "sockets", "NUMA node(s)": "numa_nodes", "Hypervisor vendor": "hypervisor_vendor",
              "Virtualization type": "virtualization_type", "CPU(s)": "cpus"}


def _cudnn_as_collect_env(text: str) -> str:
    """collect_env's list of realpaths as sonames with their versions: libcudnn_adv.so.9.14.0."""
    return "\n".join(sorted(Path(p).name for p in re.findall(r"/\S+", text))) if "/" in text else text


def compared(name: str) -> list[tuple[str, str | None, str]]:
    """(field, gpudoctor's value, collect_env's value) for every field collect_env printed in this capture."""
    folder = FIXTURES / name
    top, cpu, libraries = parse_collect_env((folder / "collect-env.txt").read_text())
    if (folder / "evidence.json").exists():
        _, facts, _ = run_checks(load_plugins(external=False), RecordedHost(fixture(name)))
    else:
        facts = json.loads((folder / "check.json").read_text())["facts"]
    rows = [(k, PLACES[k](facts), v if k != "cuDNN version" else _cudnn_as_collect_env(v)) for k, v in top.items()]
    lscpu = (facts.get("platform") or {}).get("cpu") or {}
    lscpu = {"model": (facts.get("platform") or {}).get("cpu_model"), **lscpu}  # the model was read from /proc/cpuinfo before lscpu
    rows += [(f"CPU: {k}", None if lscpu.get(CPU_PLACES[k]) is None else str(lscpu[CPU_PLACES[k]]), cpu[k])
             for k in CPU_PLACES if k in cpu]
    flags = set((facts.get("platform") or {}).get("cpu_flags") or [])
    wanted = {"avx2", "avx512f", "avx512_bf16", "amx_tile"} & set(cpu.get("Flags", "").split())
    rows.append(("CPU: Flags (AVX2, AVX-512, AMX)", " ".join(sorted(flags & wanted)), " ".join(sorted(wanted))))
    dists = {f"{d['name']}=={d['version']}" for d in _interpreter(facts)["env"]["distributions"]}
    for line in libraries:
        if line.startswith("[pip3] "):
            rows.append((line, "listed" if line[7:].lower().replace("_", "-") in dists else None, "listed"))
        elif line.startswith("[conda]"):
            rows.append((line, "Could not collect" if not (facts.get("conda") or {}).get("envs") else "conda", line[8:]))
    return rows


def test_collect_env_has_no_field_without_a_place():
    for name in ("cpu-torch-venv-collect-env-2026-11-27", "h200-firecracker-2026-11-27"):
        top, _, _ = parse_collect_env((FIXTURES / name / "collect-env.txt").read_text())
        assert set(top) <= set(PLACES), set(top) - set(PLACES)


def test_every_field_of_collect_env_matches_on_this_machines_torch_venv():
    wrong = [(field, mine, theirs) for field, mine, theirs in compared("cpu-torch-venv-collect-env-2026-11-27") if mine != theirs
             and not (field == "cuDNN version" and theirs == NOT_COLLECTED and mine == NOT_COLLECTED)]
    assert not wrong, wrong


def test_the_h200_capture_matches_every_field_its_gpudoctor_knew():
    rows = compared("h200-firecracker-2026-11-27")
    wrong = [(field, mine, theirs) for field, mine, theirs in rows if mine != theirs and not (mine is None and learnt_after(field))]
    assert not wrong, wrong


def learnt_after(field: str) -> bool:
    """A field gpudoctor did not read on 2026-11-27: NEW, and the libraries collect_env lists beyond the frameworks, NumPy,
    ONNX Runtime and the nvidia-* wheels that its env probe listed then."""
    known = ("torch==", "numpy==", "nvidia-", "onnxruntime==", "triton==")
    return field in NEW or (field.startswith("[pip3] ") and not field[7:].startswith(known))


@pytest.mark.parametrize("label", ["GCC version", "Clang version", "CMake version", "CUDA runtime version"])
def test_the_tools_answers_are_read_with_collect_envs_own_patterns(label):
    """collect_env's patterns: gcc (.*), clang version (.*), cmake (.*), release .+ V(.*) (torch/utils/collect_env.py)."""
    top, _, _ = parse_collect_env((FIXTURES / "h200-firecracker-2026-11-27/collect-env.txt").read_text())
    assert top[label] and label in PLACES
