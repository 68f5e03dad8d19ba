"""Pure readers for what `torch.utils.collect_env` shows beside the GPU: lscpu's CPU and the build tools.

A support engineer must never need `collect_env` beside a gpudoctor report, so gpudoctor asks the
same tools it asks (`lscpu`, `gcc --version`, `clang --version`, `cmake --version`, `nvcc --version`)
and reads their answers with the same patterns. Never raise on any input.
"""

from __future__ import annotations

import re

# lscpu's labels (util-linux, C locale) -> fact names: what a person and a framework build care about
LSCPU_FIELDS = {
    "Model name": "model", "Vendor ID": "vendor", "CPU(s)": "cpus", "Socket(s)": "sockets",
    "Core(s) per socket": "cores_per_socket", "Thread(s) per core": "threads_per_core", "NUMA node(s)": "numa_nodes",
    "Hypervisor vendor": "hypervisor_vendor", "Virtualization type": "virtualization_type",
}
NUMBERS = {"cpus", "sockets", "cores_per_socket", "threads_per_core", "numa_nodes"}


def parse_lscpu(text: str) -> dict:
    """The CPU as `lscpu` describes it: model, sockets, NUMA nodes, the hypervisor (absent on bare metal).

    >>> parse_lscpu("Model name: Intel(R) Xeon(R) Processor\\nSocket(s): 1\\nNUMA node(s): 1\\nHypervisor vendor: KVM")
    {'model': 'Intel(R) Xeon(R) Processor', 'sockets': 1, 'numa_nodes': 1, 'hypervisor_vendor': 'KVM'}
    """
    facts: dict = {}
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        name = LSCPU_FIELDS.get(label.strip())
        if not sep or not name or name in facts or not value.strip():
            continue
        value = value.strip()
        facts[name] = int(value) if name in NUMBERS and value.isdigit() else value
    return facts


def tool_version(text: str, pattern: str) -> str | None:
    """A tool's version line by collect_env's own pattern (`gcc (.*)`, `clang version (.*)`, `cmake (.*)`).

    >>> tool_version("gcc (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0\\nCopyright", r"gcc (.*)")
    '(Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0'
    """
    match = re.search(pattern, text or "")
    return match.group(1).strip() if match else None


def nvcc_full_version(text: str) -> str | None:
    """The CUDA toolkit's full version from `nvcc --version` ('13.0.88'), as collect_env's 'CUDA runtime version'.

    >>> nvcc_full_version("Cuda compilation tools, release 13.0, V13.0.88\\nBuild cuda_13.0.r13.0/compiler.36424714_0")
    '13.0.88'
    """
    return tool_version(text, r"release .+ V(\S+)")
