"""ONNX Runtime: a real CPU install probed here, and recorded answers of GPU installs from public threads.

The real tests run the onnxruntime installed with the test extra (the CPU package, as on the H200 capture's venv:
fixtures/h200-firecracker-2026-11-27/onnxruntime.txt) in a fresh venv that sees it through a .pth file. The GPU
cases replay the H200 capture with the onnxruntime probe's answer built from each thread's own log lines.
"""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_helpers import assert_pasteable, fixture, judge
from incident_ops import apply

ort = pytest.importorskip("onnxruntime")
PYTHON = "/opt/torch/.venv/bin/python"
PROVIDERS_GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def venv_seeing_onnxruntime(tmp_path: Path) -> Path:
    """A fresh venv whose site-packages reach this interpreter's (where the real onnxruntime is) through a .pth file."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    purelib = next(env.glob("lib/python*/site-packages"))
    (purelib / "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env


def gpudoctor_json(*args) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "check", "--format", "json", "--timeout", "60", *args],
                          capture_output=True, text=True, timeout=180)
    return proc.returncode, json.loads(proc.stdout)


def test_a_real_cpu_install_runs_the_hand_written_model(tmp_path):
    env = venv_seeing_onnxruntime(tmp_path)
    code, doc = gpudoctor_json("--python", str(env), "--only", "onnxruntime")
    facts = doc["facts"]["python_envs"]["interpreters"][0]["onnxruntime"]
    assert facts["version"] == ort.__version__ and facts["build"]["package"] == "onnxruntime"
    assert "CPUExecutionProvider" in facts["providers"] and facts["cpu_session"]["output"] == [3.0]
    results = {r["id"]: r for r in doc["results"]}
    assert results["onnxruntime.install"]["status"] == "pass" and "CPU build" in results["onnxruntime.install"]["summary"]
    assert results["onnxruntime.cuda"]["status"] == "skip" and code == 0


def test_both_packages_installed_fail_with_the_threads_fix(tmp_path):
    """yakhyo/uniface#77 (an H200: only Azure and CPU providers with onnxruntime 1.23.2 beside onnxruntime-gpu); fix from
    microsoft/onnxruntime#7748 (comment 844358537): uninstall both, install onnxruntime-gpu alone."""
    env = venv_seeing_onnxruntime(tmp_path)
    purelib = next(env.glob("lib/python*/site-packages"))
    info = purelib / "onnxruntime_gpu-1.23.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.23.2\n")
    (info / "INSTALLER").write_text("pip\n")
    code, doc = gpudoctor_json("--python", str(env), "--only", "onnxruntime")
    result = next(r for r in doc["results"] if r["id"] == "onnxruntime.install")
    assert code == 1 and result["status"] == "fail" and "CPU package's files win" in result["summary"]
    python = str(env / "bin" / "python")
    assert result["fix"].splitlines() == [
        f"{python} -m pip uninstall -y onnxruntime onnxruntime-gpu   # remove both: each deletes the other's files",
        f"{python} -m pip install onnxruntime-gpu==1.23.2   # it has the CPU provider too"]


def gpu_install(version: str, cuda: str, answer: dict, dists: list[dict]):
    """The H200 capture with onnxruntime-gpu in its venv, the probe answering as recorded."""
    build = {"package": "onnxruntime-gpu", "cuda_version": cuda}
    base = {"version": version, "build": build, "device": "GPU", "providers": PROVIDERS_GPU,
            "cpu_session": {"providers": ["CPUExecutionProvider"], "output": [3.0], "log": []}, "loaded_libs": []}
    add = [{"name": "onnxruntime-gpu", "version": version, "location": "/opt/torch/.venv/lib/python3.12/site-packages"}] + dists
    return apply(fixture("h200-2026-11-26"), [
        {"op": "distributions", "python": PYTHON, "add": add},
        {"op": "probe", "what": "onnxruntime", "python": PYTHON, "answer": {**base, **answer}}])


def fell_back(*log: str) -> dict:
    return {"cuda_session": {"providers": ["CPUExecutionProvider"], "output": [3.0], "log": list(log)}}


