"""gpudoctor's own processes take turns on the GPUs where one would get in another's way.

A smoke test may take most of a GPU's memory, so frameworks train one at a time. On a GPU in an
exclusive compute mode (Exclusive_Process; Exclusive_Thread before Volta) one process's CUDA context
turns every other away with "CUDA-capable device(s) is/are busy or unavailable" (CUDA error 46;
NVML: "only one context per device"). So the facts questions that open a context on the GPUs take
the turn too, ahead of any training (the python_envs collector has the run's 10 s, a smoke test
110 s): JAX's, whose backend starts when the probe asks for it, always, so that it never waits for
NVML's answer; ONNX Runtime's CUDA session only where NVML names an exclusive mode. There JAX's
interpreter ends after its facts instead of waiting for the smoke test with its contexts open.
Facts that open no context (torch's device count and properties, TF's physical devices, CuPy's
counts) never wait. Where an MPS control daemon's socket is where this environment's processes look
for it, they are its clients and share the GPU: "exclusive-mode restrictions are applied to the MPS
server, not MPS clients" (NVIDIA's MPS guide, which sets EXCLUSIVE_PROCESS for it).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

EXCLUSIVE_MODES = (1, 3)  # NVML's nvmlComputeMode_t: Exclusive_Thread, Exclusive_Process
NVML_WAIT_S = 3.0  # a hung NVML is its own finding (driver.nvml): past this, the GPUs count as shared
MPS_PIPES = "/tmp/nvidia-mps"  # the MPS control daemon's pipe directory unless CUDA_MPS_PIPE_DIRECTORY says another
MPS_KINDS = ("socket", "fifo")  # its `control` file: a UNIX socket ("Starting control daemon using socket ..."), once a FIFO


class Turn:
    """One holder at a time; a waiter that is `first` goes before those that are not."""

    def __init__(self):
        self._changed = threading.Condition()
        self._held = False
        self._first_waiting = 0

    @contextmanager
    def __call__(self, first: bool = False):
        with self._changed:
            self._first_waiting += first
            self._changed.wait_for(lambda: not self._held and (first or not self._first_waiting))
            self._first_waiting -= first
            self._held = True
        try:
            yield
        finally:
            with self._changed:
                self._held = False
                self._changed.notify_all()


def mps_control(host) -> dict:
    """Where this environment's CUDA processes look for the MPS control daemon, and whether its socket is there
    (`found`; None in replayed evidence from before it was recorded). A daemon killed outright leaves it behind."""
    path = (host.environ.get("CUDA_MPS_PIPE_DIRECTORY") or MPS_PIPES).rstrip("/") + "/control"
    try:
        found = host.stat(path)
    except LookupError:
        return {"control": path, "found": None}
    return {"control": path, "found": (found or {}).get("kind") in MPS_KINDS}


def exclusive(host) -> bool:
    """Whether a GPU here admits one of gpudoctor's processes at a time: NVML names an exclusive compute mode and no
    MPS control daemon makes them its clients. Decided once per run; NVML silent for NVML_WAIT_S counts as shared."""
    return host.once(("exclusive",), lambda: _exclusive(host))


def _exclusive(host) -> bool:
    if mps_control(host)["found"]:
        return False
    answer: dict = {}
    asking = threading.Thread(target=lambda: answer.update(host.nvml()), daemon=True, name="gputurn-nvml")
    asking.start()
    asking.join(NVML_WAIT_S)
    return any(isinstance(d, dict) and d.get("compute_mode") in EXCLUSIVE_MODES for d in answer.get("devices") or [])
