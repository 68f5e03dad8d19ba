"""One interpreter per judged Python and framework: the facts probe and the smoke test share it (issue 10, section 3).

Real interpreters and real processes. Where a framework must print, hang or crash on cue, a stand-in package of
that name sits first on PYTHONPATH, in the place of the real one: the failure shapes are those of real incidents
(an import that stalls on a network file system, a SIGSEGV in a CUDA library), the plumbing under test is ours.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import textwrap
import threading
import time

import psutil
import pytest

from evidence_helpers import FIXTURES

from gpudoctor import gputurn
from gpudoctor.evidence import Evidence
from gpudoctor.frameworks import ask_facts
from gpudoctor.gputurn import Turn
from gpudoctor.host import PROBE_MARK, LiveHost, RecordedHost
from gpudoctor.loader import load_plugins
from gpudoctor.probeworker import END_MARK
from gpudoctor.runner import Selection, run_checks

PY = sys.executable


def recorded(host: LiveHost, question: str) -> dict:
    return host.evidence.get("probes", f"{PY} {question}")


def answer_of(record: dict) -> dict:
    return json.loads(record["stdout"][len(PROBE_MARK):])


def own_probes() -> list[psutil.Process]:
    """Probe interpreters still running below this process."""
    return [p for p in psutil.Process().children(recursive=True)
            if any("framework_probe.py" in part for part in _cmdline(p))]


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """Write a stand-in package `name` (files relative to it) first on the probes' PYTHONPATH."""
    def write(name: str, files: dict[str, str]) -> None:
        for relative, body in files.items():
            path = tmp_path / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(body))
        monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return write


JAX = """
    __version__ = "0.0.stand-in"
    def default_backend(): return "cpu"
    def devices(*args): return ["cpu:0"]
"""


def h200_nvml(compute_mode: int = 0) -> dict:
    """NVML's answer from the real H200 (third run, compute mode Default), so that no test depends on this machine's."""
    nvml = json.loads((FIXTURES / "h200-firecracker-2026-11-27-third-run" / "evidence.json").read_text())["nvml"]
    nvml["devices"][0]["compute_mode"] = compute_mode
    return nvml


def exclusive_h200() -> dict:
    """The same, its GPU set to Exclusive_Process as `nvidia-smi -c 3` would."""
    return h200_nvml(3)


SEGFAULT_ON_EXIT = """
import atexit, os, signal, sys
def _teardown():
    sys.stderr.write("Segmentation fault in a CUDA library's teardown\\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGSEGV)
atexit.register(_teardown)
"""


def facts_then_smoke() -> tuple[LiveHost, dict, dict]:
    """JAX's facts probe, then its smoke test in the same interpreter, as python_envs and the smoke collector ask them."""
    host = LiveHost()
    try:
        return host, host.probe(PY, "jax", keep=True), host.probe(PY, "smoke jax cpu 3")
    finally:
        host.close()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed here (CI installs torch==2.13.0)")
def test_the_smoke_test_trains_in_the_interpreter_that_imported_torch_for_its_facts():
    host = LiveHost(options={"python": [PY], "smoke": {"device": "cpu", "steps": 5, "frameworks": ["torch"]}})
    host.nvml = lambda timeout=None: h200_nvml()  # the GPUs' mode from the recording, not this machine
    try:
        results, facts, _ = run_checks(load_plugins(external=False), host, Selection(only=frozenset({"python", "torch", "smoke"})))
    finally:
        host.close()
    facts_record, smoke_record = recorded(host, "torch"), recorded(host, "smoke torch cpu 5")
    assert facts_record["rc"] == 0 and smoke_record["rc"] == 0
    assert answer_of(facts_record)["import_s"] > 0.2  # the one real import of torch in this run
    assert answer_of(smoke_record)["import_s"] < 0.05  # the smoke test found it imported: same process
    assert smoke_record["argv"] == [PY, host_script(), "smoke", "torch", "cpu", "5"]  # the command that reruns it alone
    statuses = {r.id: r.status for r in results}
    assert statuses["smoke.torch"].value == "pass"
    # each answer sits under its own key, so the evidence replays to the same verdicts
    replayed, _, _ = run_checks(load_plugins(external=False), RecordedHost(Evidence(host.evidence.to_dict())),
                                Selection(only=frozenset({"python", "torch", "smoke"})))
    assert {r.id: r.status for r in replayed} == statuses
    assert not own_probes()


