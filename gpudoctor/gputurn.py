"""gpudoctor's own processes take turns on the GPUs where one would get in another's way.

A smoke test may take most of a GPU's memory, so frameworks train one at a time. On a GPU in an
exclusive compute mode (Exclusive_Process; Exclusive_Thread before Volta) one process's CUDA context
turns every other away with "CUDA-capable device(s) is/are busy or unavailable" (CUDA error 46;
NVML: "only one context per device"). So the facts questions that open contexts on the GPUs hold the
turn too, and go before any training (the python_envs collector has the run's 10 s, a smoke test
110 s): JAX's facts, whose backend starts when the probe asks for it, share it with each other in
every mode, so they start at once, before NVML has answered; ONNX Runtime's CUDA session holds it
alone where NVML names an exclusive mode. There JAX's interpreter ends after its facts instead of
waiting for the smoke test with its contexts open. Facts that open no context (torch's device count
and properties, TF's physical devices, CuPy's counts) never wait. Where an MPS control daemon's
socket is where this environment's processes look for it, and this user may write to it, they
connect to it as its clients: "exclusive-mode restrictions are applied to the MPS server, not MPS
clients" (NVIDIA's MPS guide, which sets EXCLUSIVE_PROCESS for it).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

EXCLUSIVE_MODES = (1, 3)  # NVML's nvmlComputeMode_t: Exclusive_Thread, Exclusive_Process
NVML_WAIT_S = 3.0  # a hung NVML is its own finding (driver.nvml): past this, the GPUs count as shared
MPS_PIPES = "/tmp/nvidia-mps"  # the MPS control daemon's pipe directory unless CUDA_MPS_PIPE_DIRECTORY says another
MPS_KINDS = ("socket", "fifo")  # its `control` file: a UNIX socket ("Starting control daemon using socket ..."), once a FIFO


class Turn:
    """Who uses the GPUs now: facts questions share it and go first; a holder alone (a training, or a question that
    opens contexts where one process is allowed) waits for them, `first` ones before the rest."""

    def __init__(self):
        self._changed = threading.Condition()
        self._alone = False
        self._sharing = 0
        self._waiting = {"shared": 0, "first": 0}

    @contextmanager
    def shared(self):
        with self._changed:
            self._waiting["shared"] += 1
            self._changed.wait_for(lambda: not self._alone)
            self._waiting["shared"] -= 1
            self._sharing += 1
        try:
            yield
        finally:
            with self._changed:
                self._sharing -= 1
                self._changed.notify_all()

    @contextmanager
    def __call__(self, first: bool = False):
        with self._changed:
            self._waiting["first"] += first
            self._changed.wait_for(lambda: not (self._alone or self._sharing or self._waiting["shared"])
                                   and (first or not self._waiting["first"]))
            self._waiting["first"] -= first
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()


def mps_control(host) -> dict:
    """Where this environment's CUDA processes look for the MPS control daemon, and whether its socket is there for
    this user to write to (`found`; None in replayed evidence from before it was recorded). A daemon killed outright
    leaves its socket behind: that is not told apart."""
    path = (host.environ.get("CUDA_MPS_PIPE_DIRECTORY") or MPS_PIPES).rstrip("/") + "/control"
    try:
        found = host.stat(path) or {}
    except LookupError:
        return {"control": path, "found": None}
    return {"control": path, "found": found.get("kind") in MPS_KINDS and bool(found.get("writable"))}


def exclusive(host) -> bool:
    """Whether a GPU here admits one of gpudoctor's processes at a time: NVML names an exclusive compute mode and no
    MPS control daemon makes them its clients. Decided once per run; NVML silent for NVML_WAIT_S counts as shared."""
    return host.once(("exclusive",), lambda: _exclusive(host)) is True


def _exclusive(host) -> bool:
    if mps_control(host)["found"]:
        return False
    answer: dict = {}
    asking = threading.Thread(target=lambda: answer.update(host.nvml()), daemon=True, name="gputurn-nvml")
    asking.start()
    asking.join(NVML_WAIT_S)
    return any(isinstance(d, dict) and d.get("compute_mode") in EXCLUSIVE_MODES for d in answer.get("devices") or [])
