"""The training smoke test: the real CPU path end to end, and its judging on GPU runs.

GPU runs are the real CPU run recorded in fixtures/smoke-cpu-2026-11-26 (see its README) with the
device renamed and the figures a case is about changed, planted into the H200 capture where the
smoke test would have run, then replayed through the real collector and checks.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_helpers import fixture, judge, nvml_device, this_machine
from test_cli import gpudoctor_cmd

from gpudoctor import cli
from gpudoctor.evidence import Evidence, command_key
from gpudoctor.host import PROBE_MARK, RecordedHost
from gpudoctor.models import Status
from gpudoctor.loader import load_plugins
from gpudoctor.runner import Selection, run_checks

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "smoke-cpu-2026-11-26" / "probe-run.json").read_text())
H200_PYTHON = "/opt/torch/.venv/bin/python"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def cpu_answer() -> dict:
    return json.loads(RECORDED["stdout"].split(PROBE_MARK, 1)[1])


def gpu_answer(count: int = 1, **changes) -> dict:
    """The recorded answer as a run on `count` H200s at design.md's reference speed, then `changes` on cuda:0."""
    answer = cpu_answer()
    answer["device"] = "cuda"
    cpu = answer["devices"][0]
    devices = []
    for index in range(count):
        device = copy.deepcopy(cpu)
        device.update(device=f"cuda:{index}", name="NVIDIA H200", capability=[9, 0], memory_total=150754820096,
                      matmul_tflops_bfloat16={"value": 771.0, "s": 0.02}, copy_gbps={"value": 4210.0, "s": 0.01},
                      memory={"value": {"tested_bytes": 120 << 30, "free_bytes": 150 << 30, "total_bytes": 150754820096,
                                        "mismatches": 0}, "s": 1.4},
                      pinned_gbps={"value": {"h2d": 53.1, "d2h": 52.7}, "s": 0.05})
        device.pop("matmul_tflops_float32")
        device["matmul_tflops_tf32"] = {"value": 380.0, "s": 0.01}
        devices.append(device)
    devices[0].update(changes)
    answer["devices"] = devices
    if count > 1:
        answer["peer_access"] = {"value": [[True] * count for _ in range(count)], "s": 0.01}
        answer["allreduce"] = {"value": [{"rank": r, "sum_ok": True, "busbw_gbps": 361.2} for r in range(count)], "s": 4.1}
    return answer


def h200_with(answer: dict | None = None, failure: dict | None = None):
    evidence = fixture("h200-2026-11-26")
    record = failure or {"argv": [H200_PYTHON], "rc": 0, "stdout": PROBE_MARK + json.dumps(answer), "stderr": "",
                         "duration_s": 3.1, "error": None, "truncated": False}
    evidence.data["probes"][f"{H200_PYTHON} smoke torch cuda 30"] = record
    return evidence