def host_script() -> str:
    from gpudoctor.host import PROBE_SCRIPT

    return PROBE_SCRIPT


def test_each_answer_keeps_the_stderr_written_while_it_was_asked(stand_in):
    stand_in("jax", {"__init__.py": """
        import os, sys
        __version__ = "0.0.stand-in"
        print("printed to stdout while importing", flush=True)   # moved onto stderr: never into the answer
        os.write(1, b"written by C to fd 1\\n")
        sys.stderr.write("a warning while importing\\n")
        def default_backend(): return "cpu"
        def devices(*args): return ["cpu:0"]
    """, "numpy.py": """
        import sys
        sys.stderr.write("a warning from the smoke test\\n")
        raise ImportError("this jax has no numpy module")
    """})
    host, facts, smoke = facts_then_smoke()
    assert facts["jax"] == "0.0.stand-in" and facts["devices"] == ["cpu:0"]
    first, second = recorded(host, "jax"), recorded(host, "smoke jax cpu 3")
    assert first["stdout"].count("\n") == 1 and first["stdout"].startswith(PROBE_MARK)
    assert first["stderr"].splitlines() == ["printed to stdout while importing", "written by C to fd 1", "a warning while importing"]
    assert "no numpy module" in smoke["failed"] and second["stderr"].splitlines() == ["a warning from the smoke test"]
    assert END_MARK.decode() not in first["stderr"] + second["stderr"]


def test_a_question_that_hangs_is_named_with_its_limit_and_the_next_one_starts_afresh(stand_in):
    stand_in("jax", {"__init__.py": JAX, "numpy.py": """
        import time
        time.sleep(60)   # an import stalled on a network file system
    """})
    host = LiveHost()
    try:
        host.probe(PY, "jax", keep=True)
        worker = host._workers[(PY, "jax")]
        hung = host.probe(PY, "smoke jax cpu 3", timeout=1.5)
        assert hung["failure"] == "hung" and hung["message"] == "timed out at its 1.5 s limit"
        assert not psutil.pid_exists(worker.proc.pid) or psutil.Process(worker.proc.pid).status() == psutil.STATUS_ZOMBIE
        again = host.probe(PY, "smoke jax cpu 4", timeout=1.5)  # a new question, a new interpreter: it hangs there too
        assert again["failure"] == "hung"
    finally:
        host.close()
    assert not own_probes()


def test_a_crash_in_a_later_question_leaves_the_earlier_answer_standing(stand_in):
    stand_in("jax", {"__init__.py": JAX, "numpy.py": """
        import os, signal, sys
        sys.stderr.write("Fatal Python error: Segmentation fault\\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    """})
    host, facts, crash = facts_then_smoke()
    assert facts["jax"] == "0.0.stand-in" and recorded(host, "jax")["rc"] == 0
    assert crash["failure"] == "crashed" and crash["signal"] == "SIGSEGV"
    assert crash["stderr_tail"] == ["Fatal Python error: Segmentation fault"]
    assert recorded(host, "smoke jax cpu 3")["rc"] == -11


def test_each_question_is_asked_once_and_a_kept_interpreter_ends_with_the_run(stand_in):
    stand_in("jax", {"__init__.py": """
        import os
        __version__ = str(os.getpid())
        def default_backend(): return "cpu"
        def devices(*args): return ["cpu:0"]
    """})
    host = LiveHost()
    first = host.probe(PY, "jax", keep=True)
    assert host.probe(PY, "jax", keep=True) is first  # python_envs and the smoke test ask it: one answer
    pid = int(first["jax"])
    assert psutil.pid_exists(pid)  # kept for the smoke test
    host.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_an_interpreter_that_cannot_start_is_said_per_question(tmp_path):
    host = LiveHost()
    answer = host.probe(str(tmp_path / "no-python"), "torch", keep=True)
    host.close()
    assert answer["failure"] == "not run" and answer["message"] == "command not found"
    assert host.evidence.get("probes", f"{tmp_path / 'no-python'} torch")["argv"][-1] == "torch"


