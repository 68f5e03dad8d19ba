"""Collect less: what a report records with its value, and what only by name.

Redacting by known shapes always misses the next shape, so the report first keeps only what a
diagnosis reads. The environment by allow-list: the variables gpudoctor's checks and a support
engineer use keep their values; every other variable is listed by name only, so support still
sees that `SOMETHING_URL` was set. Free text that programs choose (a GPU process's arguments or
title) is cut to its executable. What was left out is counted, never shown.
"""

from __future__ import annotations

import re
from collections import Counter

from gpudoctor.host import RELEVANT_ENV
from gpudoctor.redact import SECRET_NAME

# Whole families a GPU diagnosis reads: the driver, CUDA and its libraries, the frameworks and
# their compilers, threading, schedulers' jobs, containers, Python and its package managers.
ENV_PREFIXES = (
    "CUDA_", "NVIDIA_", "NCCL_", "CUDNN_", "NVCC_", "TORCH_", "PYTORCH_", "TORCHINDUCTOR_", "TRITON_", "TF_", "XLA_",
    "JAX_", "OMP_", "MKL_", "PYTHON", "CONDA_", "PIP_", "SLURM_", "SLURMD_", "PBS_", "LSB_", "SGE_", "KUBERNETES_",
    "SINGULARITY_", "APPTAINER_", "ENROOT_", "WSL_", "LC_", "GPUDOCTOR_",
)
ENV_NAMES = frozenset({
    "PATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "VIRTUAL_ENV", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG",
    "LANGUAGE", "TZ", "TMPDIR", "HOSTNAME", "container", "POD_NAME", "POD_NAMESPACE", "CONTAINER_NAME",
    "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_CACHE", "XDG_CACHE_HOME",
    "CUPY_CACHE_DIR", "NUMBA_CACHE_DIR", "UV_CACHE_DIR", "CC", "CXX", "CUDAHOSTCXX", "NO_COLOR",
})
# Prefixes that share a family's letters but belong to other tools (Terraform's TF_VAR_ holds its inputs).
ENV_DENIED_PREFIXES = ("TF_VAR_", "TF_TOKEN_", "TF_CLI_")
# Path lists whose entries a diagnosis reads only where packages live; other entries are project folders.
PACKAGE_PATHS = ("PYTHONPATH",)
PACKAGE_FOLDER = re.compile(r"/(?:site|dist)-packages(?:/|$)|^/usr/lib(?:64)?/python3[.\d]*(?:/|$)")
LEFT_OUT = "[left out]"
PROCESS_NAME_XML = re.compile(r"(<process_name>)([^<]*)(</process_name>)")
# `nvidia-smi -q`: a process's "Name" line follows its "Process ID" and "Type" lines.
PROCESS_NAME_TEXT = re.compile(r"(Process ID\s*:[^\n]*\n(?:[^\n]*\n){0,3}?\s*Name\s*: )([^\n]*)")


def env_allowed(name: str) -> bool:
    """True for a variable recorded with its value: on the allow-list and not secret-named."""
    if SECRET_NAME.search(name) or name.startswith(ENV_DENIED_PREFIXES):
        return False
    return name in ENV_NAMES or name.startswith(ENV_PREFIXES)


class Collection:
    """Applies the allow-list to what the report holds and counts what it left out, by class."""

    def __init__(self):
        self.left_out: Counter = Counter()

    def environment(self, environ: dict[str, str]) -> str:
        """environment.txt: allowed variables with values, then the other names without."""
        allowed = sorted(n for n in environ if env_allowed(n))
        others = sorted(n for n in environ if not env_allowed(n))
        self.left_out["environment value"] += len(others)
        lines = ["# With values: the variables a diagnosis uses (gpudoctor's allow-list, see its README)."]
        lines += [f"{n}={self.path_list(environ[n]) if n in PACKAGE_PATHS else environ[n]}" for n in allowed]
        lines += ["# Set here, values left out (not on the allow-list):"] + others
        return "\n".join(lines) + "\n"

    def path_list(self, value: str) -> str:
        """A PYTHONPATH-like list with its package folders kept and its other entries left out."""
        entries = value.split(":")
        kept = [e if not e or PACKAGE_FOLDER.search(e) else LEFT_OUT for e in entries]
        self.left_out["path entry"] += kept.count(LEFT_OUT)
        return ":".join(kept)

    def process_names(self, text: str) -> str:
        """GPU processes named by their executable alone: arguments and titles are the user's text."""
        text = PROCESS_NAME_XML.sub(lambda m: m.group(1) + self._executable(m.group(2)) + m.group(3), text)
        return PROCESS_NAME_TEXT.sub(lambda m: m.group(1) + self._executable(m.group(2)), text)

    def evidence(self, evidence: dict) -> dict:
        """The evidence with the environment narrowed to RELEVANT_ENV and process names cut (in place)."""
        env = evidence.get("env") or {}
        evidence["env"] = {k: env[k] for k in RELEVANT_ENV if k in env}
        for key, result in (evidence.get("commands") or {}).items():
            if key.startswith("nvidia-smi") and isinstance(result.get("stdout"), str):
                result["stdout"] = self.process_names(result["stdout"])
        for device in (evidence.get("nvml") or {}).get("devices") or []:
            processes = device.get("processes") if isinstance(device, dict) else None
            for proc in processes if isinstance(processes, list) else []:
                if isinstance(proc, dict) and isinstance(proc.get("name"), str):
                    proc["name"] = self._executable(proc["name"])
        return evidence

    def _executable(self, name: str) -> str:
        head, _, rest = name.strip().partition(" ")
        if rest.strip():
            self.left_out["process argument"] += 1
            return f"{head} {LEFT_OUT}"
        return head