# -- the real thing, on this machine's CPU ----------------------------------------------------------
@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed in this interpreter (CI installs torch==2.13.0)")
def test_smoke_trains_on_the_cpu_for_real():
    proc = gpudoctor_cmd("smoke", "--python", sys.executable, "--device", "cpu", "--format", "json", timeout=200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads(proc.stdout)
    statuses = {r["id"]: r["status"] for r in document["results"]}
    # a framework installed beside torch trains too (the H200's venv has JAX); one that is absent is skipped
    beside = {f"smoke.{name}": "pass" if importlib.util.find_spec(name) else "skip" for name in ("jax", "tensorflow")}
    assert statuses == {"smoke.torch": "pass", **beside, "smoke.speed": "skip", "smoke.multi_gpu": "skip"}
    run = document["facts"]["smoke"]["runs"][0]
    device = run["answer"]["devices"][0]
    assert run["answer"]["steps"] == 30 and len(device["mixed"]["value"]) == 30 and device["mixed"]["dtype"] == "bfloat16"
    assert device["mixed"]["value"][-1] < 0.9 * device["mixed"]["value"][0]
    assert device["fp32"]["max_rel_diff"] < 1e-3 and len(device["fp32"]["reference"]) == len(device["fp32"]["value"])
    assert device["matmul_tflops_bfloat16"]["value"] > 0 and device["copy_gbps"]["value"] > 0
    assert run["answer"]["smoke_s"] > 0 and device["mixed"]["s"] > 0
    assert run["answer"]["import_s"] < 0.05  # torch was already imported: by the facts probe, in the same interpreter


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed in this interpreter")
def test_steps_are_the_users_to_choose():
    proc = gpudoctor_cmd("smoke", "--python", sys.executable, "--device", "cpu", "--steps", "12", "--format", "json", timeout=200)
    device = json.loads(proc.stdout)["facts"]["smoke"]["runs"][0]["answer"]["devices"][0]
    assert len(device["mixed"]["value"]) == 12


def test_without_a_gpu_check_skips_the_smoke_test_and_says_why():
    results, _, _ = run_checks(load_plugins(external=False), RecordedHost(this_machine()), Selection(only=frozenset({"smoke"})))
    assert {r.status for r in results} == {Status.SKIP}
    assert all("no NVIDIA GPU is visible" in r.summary for r in results)


def test_the_recorded_cpu_run_is_judged_a_pass():
    evidence = Evidence({"options": {"python": ["/tmp/torchvenv/bin/python"], "smoke": {"device": "cpu", "frameworks": ["torch"]}},
                         "probes": {"/tmp/torchvenv/bin/python smoke torch cpu 30": copy.deepcopy(RECORDED)}})
    result = judge(evidence, "smoke.torch")
    assert result.status == Status.PASS and result.summary.startswith("PyTorch trained on 1 device(s)"), result.summary


# -- judging GPU runs ---------------------------------------------------------------------------------
def test_a_healthy_h200_passes_at_its_reference_speed():
    evidence = h200_with(gpu_answer())
    trains = judge(evidence, "smoke.torch")
    assert trains.status == Status.PASS and "trained on 1 device(s)" in trains.summary
    assert "bfloat16 matmul 771 TFLOP/s" in trains.details[0] and "pinned host→device 53.1 GB/s" in trains.details[0]
    speed = judge(evidence, "smoke.speed")
    assert speed.status == Status.PASS and "98% of 788" in speed.details[0] and "98% of 4290" in speed.details[0]
    assert judge(evidence, "smoke.multi_gpu").status == Status.SKIP


def test_a_throttled_gpu_warns_with_the_likely_causes():
    evidence = h200_with(gpu_answer(matmul_tflops_bfloat16={"value": 251.0, "s": 0.06}))
    nvml_device(evidence, throttle_reasons=0x4, power_limit_mw=300000)
    speed = judge(evidence, "smoke.speed")
    assert speed.status == Status.WARN and "runs at 32% of its model's speed" in speed.summary
    assert any("0x4" in d for d in speed.details) and any("power limit 300 W" in d for d in speed.details)
    assert speed.fix.startswith("nvidia-smi -q -i 0 -d PERFORMANCE,POWER,CLOCK")


def test_wrong_numbers_fail_as_corruption():
    wrong = gpu_answer()
    fp32 = wrong["devices"][0]["fp32"]
    fp32["value"] = [v * 1.01 for v in fp32["value"]]
    fp32["max_rel_diff"] = 0.01
    result = judge(h200_with(wrong), "smoke.torch")
    assert result.status == Status.FAIL and "disagrees with the CPU by 1.0e-02" in result.summary
    assert "ROW_REMAPPER" in result.fix and "RMA" in result.fix and "sudo nvidia-smi -r -i 0" in result.fix


def test_a_nan_loss_fails():
    nan = gpu_answer()
    nan["devices"][0]["mixed"]["value"][-3:] = [math.nan] * 3
    result = judge(h200_with(nan), "smoke.torch")
    assert result.status == Status.FAIL and "NaN or infinite" in result.summary


def test_a_loss_that_does_not_fall_fails_without_blaming_the_hardware():
    flat = gpu_answer()
    flat["devices"][0]["mixed"]["value"] = [2.31] * 30
    result = judge(h200_with(flat), "smoke.torch")
    assert result.status == Status.FAIL and "loss did not fall (2.310 → 2.310 in 30 steps)" in result.summary
    assert "RMA" not in result.fix and "drain" not in result.fix and "float32 matched the CPU" in result.fix


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed in this interpreter")
@pytest.mark.parametrize("steps", [5, 8, 10])
def test_healthy_hardware_passes_at_every_short_step_count(steps):
    proc = gpudoctor_cmd("smoke", "--python", sys.executable, "--device", "cpu", "--steps", str(steps), "--format", "json", timeout=200)
    assert proc.returncode == 0, proc.stdout
    assert {r["id"]: r["status"] for r in json.loads(proc.stdout)["results"]}["smoke.torch"] == "pass"


def test_a_smoke_test_that_trained_nothing_is_not_a_pass(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    nothing = gpudoctor_cmd("smoke", "--device", "cpu", "--python", str(tmp_path / "bare"))
    assert nothing.returncode == 1 and "nothing was trained" in nothing.stderr and "point --python at your training" in nothing.stderr


def test_a_smoke_test_without_a_gpu_says_to_use_the_cpu(monkeypatch, capsys):
    """`gpudoctor smoke` on this development machine as recorded (no /proc/driver/nvidia/gpus), through the real CLI."""
    def recorded_machine(timeout, options):
        return RecordedHost(Evidence({**this_machine().data, "options": options}), timeout)

    monkeypatch.setattr("gpudoctor.host.LiveHost", recorded_machine)
    assert cli.main(["smoke"]) == 1
    assert "no GPU is visible here: gpudoctor smoke --device cpu runs the same test on the CPU" in capsys.readouterr().err


def test_fixes_name_the_gpu_by_uuid_not_by_cuda_ordinal():
    # CUDA_VISIBLE_DEVICES=1 on an 8-GPU box: cuda:0 is nvidia-smi's GPU 1, so "-i 0" would reset the wrong GPU
    wrong = gpu_answer(uuid="GPU-33497751-baba-a7bf-3038-8645175b5bde", pci_bus="0000:00:06.0")
    wrong["devices"][0]["fp32"]["max_rel_diff"] = 0.01
    result = judge(h200_with(wrong), "smoke.torch")
    assert "nvidia-smi -q -i GPU-33497751-baba-a7bf-3038-8645175b5bde" in result.fix and "-i 0" not in result.fix


def test_memory_that_reads_back_wrong_fails():
    bad = gpu_answer()
    bad["devices"][0]["memory"]["value"]["mismatches"] = 17
    result = judge(h200_with(bad), "smoke.torch")
    assert result.status == Status.FAIL and "17 words read back wrong" in result.summary


@pytest.mark.parametrize("error, fix", [
    ("RuntimeError: cuDNN error: CUDNN_STATUS_NOT_INITIALIZED", "gpudoctor check --only cudnn -v"),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00 GiB", "--query-compute-apps"),
    ("RuntimeError: CUDA error: no kernel image is available for execution on the device", "gpudoctor check --only torch -v"),
    ("RuntimeError: CUDA error: an illegal memory access was encountered",
     f"{H200_PYTHON} -X faulthandler "),
])
def test_a_failing_step_names_its_error_and_the_fix_for_it(error, fix):
    failing = gpu_answer()
    failing["devices"][0]["fp32"] = {"error": error, "s": 0.4}
    result = judge(h200_with(failing), "smoke.torch")
    assert result.status == Status.FAIL and error in result.summary and fix in result.fix


def test_a_crashing_smoke_test_fails_with_a_rerun_command():
    crash = {"argv": [H200_PYTHON], "rc": -11, "stdout": "", "stderr": "Fatal Python error: Segmentation fault\n",
             "duration_s": 2.0, "error": None, "truncated": False}
    result = judge(h200_with(failure=crash), "smoke.torch")
    assert result.status == Status.FAIL and "killed by SIGSEGV" in result.summary
    assert result.fix.startswith(f"{H200_PYTHON} -X faulthandler") and "smoke torch cuda 30" in result.fix


def test_a_hung_smoke_test_fails():
    hung = {"argv": [H200_PYTHON], "rc": None, "stdout": "", "stderr": "", "duration_s": 110.0, "error": "timed out", "truncated": False}
    result = judge(h200_with(failure=hung), "smoke.torch")
    assert result.status == Status.FAIL and result.summary.endswith("smoke test in /opt/torch/.venv/bin/python timed out at its 110 s limit")


def test_torch_without_cuda_skips_to_the_torch_checks():
    answer = {"framework": "torch", "import_s": 1.2, "version": "2.13.0+cpu", "device": "cuda", "steps": 30,
              "unavailable": "torch.cuda.is_available() is False (torch 2.13.0+cpu, CUDA None; see torch.cuda_available)"}
    result = judge(h200_with(answer), "smoke.torch")
    assert result.status == Status.SKIP and "see torch.cuda_available" in result.summary


def test_eight_gpus_that_reach_each_other_pass():
    assert judge(h200_with(gpu_answer(count=8)), "smoke.multi_gpu").status == Status.PASS


def test_gpus_without_peer_access_warn():
    answer = gpu_answer(count=2)
    answer["peer_access"]["value"] = [[True, False], [False, True]]
    result = judge(h200_with(answer), "smoke.multi_gpu")
    assert result.status == Status.WARN and "0→1, 1→0" in result.summary and "nvidia-smi topo -m" in result.fix


def test_an_allreduce_that_fails_or_sums_wrong_fails():
    answer = gpu_answer(count=2)
    answer["allreduce"]["value"][1] = {"rank": 1, "error": "DistBackendError: NCCL error: unhandled system error"}
    result = judge(h200_with(answer), "smoke.multi_gpu")
    assert result.status == Status.FAIL and "unhandled system error" in result.summary and "NCCL_P2P_DISABLE=1" in result.fix
    answer["allreduce"]["value"][1] = {"rank": 1, "sum_ok": False, "busbw_gbps": 12.0}
    assert judge(h200_with(answer), "smoke.multi_gpu").status == Status.FAIL


RECORDED_OTHERS = json.loads((Path(__file__).parent / "fixtures" / "smoke-cpu-2026-11-26" / "probe-runs-jax-tensorflow.json").read_text())


def venvs(device: str) -> Evidence:
    """This machine's JAX and TensorFlow venvs, as their recorded smoke runs saw them."""
    return Evidence({"options": {"python": ["/tmp/jaxvenv/bin/python", "/tmp/tfvenv/bin/python"], "smoke": {"device": device}},
                     "listdirs": {"/proc/driver/nvidia/gpus": ["0000:00:06.0"]}, "probes": copy.deepcopy(RECORDED_OTHERS)})


@pytest.mark.parametrize("check_id, words", [
    ("smoke.jax", "JAX trained on 1 device(s): loss 2.638 → 0.197 in 30 bfloat16 steps"),
    ("smoke.tensorflow", "TensorFlow trained on 1 device(s): loss 2.638 → 0.197 in 30 bfloat16 steps"),
])
def test_the_recorded_jax_and_tensorflow_runs_train_and_match_the_cpu(check_id, words):
    result = judge(venvs("cpu"), check_id)
    assert result.status == Status.PASS and result.summary.startswith(words), result.summary
    assert any("was not recorded" in d for d in result.details)  # the other venv: said, not hidden


@pytest.mark.parametrize("check_id, words", [
    ("smoke.jax", "jax has no GPU backend: Unknown backend: 'gpu' requested"),
    ("smoke.tensorflow", "TensorFlow lists no GPU (see tensorflow.gpus) in /tmp/tfvenv/bin/python"),
])
def test_cpu_builds_asked_for_the_gpu_skip_with_their_reason(check_id, words):
    result = judge(venvs("cuda"), check_id)
    assert result.status == Status.SKIP and words in result.summary


def test_the_capture_without_a_smoke_run_skips_as_not_recorded():
    for check_id in ("smoke.torch", "smoke.jax", "smoke.tensorflow", "smoke.speed", "smoke.multi_gpu"):
        result = judge(fixture("h200-2026-11-26"), check_id)
        assert result.status == Status.SKIP and "not recorded" in result.summary


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed in this interpreter")
def test_the_allreduce_code_runs_for_real_over_gloo_on_the_cpu():
    """The NCCL all-reduce's processes, rendezvous, sum check and bandwidth, with gloo standing in for NCCL."""
    probes = Path(smoke_probe_file()).parent
    code = (f"import sys, json; sys.path.insert(0, {str(probes)!r}); import smoke_probe\n"
            "if __name__ == '__main__': print(json.dumps(smoke_probe.allreduce(2, timeout_s=90, backend='gloo')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    ranks = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["sum_ok"] and r["busbw_gbps"] > 0 for r in ranks), ranks


def smoke_probe_file() -> str:
    import gpudoctor.host

    return str(Path(gpudoctor.host.PROBE_SCRIPT).with_name("smoke_probe.py"))


# -- a GPU in an exclusive compute mode, held by another process ---------------------------------------------------
THIRD_RUN_PYTHON = "/opt/torch/.venv/bin/python3"
BUSY_ERROR = "AcceleratorError: CUDA error: CUDA-capable device(s) is/are busy or unavailable"


def exclusive_h200(mode: str = "Exclusive_Process", code: int = 3) -> Evidence:
    """The real third H200 run, with its GPU set to an exclusive compute mode (in NVML's answer and in nvidia-smi's XML)
    and the torch smoke test turned away by it: CUDA error 46, the message of DIGITS#2005 and pytorch#3871, as torch 2.x
    words it. Each step of the training failed, as each opens the GPU anew."""
    evidence = fixture("h200-firecracker-2026-11-27-third-run")
    evidence.data["nvml"]["devices"][0]["compute_mode"] = code
    xml = command_key(["nvidia-smi", "-q", "-x"])
    evidence.data["commands"][xml]["stdout"] = evidence.data["commands"][xml]["stdout"].replace(
        "<compute_mode>Default</compute_mode>", f"<compute_mode>{mode}</compute_mode>")
    record = evidence.data["probes"][f"{THIRD_RUN_PYTHON} smoke torch cuda 30"]
    answer = json.loads(record["stdout"][len(PROBE_MARK):])
    device = answer["devices"][0]
    for step in ("fp32", "mixed", "memory", "matmul_tflops_bfloat16", "matmul_tflops_tf32", "copy_gbps", "pinned_gbps"):
        device[step] = {"error": BUSY_ERROR, "s": 0.01, **({"dtype": "bfloat16"} if step == "mixed" else {})}
    record["stdout"] = PROBE_MARK + json.dumps(answer) + "\n"
    return evidence


def test_a_gpu_in_exclusive_mode_held_by_another_process_is_a_warning_not_a_broken_gpu():
    result = judge(exclusive_h200(), "smoke.torch")
    assert result.status == Status.WARN
    assert result.summary == ("PyTorch was turned away by the GPU ('busy or unavailable'): GPU0 (0000:00:06.0) is in compute mode "
                              "Exclusive_Process, one process at a time, and another process held it")
    assert result.fix.startswith("nvidia-smi --query-compute-apps=gpu_bus_id,pid,process_name --format=csv   # which process holds it")
    assert "gpudoctor smoke --framework torch" in result.fix and "sudo nvidia-smi -i 0 -c DEFAULT" in result.fix
    assert judge(exclusive_h200(), "gpu.compute_mode").status == Status.WARN  # the cause, where it is judged


def test_busy_on_a_gpu_in_default_mode_stays_a_failure_that_names_both_suspects():
    evidence = exclusive_h200("Default", 0)  # only the training's answer changed: nothing explains it
    result = judge(evidence, "smoke.torch")
    assert result.status == Status.FAIL and result.summary.endswith("float32 training failed: " + BUSY_ERROR)
    assert result.fix.startswith("nvidia-smi --query-gpu=index,pci.bus_id,compute_mode --format=csv")
    assert "--query-compute-apps" in result.fix