def test_the_probe_answers_one_question_a_line_and_marks_each_end(tmp_path):
    """The worker's side of the protocol, driven by hand as gpudoctor drives it."""
    import subprocess

    script = host_script()
    proc = subprocess.run([PY, script, "--serve"], input="cupy\n\nenv\n", capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == 2 and all(line.startswith(PROBE_MARK) for line in lines)
    assert json.loads(lines[0][len(PROBE_MARK):])["absent"] is True
    assert "python" in json.loads(lines[1][len(PROBE_MARK):])
    assert proc.stderr.count(END_MARK.decode()) == 2


def test_frameworks_train_one_at_a_time_in_the_order_their_imports_finish(stand_in, tmp_path):
    """A slow import (torch: 4.6 s on the H200) overlaps another framework's training, never another training."""
    log = tmp_path / "times.log"
    stand_in("torch", {"__init__.py": f"""
        import time
        time.sleep(1.5)
        __version__ = "0.0.stand-in"
        def __getattr__(name):
            if name == "backends":   # the smoke test's first use of torch (allow_tf32); the facts probe asks only what exists
                open({str(log)!r}, "a").write(f"torch-smoke-start {{time.time()}}\\n")
            raise AttributeError(name)
        open({str(log)!r}, "a").write(f"torch-imported {{time.time()}}\\n")
    """})
    stand_in("jax", {"__init__.py": JAX + f"""
    import os
    open({str(log)!r}, "a").write(f"jax-imported-in {{os.getpid()}}\\n")
""", "numpy.py": f"""
        import os, time
        open({str(log)!r}, "a").write(f"jax-smoke-in {{os.getpid()}}\\n")
        open({str(log)!r}, "a").write(f"jax-smoke-start {{time.time()}}\\n")
        time.sleep(1.0)
        open({str(log)!r}, "a").write(f"jax-smoke-end {{time.time()}}\\n")
        raise ImportError("a stand-in")
    """})
    host = LiveHost(options={"python": [PY], "smoke": {"device": "cpu", "steps": 5, "frameworks": ["torch", "jax"]}})
    host.nvml = lambda timeout=None: h200_nvml()  # Default mode: JAX keeps its interpreter for its smoke test
    try:
        _, facts, _ = run_checks(load_plugins(external=False), host, Selection(only=frozenset({"smoke"})))
    finally:
        host.close()
    times = {line.split()[0]: float(line.split()[1]) for line in log.read_text().splitlines()}
    assert times["jax-smoke-start"] < times["torch-imported"]  # JAX trained while torch was still importing
    assert times["torch-smoke-start"] >= times["jax-smoke-end"]  # and torch waited for it to finish
    assert times["jax-imported-in"] == times["jax-smoke-in"]  # JAX trained in the interpreter of its facts
    assert [run["framework"] for run in facts["smoke"]["runs"]] == ["torch", "jax"]  # reported in the usual order
    assert "backends" in facts["smoke"]["runs"][0]["answer"]["failed"] and "stand-in" in facts["smoke"]["runs"][1]["answer"]["failed"]


def test_a_second_asker_gets_the_answer_without_waiting_behind_the_smoke_test(stand_in):
    """python_envs and the smoke collector both ask for JAX's facts; whichever asks second must not wait while the
    first goes on to train (the python_envs collector has the run's 10 s, the training may take 110 s)."""
    stand_in("jax", {"__init__.py": "import time\ntime.sleep(0.5)\n" + textwrap.dedent(JAX), "numpy.py": """
        import time
        time.sleep(4)
        raise ImportError("a stand-in")
    """})
    host = LiveHost()
    waited = {}

    def smoke_collector():
        host.probe(PY, "jax", keep=True)
        host.probe(PY, "smoke jax cpu 3")

    def python_envs():
        start = time.monotonic()
        waited["answer"] = host.probe(PY, "jax", keep=True)
        waited["s"] = time.monotonic() - start

    first = threading.Thread(target=smoke_collector)
    first.start()
    time.sleep(0.2)  # the smoke collector asked first; python_envs asks while the facts are being found
    second = threading.Thread(target=python_envs)
    second.start()
    second.join(30)
    first.join(30)
    host.close()
    assert waited["answer"]["jax"] == "0.0.stand-in" and waited["s"] < 3


def test_a_crash_on_the_way_out_is_recorded_as_a_one_off_command_would_record_it(stand_in):
    """A library that segfaults in its teardown (after the answer was written) crashed the one-off command; an
    interpreter that is not kept ends the same way, and its exit code and last words are kept."""
    stand_in("cupy", {"__init__.py": '__version__ = "0.0.stand-in"\n' + SEGFAULT_ON_EXIT})
    host = LiveHost()
    answer = host.probe(PY, "cupy")
    host.close()
    assert answer["failure"] == "crashed" and answer["signal"] == "SIGSEGV"
    assert answer["stderr_tail"] == ["Segmentation fault in a CUDA library's teardown"]
    assert recorded(host, "cupy")["rc"] == -11


def test_an_interpreter_whose_framework_did_not_import_is_not_kept(stand_in):
    """A half-done import leaves modules behind, so the smoke test in that process would fail differently."""
    stand_in("jax", {"__init__.py": """
        from jax import half_done   # imports, and stays in sys.modules
        raise ImportError("libcudart.so.12: cannot open shared object file: No such file or directory")
    """, "half_done.py": "STATE = 'imported'\n"})
    host = LiveHost()
    try:
        facts = host.probe(PY, "jax", keep=True)
        assert (PY, "jax") not in host._workers
        smoke = host.probe(PY, "smoke jax cpu 3")
    finally:
        host.close()
    assert "libcudart.so.12" in facts["failed"] and smoke["failed"] == facts["failed"]  # the same import, afresh


# A GPU in Exclusive_Process mode admits one process's CUDA context at a time; a second process is turned away
# with "CUDA-capable device(s) is/are busy or unavailable" (CUDA error 46: DIGITS#2005, pytorch#3871). Here the GPU
# is a file: opening a context takes its lock until the process ends, a second opener is turned away in those words.
GPU = """
    import fcntl, os, time
    def open_context(who):
        held = open(os.environ["STAND_IN_GPU"], "a")
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            open(os.environ["STAND_IN_GPU"] + ".log", "a").write(who + " busy\\n")
            raise RuntimeError("CUDA error: CUDA-capable device(s) is/are busy or unavailable")
        open(os.environ["STAND_IN_GPU"] + ".log", "a").write(who + " context\\n")
        globals().setdefault("held", []).append(held)  # a context lasts as long as its process
        time.sleep(0.3)
"""




def test_on_a_gpu_that_admits_one_process_gpudoctors_own_processes_take_turns(stand_in, tmp_path, monkeypatch):
    """JAX's facts (jax.devices() opens a context on every GPU), ONNX Runtime's CUDA session and each smoke test open
    contexts: none may meet another, and JAX's interpreter is not kept holding its contexts while torch trains."""
    monkeypatch.setenv("STAND_IN_GPU", str(tmp_path / "gpu0"))
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path / "no-mps"))  # no MPS daemon, on any machine
    stand_in("gpu", {"__init__.py": GPU})
    stand_in("jax", {"__init__.py": JAX.replace('return ["cpu:0"]', 'import gpu; gpu.open_context("jax facts"); return ["cuda:0"]'),
                     "numpy.py": 'import gpu\ngpu.open_context("jax smoke")\nraise ImportError("a stand-in")\n'})
    stand_in("onnxruntime", {"__init__.py": """
        __version__ = "0.0.stand-in"
        def get_device(): return "GPU"
        def get_available_providers(): return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        class InferenceSession:
            def __init__(self, model, providers):
                if "CUDAExecutionProvider" in providers:
                    import gpu; gpu.open_context("onnxruntime session")
                raise RuntimeError("a stand-in")
    """})
    stand_in("torch", {"__init__.py": """
        import time
        time.sleep(0.5)
        __version__ = "0.0.stand-in"
        def __getattr__(name):
            if name == "backends":   # the smoke test's first use of torch
                import gpu; gpu.open_context("torch smoke")
            raise AttributeError(name)
    """})
    host = LiveHost(options={"python": [PY], "smoke": {"device": "cpu", "steps": 5, "frameworks": ["torch", "jax"]}})
    monkeypatch.setattr(host, "nvml", lambda timeout=None: exclusive_h200())
    try:
        _, facts, _ = run_checks(load_plugins(external=False), host, Selection(only=frozenset({"python", "smoke"})))
    finally:
        host.close()
    log = (tmp_path / "gpu0.log").read_text().splitlines()
    assert sorted(log) == ["jax facts context", "jax smoke context", "onnxruntime session context", "torch smoke context"]
    jax_facts = facts["python_envs"]["interpreters"][0]["jax"]
    torch_smoke, jax_smoke = (run["answer"]["failed"] for run in facts["smoke"]["runs"])
    assert jax_facts["devices"] == ["cuda:0"] and "backends" in torch_smoke and "stand-in" in jax_smoke  # each got past its context