NO_CUDNN9 = ("[E:onnxruntime:Default, provider_bridge_ort.cc:2195 TryGetProviderInfo_CUDA] /onnxruntime_src/onnxruntime/core/session/"
             "provider_bridge_ort.cc:1778 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : "
             "Failed to load library libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open shared object file: "
             "No such file or directory")


def test_cudnn_from_the_wheel_found_only_after_preload_warns():
    """microsoft/onnxruntime#25609: onnxruntime-gpu 1.22.0 with nvidia-cudnn-cu12 installed still misses libcudnn.so.9;
    preload_dlls() (or import torch first, #21684) loads it."""
    answer = {**fell_back(NO_CUDNN9), "preload": True,
              "cuda_session_after_preload": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"], "output": [3.0], "log": []}}
    ev = gpu_install("1.22.0", "12.9", answer, [{"name": "nvidia-cudnn-cu12", "version": "9.11.0.98", "location": "x"}])
    result = judge(ev, "onnxruntime.cuda")
    assert result.status.value == "warn" and "preload_dlls" in result.summary and "onnxruntime.preload_dlls()" in result.fix


def test_a_missing_cudnn_without_preload_names_the_wheel():
    ev = gpu_install("1.20.1", "12.2", fell_back(NO_CUDNN9), [])  # memoavatar/memo#13 era: no preload_dlls before 1.21
    result = judge(ev, "onnxruntime.cuda")
    assert result.status.value == "fail" and "libcudnn.so.9 cannot be loaded" in result.summary
    assert result.fix.startswith(f"{PYTHON} -m pip install 'nvidia-cudnn-cu12==9.*'")
    assert_pasteable(result)


def test_a_cuda_11_build_on_a_cuda_12_environment_names_both():
    """microsoft/onnxruntime#21684 and infiniflow/ragflow#905: a CUDA 11 build looks for libcublasLt.so.11 where CUDA 12 is
    installed; the maintainer's table: onnxruntime-gpu 1.19.2 for CUDA 12.x and cuDNN 9.x."""
    log = ("[E:onnxruntime:Default, provider_bridge_ort.cc:1548 TryGetProviderInfo_CUDA] ... [ONNXRuntimeError] : 1 : FAIL : Failed to "
           "load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.11: cannot open shared object file: No such file or directory")
    ev = gpu_install("1.16.3", "11.8", fell_back(log), [{"name": "nvidia-cublas-cu12", "version": "12.1.3.1", "location": "x"}])
    result = judge(ev, "onnxruntime.cuda")
    assert result.status.value == "fail"
    assert "loads CUDA 11 (libcublasLt.so.11)" in result.summary and "CUDA 12 (nvidia-cublas-cu12 12.1.3.1)" in result.summary
    assert result.fix == f"{PYTHON} -m pip install --force-reinstall 'onnxruntime-gpu>=1.19'   # built for CUDA 12, as this environment"


def test_a_cudnn_8_build_beside_cudnn_9_names_both():
    """microsoft/onnxruntime#19616: onnxruntime-gpu 1.17.0 wants libcudnn.so.8 on a CUDA 12 machine with cuDNN 9."""
    log = ("[E:onnxruntime:Default, provider_bridge_ort.cc:1546 TryGetProviderInfo_CUDA] ... Failed to load library "
           "libonnxruntime_providers_cuda.so with error: libcudnn.so.8: cannot open shared object file: No such file or directory")
    ev = gpu_install("1.17.0", "11.8", fell_back(log), [{"name": "nvidia-cudnn-cu12", "version": "9.1.0.70", "location": "x"}])
    result = judge(ev, "onnxruntime.cuda")
    assert result.status.value == "fail" and "loads cuDNN 8 (libcudnn.so.8)" in result.summary and "cuDNN 9" in result.summary


def test_a_gpu_build_that_runs_on_the_gpu_passes():
    answer = {"cuda_session": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"], "output": [3.0], "log": []}}
    result = judge(gpu_install("1.22.0", "12.9", answer, []), "onnxruntime.cuda")
    assert result.status.value == "pass" and "CUDA 12, cuDNN 9" in result.summary


def test_captures_without_an_onnxruntime_probe_skip():
    assert judge(fixture("h200-2026-11-26"), "onnxruntime.install").status.value == "skip"