def test_the_turn_goes_to_a_facts_question_before_a_smoke_test_that_came_earlier():
    """python_envs has the run's 10 s, a smoke test 110 s: a facts question waiting for the GPUs goes first."""
    turn, order, holding = Turn(), [], threading.Event()

    def hold():
        with turn():
            holding.set()
            time.sleep(0.3)

    def wait(name, first):
        with turn(first=first):
            order.append(name)

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    holding.wait(5)
    for name, first in (("smoke", False), ("facts", True)):
        threads.append(threading.Thread(target=wait, args=(name, first)))
        threads[-1].start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(5)
    assert order == ["facts", "smoke"]


def test_a_hung_nvml_costs_the_facts_questions_nothing_past_the_runs_limit(stand_in, tmp_path, monkeypatch):
    """NVML that hangs (a GPU fallen off the bus) is driver.nvml's finding. Whether the GPUs are exclusive is then
    unknown for NVML_WAIT_S, and counts as not; ONNX Runtime's question, which waited for it, gets only what is left
    of the run's limit, so python_envs still answers within its deadline (the limit plus 1 s) with the hang named."""
    monkeypatch.setattr(gputurn, "NVML_WAIT_S", 1.5)
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path / "no-mps"))  # no MPS daemon, on any machine
    stand_in("onnxruntime", {"__init__.py": "import time\ntime.sleep(60)\n"})  # an import that stalls, as the GPU does
    host = LiveHost(timeout=3, options={"python": [PY]})

    def hung(timeout=None):
        time.sleep(8)
        return exclusive_h200()  # too late to count

    monkeypatch.setattr(host, "nvml", hung)
    try:
        results, facts, _ = run_checks(load_plugins(external=False), host, Selection(only=frozenset({"python"})), timeout=3)
    finally:
        host.close()
    assert not [r.id for r in results if r.status.value == "error"]
    ort = facts["python_envs"]["interpreters"][0]["onnxruntime"]
    assert ort["failure"] == "hung" and "timed out at its 1.5 s limit" in ort["message"], ort
    assert gputurn.exclusive(host) is False  # decided once, as it was decided then


def test_the_exclusive_mode_is_read_from_nvml(tmp_path):
    host = LiveHost(environ={"CUDA_MPS_PIPE_DIRECTORY": str(tmp_path)})  # no MPS daemon there, on any machine
    host.nvml = lambda timeout=None: exclusive_h200()
    assert gputurn.exclusive(host) is True


def mps_daemon_socket(folder) -> socket.socket:
    """What `nvidia-cuda-mps-control -d` leaves in its pipe directory: a listening UNIX socket named `control`
    ("Starting control daemon using socket /tmp/nvidia-mps/control", NVIDIA/k8s-device-plugin#762)."""
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listening.bind(str(folder / "control"))
    listening.listen(1)
    return listening


def test_under_mps_gpudoctors_processes_are_its_clients_and_need_no_turns(tmp_path):
    """An MPS control daemon's socket where CUDA_MPS_PIPE_DIRECTORY points makes every CUDA process its client, and
    exclusive mode applies to the MPS server only (NVIDIA's MPS guide); the socket is recorded as evidence."""
    with mps_daemon_socket(tmp_path):
        host = LiveHost(environ={"CUDA_MPS_PIPE_DIRECTORY": str(tmp_path)})
        host.nvml = lambda timeout=None: exclusive_h200()
        assert gputurn.exclusive(host) is False
    assert host.evidence.data["stats"][f"{tmp_path}/control"]["kind"] == "socket"
    replayed = RecordedHost(Evidence(host.evidence.to_dict()))
    assert gputurn.mps_control(replayed) == {"control": f"{tmp_path}/control", "found": True}
    assert gputurn.mps_control(RecordedHost(Evidence({}))) == {"control": "/tmp/nvidia-mps/control", "found": None}


def test_facts_questions_share_the_turn_and_a_training_waits_for_them_all():
    """Several interpreters' JAX facts start together (each 2.4 s on the H200; in turn they would spend python_envs's
    10 s); a training waits until none holds or waits for it."""
    turn, events = Turn(), []
    both_in = threading.Barrier(2, timeout=5)

    def facts(name):
        with turn.shared():
            events.append(f"{name} in")
            both_in.wait()  # fails unless both hold it at once
            time.sleep(0.2)
            events.append(f"{name} out")

    def training():
        with turn():
            events.append("training")

    threads = [threading.Thread(target=facts, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    threads.append(threading.Thread(target=training))
    threads[-1].start()
    for thread in threads:
        thread.join(5)
    assert events[-1] == "training" and sorted(events[:2]) == ["a in", "b in"]


def test_on_an_exclusive_gpu_jax_ends_after_its_facts_and_a_crash_on_its_way_out_is_recorded(stand_in, tmp_path, monkeypatch):
    """JAX's interpreter is not kept where the GPUs are exclusive; how it ended is in the record, as for any
    interpreter that is not kept (a SIGSEGV in a CUDA library's teardown is a finding)."""
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path / "no-mps"))
    stand_in("jax", {"__init__.py": textwrap.dedent(JAX) + SEGFAULT_ON_EXIT})
    host = LiveHost()
    host.nvml = lambda timeout=None: exclusive_h200()
    try:
        answer = ask_facts(host, PY, "jax")
        assert (PY, "jax") not in host._workers
    finally:
        host.close()
    assert answer["failure"] == "crashed" and answer["signal"] == "SIGSEGV" and recorded(host, "jax")["rc"] == -11


def test_on_an_exclusive_gpu_a_question_left_no_time_is_not_asked(stand_in, tmp_path, monkeypatch):
    """JAX's facts hang (an import stalled on a network file system) and hold the turn for the whole limit; ONNX
    Runtime's CUDA session, which must wait for it, is not asked, and python_envs keeps its deadline."""
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path / "no-mps"))
    stand_in("jax", {"__init__.py": "import time\ntime.sleep(60)\n"})
    stand_in("onnxruntime", {"__init__.py": "__version__ = '0.0.stand-in'\n"})
    host = LiveHost(timeout=3, options={"python": [PY]})
    host.nvml = lambda timeout=None: exclusive_h200()
    try:
        results, facts, _ = run_checks(load_plugins(external=False), host, Selection(only=frozenset({"python"})), timeout=3)
    finally:
        host.close()
    assert not [r.id for r in results if r.status.value == "error"]
    interpreter = facts["python_envs"]["interpreters"][0]
    assert interpreter["jax"]["failure"] == "hung"
    assert interpreter["onnxruntime"]["failure"] == "not run" and interpreter["onnxruntime"]["message"].startswith("not asked")
    replayed, _, _ = run_checks(load_plugins(external=False), RecordedHost(Evidence(host.evidence.to_dict())),
                                Selection(only=frozenset({"python"})), timeout=3)
    assert {r.id: r.status for r in replayed} == {r.id: r.status for r in results}
