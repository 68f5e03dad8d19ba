"""The python, torch and cuda areas: real probes of real interpreters, and the H200's recorded torch facts."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys

import pytest
from evidence_helpers import FIXTURES, command, env, file, fixture, judge, listdir, nvml_device, this_machine

def _cpu_torch_here() -> bool:
    """torch 2.13.0's CPU build in this interpreter (looked up, never imported: gpudoctor's own rule); a GPU server's
    CUDA build is not what these tests judge."""
    try:
        return importlib.metadata.version("torch") == "2.13.0+cpu"
    except importlib.metadata.PackageNotFoundError:
        return False


TORCH_HERE = _cpu_torch_here()
needs_torch = pytest.mark.skipif(not TORCH_HERE, reason="torch==2.13.0 (CPU) is not installed here; .ci/run installs it")


def check_json(*args, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "check", "--format", "json", *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode in (0, 1, 2), proc.stderr
    return proc, json.loads(proc.stdout) if proc.stdout else None


def by_id(document):
    return {r["id"]: r for r in document["results"]}


def fake_python(tmp_path, body: str) -> str:
    path = tmp_path / "python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


# real interpreters ----------------------------------------------------------------------------
@pytest.mark.live
@needs_torch
def test_real_cpu_torch_is_named_with_a_command_that_installs_a_cuda_build():
    """The probe of a real CPU torch, on whatever machine runs the tests: which CUDA build the fix names depends on its
    driver (none here, 580 on a GPU server), so only that it names one; the lines per driver branch are judged on
    recorded evidence (test_real_cpu_builds_of_all_three_frameworks_are_named)."""
    proc, document = check_json("--python", sys.executable, "--only", "torch,python")
    results = by_id(document)
    build = results["torch.build"]
    assert build["status"] == "fail" and "+cpu" in build["summary"] and "CPU-only" in build["summary"]
    assert f"{sys.executable} -m pip install --force-reinstall torch==2.13.0 --index-url https://download.pytorch.org/whl/cu1" in build["fix"]
    assert results["python.interpreter"]["status"] == "pass" and "--python" in results["python.interpreter"]["summary"]
    facts = document["facts"]["python_envs"]["interpreters"][0]["torch"]
    assert facts["version"]["value"].startswith("2.13.0") and facts["version_cuda"]["value"] is None
    assert "torch" not in sys.modules  # judged in its own process: the test process never imported it


def test_nvcc_is_found_and_reported():
    # the H200's `nvcc --version`: "Cuda compilation tools, release 13.0, V13.0.88", at /usr/local/cuda/bin/nvcc
    assert judge(fixture("h200-firecracker-2026-11-27"), "cuda.toolkits").summary == "nvcc 13.0 at /usr/local/cuda/bin/nvcc"
    ev = this_machine()
    ev.data["which"]["nvcc"] = None
    command(ev, "nvcc --version", rc=None, error="command not found")
    listdir(ev, "/usr/local", ["bin", "etc", "games", "include", "lib", "man", "sbin", "share", "src"])
    result = judge(ev, "cuda.toolkits")
    assert result.status.value == "skip" and "no CUDA toolkit" in result.summary


@pytest.mark.parametrize("body, words", [
    ("kill -SEGV $$", "crashed (SIGSEGV)"),
    ("kill -ABRT $$", "crashed (SIGABRT)"),
    ("echo 'Welcome to the lab python!'", "answered garbage"),
])
def test_a_broken_interpreter_is_a_finding_named_with_its_signal(tmp_path, body, words):
    python = fake_python(tmp_path, body)
    proc, document = check_json("--python", python, "--only", "python,torch")
    results = by_id(document)
    assert results["python.interpreter"]["status"] == "fail" and words in results["python.interpreter"]["summary"]
    assert results["torch.build"]["status"] == "skip" and "Traceback" not in proc.stderr


def test_a_hanging_interpreter_costs_only_the_timeout(tmp_path):
    python = fake_python(tmp_path, "exec sleep 60")
    proc, document = check_json("--python", python, "--only", "python.interpreter", "--timeout", "1")
    assert "hung when probed (timed out at its 1 s limit)" in by_id(document)["python.interpreter"]["summary"]


def test_a_missing_interpreter_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "check", "--python", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "does not exist" in proc.stderr


# the H200's recorded torch facts --------------------------------------------------------------
def h200():
    return fixture("h200-2026-11-26")


def torch_facts(ev) -> dict:
    return json.loads(ev.data["probes"]["/opt/torch/.venv/bin/python torch"]["stdout"])


def set_torch(ev, **changes):
    facts = torch_facts(ev)
    for key, val in changes.items():
        facts[key] = {"value": val, "s": 0.0} if not isinstance(val, dict) else val
    ev.data["probes"]["/opt/torch/.venv/bin/python torch"]["stdout"] = json.dumps(facts)
    return ev


def test_the_h200s_torch_is_healthy():
    ev = h200()
    for check_id in ("torch.build", "torch.cuda_available", "torch.arch_list", "torch.device_count", "cuda.driver_runtime"):
        assert judge(ev, check_id).status.value == "pass", check_id
    assert judge(ev, "torch.build").summary == "torch 2.11.0+cu130 (CUDA 13.0, NCCL 2.28.9) in /opt/torch/.venv/bin/python"


def test_driver_too_old_for_the_wheel():
    # "The NVIDIA driver on your system is too old (found version 12080)": a cu130 wheel on a CUDA 12.8 driver
    ev = h200()
    ev.data["nvml"]["cuda_driver_version"] = 12080
    result = judge(ev, "cuda.driver_runtime")
    assert result.status.value == "fail" and "CUDA 13.0 (>= 580.65.06)" in result.summary
    assert "/opt/torch/.venv/bin/python -m pip install --force-reinstall torch==2.11.0 --index-url https://download.pytorch.org/whl/cu128" in result.fix


def test_volta_on_a_cu130_build_has_no_kernel_image():
    ev = h200()
    nvml_device(ev, name="Tesla V100-SXM2-32GB", cuda_compute_capability=[7, 0])
    result = judge(ev, "torch.arch_list")
    assert result.status.value == "fail" and "sm_70" in result.summary and "no kernel image" in result.summary
    assert result.fix.endswith("torch==2.11.0 --index-url https://download.pytorch.org/whl/cu126")


def test_compatibility_within_a_major_but_not_across():
    ev = h200()
    nvml_device(ev, name="NVIDIA RTX PRO 6000 Blackwell", cuda_compute_capability=[12, 0])
    assert judge(ev, "torch.arch_list").status.value == "pass"
    # pytorch/pytorch#150733: an sm_120 GPU on a build that stops at sm_90 (PTX for 9.0 does not rescue it)
    set_torch(ev, arch_list=["sm_75", "sm_80", "sm_86", "sm_90", "compute_90"])
    result = judge(ev, "torch.arch_list")
    assert result.status.value == "fail" and "whl/cu130" in result.fix
    nvml_device(ev, name="NVIDIA L4", cuda_compute_capability=[8, 9])  # sm_86 SASS runs on sm_89
    assert judge(ev, "torch.arch_list").status.value == "pass"


def test_cuda_build_that_cannot_initialise_keeps_the_reason():
    ev = set_torch(h200(), is_available={"value": False, "s": 0.0, "warnings": [
        "CUDA initialization: The NVIDIA driver on your system is too old (found version 12080). Please update your GPU driver"]})
    result = judge(ev, "torch.cuda_available")
    assert result.status.value == "fail" and "too old (found version 12080)" in result.summary
    assert "torch.cuda.init()" in result.fix


def test_rocm_build_on_an_nvidia_machine():
    ev = set_torch(h200(), version="2.11.0+rocm6.4", version_hip="6.4.43482", version_cuda=None)
    result = judge(ev, "torch.build")
    assert result.status.value == "fail" and "ROCm" in result.summary and "whl/cu130" in result.fix


def test_torch_sees_fewer_gpus_than_nvml():
    ev = h200()
    ev.data["nvml"]["devices"].append(dict(ev.data["nvml"]["devices"][0], uuid="GPU-second"))
    assert judge(ev, "torch.device_count").status.value == "warn"
    env(ev, CUDA_VISIBLE_DEVICES="0")
    assert "as CUDA_VISIBLE_DEVICES=0 asks" in judge(ev, "torch.device_count").summary


# cuda toolkits --------------------------------------------------------------------------------
def test_cuda_home_pointing_nowhere_or_at_another_toolkit():
    ev = h200()
    env(ev, CUDA_HOME="/usr/local/cuda-12.1")
    ev.data["stats"]["/usr/local/cuda-12.1"] = None
    result = judge(ev, "cuda.cuda_home")
    assert result.status.value == "fail" and result.fix.startswith("unset CUDA_HOME")
    ev.data["stats"]["/usr/local/cuda-12.1"] = {"kind": "dir"}
    result = judge(ev, "cuda.cuda_home")  # vllm-project/vllm#1060: nvcc and torch's CUDA from two toolkits
    assert result.status.value == "warn" and "export PATH=/usr/local/cuda-12.1/bin:$PATH" in result.fix


def test_gcc_newer_than_nvcc_accepts():
    # "#error -- unsupported GNU version! gcc versions later than 13 are not supported!" (NVlabs/instant-ngp#1562)
    ev = h200()
    command(ev, "nvcc --version", stdout="Cuda compilation tools, release 12.4, V12.4.131\n")
    command(ev, "gcc -dumpfullversion -dumpversion", stdout="14.2.0\n")
    result = judge(ev, "cuda.host_compiler")
    assert result.status.value == "warn" and "gcc < 14" in result.summary
    assert "sudo apt-get install -y gcc-13 g++-13" in result.fix and "CUDAHOSTCXX=g++-13" in result.fix


# cuDNN: the H200 capture's README case, a system cuDNN 9.14 beside the wheel's 9.19 -----------------
SYSTEM_CUDNN = "/usr/lib/x86_64-linux-gnu/libcudnn.so.9"
MISMATCH = ("RuntimeError: cuDNN version incompatibility: PyTorch was compiled against (9, 19, 0) but found runtime "
            "version (9, 14, 0). PyTorch already comes bundled with cuDNN.")


def with_system_cudnn(ev):
    command(ev, "ldconfig -p", stdout=f"2 libs found in cache `/etc/ld.so.cache'\n\tlibcudnn.so.9 (libc6,x86-64) => {SYSTEM_CUDNN}\n")
    ev.data["realpaths"][SYSTEM_CUDNN] = SYSTEM_CUDNN + ".14.0"
    return ev


def test_the_wheels_cudnn_loaded_and_a_system_copy_waiting():
    ev = with_system_cudnn(h200())
    assert judge(ev, "cudnn.torch").status.value == "pass"
    result = judge(ev, "cudnn.hazard")
    assert result.status.value == "warn" and "9.19.0" in result.summary
    assert result.details == (f"{SYSTEM_CUDNN} (9.14.0, the linker cache)",)
    assert "/usr/lib/x86_64-linux-gnu/libcudnn.so.9 (9.14.0" in judge(ev, "cudnn.inventory").details[0]


def test_torch_loading_the_system_cudnn_is_named_with_the_file():
    ev = with_system_cudnn(h200())
    facts = torch_facts(ev)
    facts["loaded_libs"] = [p for p in facts["loaded_libs"] if "libcudnn" not in p] + [SYSTEM_CUDNN]
    ev.data["probes"]["/opt/torch/.venv/bin/python torch"]["stdout"] = json.dumps(facts)
    set_torch(ev, cudnn_runtime_raw=[9, 14, 0], cudnn_version={"error": MISMATCH, "s": 0.0})
    result = judge(ev, "cudnn.torch")
    assert result.status.value == "fail" and f"loads 9.14.0 from {SYSTEM_CUDNN}" in result.summary
    assert "pip install --force-reinstall 'nvidia-cudnn-cu13==9.19.*'" in result.fix
    env(ev, LD_LIBRARY_PATH="/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu")
    ev.data["listdirs"].update({"/usr/local/nvidia/lib64": [], "/usr/lib/x86_64-linux-gnu": ["libcudnn.so.9"]})
    assert judge(ev, "cudnn.torch").fix.startswith("export LD_LIBRARY_PATH=/usr/local/nvidia/lib64   # drop /usr/lib/x86_64-linux-gnu")


def test_a_foreign_cudnn_is_traced_to_its_ld_library_path_entry_through_links():
    # pytorch/pytorch#119989: LD_LIBRARY_PATH names /usr/local/cuda/lib64, a link; /proc/self/maps shows the resolved file
    ev = with_system_cudnn(h200())
    real = "/usr/local/cuda-12.3/targets/x86_64-linux/lib"
    facts = torch_facts(ev)
    facts["loaded_libs"] = [p for p in facts["loaded_libs"] if "libcudnn" not in p] + [f"{real}/libcudnn.so.9.14.0"]
    ev.data["probes"]["/opt/torch/.venv/bin/python torch"]["stdout"] = json.dumps(facts)
    set_torch(ev, cudnn_runtime_raw=[9, 14, 0], cudnn_version={"error": MISMATCH, "s": 0.0})
    env(ev, LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/nvidia/lib64")
    ev.data["listdirs"].update({"/usr/local/cuda/lib64": ["libcudnn.so.9", "libcudnn.so.9.14.0"], "/usr/local/nvidia/lib64": []})
    ev.data["realpaths"]["/usr/local/cuda/lib64"] = real
    result = judge(ev, "cudnn.torch")
    assert result.fix.startswith("export LD_LIBRARY_PATH=/usr/local/nvidia/lib64   # drop /usr/local/cuda/lib64")


def test_pip_check_on_the_distributions_python_names_its_packages():
    # tensorflow/tensorflow#79370 (PEP 668 on Ubuntu 24.04): the system Python takes apt's packages, not pip's
    ev = h200()
    ev.data["options"] = {"python": ["/usr/bin/python3"]}
    ev.data["probes"]["/usr/bin/python3 env"] = {"answer": {
        "python": {"version": "3.12.3", "venv": False, "conda": False, "user_site": None, "externally_managed": True, "pip": True},
        "distributions": [], "modules": {}}}
    command(ev, "/usr/bin/python3 -m pip check", rc=1, stdout="keras 3.6.0 requires namex, which is not installed.\n")
    file(ev, "/etc/os-release", 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n')
    result = judge(ev, "python.pip_check")
    assert result.status.value == "warn" and result.fix.startswith("sudo apt-get install -y python3-namex")
    assert "python3 -m venv" in result.fix


def test_a_toolkit_on_ld_library_path_ahead_of_the_wheels():
    # ragflow#4466 / pytorch#134929: /usr/local/cuda-12.1/lib64 on LD_LIBRARY_PATH shadows nvidia-nvjitlink-cu12
    ev = this_machine()
    env(ev, LD_LIBRARY_PATH="/usr/local/cuda-12.1/lib64:/opt/intel/lib")
    ev.data["listdirs"].update({"/usr/local/cuda-12.1/lib64": ["libcudart.so.12", "libnvJitLink.so.12"], "/opt/intel/lib": []})
    key = next(k for k in ev.data["probes"] if k.endswith(" env"))
    env_answer = json.loads(ev.data["probes"][key]["stdout"].split(" ", 1)[1])
    env_answer["distributions"].append({"name": "nvidia-nvjitlink-cu12", "version": "12.4.127", "location": "/venv/lib", "installer": "pip"})
    ev.data["probes"][key]["stdout"] = "GPUDOCTOR-PROBE " + json.dumps(env_answer)
    result = judge(ev, "cuda.ld_library_path")
    assert result.status.value == "warn" and result.fix.startswith("export LD_LIBRARY_PATH=/opt/intel/lib")
    assert "/usr/local/cuda-12.1/lib64: libcudart.so.12, libnvJitLink.so.12" in result.details


# TensorFlow and JAX: real CPU installs, recorded; the H200's recorded JAX --------------------------
def cpu_venvs():
    return fixture("cpu-framework-venvs-2026-11-26")


def test_real_cpu_builds_of_all_three_frameworks_are_named():
    ev = cpu_venvs()
    tf = judge(ev, "tensorflow.build")
    assert tf.status.value == "fail" and "TensorFlow 2.21.0" in tf.summary and "CPU-only" in tf.summary
    assert tf.fix == ("/tmp/tfvenv/bin/python -m pip uninstall -y tensorflow-cpu\n"
                      "/tmp/tfvenv/bin/python -m pip install 'tensorflow[and-cuda]==2.21.0'")
    jax = judge(ev, "jax.install")
    assert jax.status.value == "fail" and "jax 0.10.2" in jax.summary and "no CUDA plugin" in jax.summary
    assert '# driver >= 580, GPUs sm_75+: /tmp/jaxvenv/bin/python -m pip install -U "jax[cuda13]"' in jax.fix
    torch = judge(ev, "torch.build")  # no driver there: a line per driver branch, CUDA 13.0 from 580.65.06 (its release notes)
    assert "2.13.0+cpu" in torch.summary and torch.fix.splitlines()[1:] == [
        "# driver >= 580.65.06: /tmp/torchvenv/bin/python -m pip install --force-reinstall torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130",
        "# driver >= 525.60.13: /tmp/torchvenv/bin/python -m pip install --force-reinstall torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"]
    assert judge(ev, "python.interpreter").summary == "3 interpreters judged"
    assert judge(ev, "python.pip_check").status.value == "pass"


def test_the_h200s_jax_runs_on_the_gpu():
    ev = h200()
    assert judge(ev, "jax.install").summary == "jax 0.11.2 with a CUDA backend in /opt/torch/.venv/bin/python"
    assert judge(ev, "jax.backend").summary == "JAX runs on the GPU backend with 1 device(s)"


def test_jax_falling_back_to_the_cpu_says_why():
    # the capture's own probes/jax-cuda-visible-devices-empty.txt: JAX blames a missing CUDA jaxlib, the real cause is cuInit
    ev = h200()
    stderr = (FIXTURES / "h200-2026-11-26/probes/jax-cuda-visible-devices-empty.txt").read_text()
    ev.data["probes"]["/opt/torch/.venv/bin/python jax"] = {
        "answer": {"jax": "0.11.2", "jaxlib": "0.11.2", "backend": "cpu", "devices": ["TFRT_CPU_0"]}, "stderr": stderr}
    result = judge(ev, "jax.backend")
    assert result.status.value == "fail" and "CUDA_ERROR_NO_DEVICE" in result.summary


def _jax_env(ev, **dists):
    key = "/tmp/jaxvenv/bin/python env"
    answer = json.loads(ev.data["probes"][key]["stdout"].split(" ", 1)[1])
    answer["distributions"] += [{"name": n.replace("_", "-"), "version": v, "location": "/tmp/jaxvenv/lib", "installer": "pip"}
                                for n, v in dists.items()]
    ev.data["probes"][key]["stdout"] = "GPUDOCTOR-PROBE " + json.dumps(answer)
    return ev


def test_jax_packages_of_different_versions():
    # jax-ml/jax#24901: a downgraded jax beside a newer plugin; 'Mismatched PJRT plugin PJRT API version' or a segfault
    ev = _jax_env(cpu_venvs(), jax_cuda12_plugin="0.11.0", jax_cuda12_pjrt="0.11.0")
    result = judge(ev, "jax.install")
    assert result.status.value == "fail" and "jax 0.10.2, jax-cuda12-pjrt 0.11.0" in result.summary


def test_tensorflow_cuda_build_that_cannot_load_its_libraries():
    # tensorflow/tensorflow#60854: "Could not load dynamic library 'libcudnn.so.8'" then an empty GPU list
    ev = h200()
    ev.data["probes"]["/opt/torch/.venv/bin/python tensorflow"] = {
        "answer": {"version": "2.15.0", "build": {"is_cuda_build": True, "cuda_version": "12.2", "cudnn_version": "8"}, "gpus": []},
        "stderr": "W tensorflow/stream_executor/platform/default/dso_loader.cc:64] Could not load dynamic library 'libcudnn.so.8'; "
                  "dlerror: libcudnn.so.8: cannot open shared object file: No such file or directory\n"
                  "W tensorflow/core/common_runtime/gpu/gpu_device.cc:1956] Cannot dlopen some GPU libraries.\n"}
    assert judge(ev, "tensorflow.build").summary.startswith("TensorFlow 2.15.0 built for CUDA 12.2, cuDNN 8")
    result = judge(ev, "tensorflow.gpus")
    assert result.status.value == "fail" and "lists 0 of 1 GPUs" in result.summary and len(result.details) == 2
    assert "'tensorflow[and-cuda]==2.15.0'" in result.fix


# conda: the package records conda keeps in <prefix>/conda-meta ----------------------------------
CONDA_ENV = "/opt/conda/envs/train"
CONDA_META = {  # file names and channels as conda writes them (build strings of the real packages)
    "pytorch-2.5.1-py3.11_cuda12.4_cudnn9.1.0_0.json": "https://conda.anaconda.org/pytorch/linux-64",
    "pytorch-cuda-12.4-hc786d27_7.json": "https://conda.anaconda.org/pytorch/linux-64",
    "cuda-version-12.4-h3060b56_3.json": "https://conda.anaconda.org/conda-forge/noarch",
    "cuda-cudart-12.4.127-0.json": "https://conda.anaconda.org/nvidia/linux-64",
    "python-3.11.10-hc5c86c4_3_cpython.json": "https://conda.anaconda.org/conda-forge/linux-64",
}


def with_conda_env(ev):
    env(ev, CONDA_PREFIX=CONDA_ENV)
    ev.data["listdirs"][f"{CONDA_ENV}/conda-meta"] = sorted(CONDA_META) + ["history"]
    for name, channel in CONDA_META.items():
        ev.data["files"][f"{CONDA_ENV}/conda-meta/{name}"] = {"text": json.dumps({"channel": channel})}
    return ev


def test_no_conda_here_is_a_skip_with_the_reason():
    result = judge(this_machine(), "conda.env")  # recorded without conda, mamba or micromamba on PATH
    assert result.status.value == "skip" and "no conda, mamba or micromamba" in result.summary


def test_conda_env_mixing_channels_and_the_ended_pytorch_channel():
    ev = with_conda_env(h200())
    ev.data["which"].update({"conda": "/opt/conda/bin/conda", "mamba": None, "micromamba": None})
    assert "conda at /opt/conda/bin/conda" in judge(ev, "conda.env").summary
    result = judge(ev, "conda.channels")
    assert result.status.value == "warn" and "last release is 2.5" in result.summary
    assert "pytorch-cuda 12.4 from pytorch" in result.details and "conda config --set channel_priority strict" in result.fix
    assert judge(ev, "conda.cuda_packages").status.value == "pass"  # CUDA 12.4 packages on a CUDA 13.0 driver
    ev.data["listdirs"][f"{CONDA_ENV}/conda-meta"].append("cuda-nvcc-12.4.131-0.json")
    ev.data["files"][f"{CONDA_ENV}/conda-meta/cuda-nvcc-12.4.131-0.json"] = {"text": json.dumps({"channel": "https://conda.anaconda.org/nvidia/linux-64"})}
    assert f"{CONDA_ENV}: cuda-nvcc 12.4.131" in judge(ev, "cuda.toolkits").details


def test_conda_cuda_packages_newer_than_the_driver():
    # pytorch/pytorch#35270: "feature:/linux-64::__cuda==10.2=0" conflicts; here cuda-version 12.4 on a CUDA 11.8 driver
    ev = with_conda_env(h200())
    ev.data["nvml"]["cuda_driver_version"] = 11080
    result = judge(ev, "conda.cuda_packages")
    assert result.status.value == "fail" and "cuda-version 12.4" in result.summary
    assert result.fix.startswith(f"conda install -p {CONDA_ENV} -c conda-forge 'cuda-version=11.8'")


# python: the env probe's answers from the real CPU venvs, changed only where an incident differs ----
def _env_answer(ev, python):
    return json.loads(ev.data["probes"][f"{python} env"]["stdout"].split(" ", 1)[1])


def _set_env_answer(ev, python, answer):
    ev.data["probes"][f"{python} env"]["stdout"] = "GPUDOCTOR-PROBE " + json.dumps(answer)


def test_torch_in_the_user_site_shadows_the_env():
    # computational-cell-analytics/micro-sam#953: torch imported from ~/.local while a conda env is active
    ev = cpu_venvs()
    answer = _env_answer(ev, "/tmp/torchvenv/bin/python")
    answer["python"].update(user_site="/home/alice/.local/lib/python3.11/site-packages", user_site_enabled=True)
    answer["distributions"].append({"name": "torch", "version": "2.4.0", "installer": "pip",
                                    "location": "/home/alice/.local/lib/python3.11/site-packages"})
    _set_env_answer(ev, "/tmp/torchvenv/bin/python", answer)
    result = judge(ev, "python.user_site")
    assert result.status.value == "warn" and "export PYTHONNOUSERSITE=1" in result.fix
    duplicate = judge(ev, "python.duplicates")
    assert duplicate.status.value == "warn" and "torch is installed 2 times" in duplicate.summary
    assert duplicate.fix.startswith("/tmp/torchvenv/bin/python -m pip uninstall -y torch")


def test_pip_check_names_what_to_install():
    ev = cpu_venvs()
    key = next(k for k in ev.data["commands"] if k.startswith("/tmp/torchvenv/bin/python"))
    ev.data["commands"][key].update(rc=1, stdout="torchvision 0.20.0 has requirement torch==2.5.0, but you have torch 2.13.0+cpu.\n")
    result = judge(ev, "python.pip_check")
    assert result.status.value == "warn" and result.fix.startswith("/tmp/torchvenv/bin/python -m pip install 'torch==2.5.0'")


def test_a_pip_check_that_timed_out_is_named_with_its_limit():
    ev = cpu_venvs()
    key = next(k for k in ev.data["commands"] if k.startswith("/tmp/torchvenv/bin/python"))
    ev.data["commands"][key].update(rc=None, stdout="", error="timed out", duration_s=10.0021)
    result = judge(ev, "python.pip_check")
    assert result.status.value == "skip" and result.summary == "`pip check` did not run in /tmp/torchvenv/bin/python (timed out at its 10 s limit)"


def test_an_import_that_timed_out_is_named_with_its_limit_and_a_way_to_allow_more():
    """The real CPU torch venv, its torch probe stopped at the run's 10 s limit (an import stalled on a network file
    system, or only slow on a cold file cache): the limit is named, and the fix finds the module it stalls in."""
    ev = cpu_venvs()
    ev.data["probes"]["/tmp/torchvenv/bin/python torch"] = {
        "argv": ["/tmp/torchvenv/bin/python", "framework_probe.py", "torch"], "rc": None, "stdout": "", "stderr": "",
        "duration_s": 10.0013, "error": "timed out", "truncated": False}
    result = judge(ev, "torch.build")
    assert result.status.value == "fail"
    assert result.summary == "`import torch` in /tmp/torchvenv/bin/python did not finish (timed out at its 10 s limit)"
    assert result.fix.startswith("/tmp/torchvenv/bin/python -X importtime -c 'import torch' 2>&1 | tail -20")
    assert result.fix.endswith("passes with a longer limit: gpudoctor check --timeout 60")


def test_no_interpreter_to_judge():
    ev = this_machine()
    ev.data["which"]["python3"] = None
    for name in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        ev.data["env"].pop(name, None)
    ev.data["options"] = {}
    result = judge(ev, "python.interpreter")
    assert result.status.value == "warn" and result.fix.startswith("gpudoctor check --python")


def test_jax_cuda13_plugin_on_a_volta_gpu():
    # JAX docs: "On CUDA 13, JAX supports NVIDIA GPUs that have SM version 7.5 or newer" (failure mode 42)
    ev = _jax_env(cpu_venvs(), jax_cuda13_plugin="0.10.2", jax_cuda13_pjrt="0.10.2")
    ev.data["nvml"] = fixture("h200-2026-11-26").data["nvml"]
    ev.data["nvml"]["devices"][0].update(name="Tesla V100-SXM2-32GB", cuda_compute_capability=[7, 0])
    result = judge(ev, "jax.install")
    assert result.status.value == "fail" and "does not run on this driver" in result.summary
    assert 'pip install -U "jax[cuda12]"' in result.fix and "uninstall -y jax-cuda13-pjrt jax-cuda13-plugin" in result.fix


def test_the_probe_itself_runs_on_python_38():
    import glob
    import os
    import shutil

    candidates = [shutil.which("python3.8")] + glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8"))
    for python in filter(None, candidates):
        proc = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2] == (3, 8))"], capture_output=True, text=True)
        if proc.stdout.strip() == "True":
            from gpudoctor.host import PROBE_SCRIPT

            out = subprocess.run([python, PROBE_SCRIPT, "env"], capture_output=True, text=True, timeout=60).stdout
            assert out.startswith("GPUDOCTOR-PROBE ") and '"version": "3.8' in out
            return
    pytest.skip("no Python 3.8 here to run the probe under")


def test_cupy_runtime_against_the_driver():
    ev = h200()  # the capture's CuPy 14.2.0: runtime 13020 (13.2) on a 13.0 driver, fine within CUDA 13
    assert "cupy CUDA 13.2" in judge(ev, "cuda.driver_runtime").summary
    ev.data["probes"]["/opt/torch/.venv/bin/python torch"]["stdout"] = json.dumps({"failed": "ModuleNotFoundError"})
    ev.data["nvml"]["cuda_driver_version"] = 12080
    result = judge(ev, "cuda.driver_runtime")
    assert result.status.value == "fail" and result.summary.startswith("cupy 14.2.0 needs a driver for CUDA 13.2 (>= 580.65.06)")


# driver lifecycle and the forward-compatibility package -------------------------------------------
def test_driver_branch_past_its_end_of_life():
    ev = h200()
    ev.data["files"]["/proc/driver/nvidia/version"]["text"] = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  535.230.02  Release Build"
    result = judge(ev, "driver.branch_support")  # R535 LTSB ended in June 2026; the capture is from November 2026
    assert result.status.value == "warn" and "end of life in 2026-06" in result.summary
    assert result.fix.startswith("sudo apt-get install -y nvidia-driver-")
    assert judge(h200(), "driver.branch_support").summary == "branch R580 (LTSB) is supported until 2028-06"


@pytest.mark.parametrize("version, status, words", [
    ("470.256.02", "warn", "branch R470 (LTSB), which reached end of life in 2024-07"),     # endoflife.date
    ("418.226.00", "warn", "branch R418 (LTSB), which reached end of life in 2022-03"),     # NVIDIA's 2021 lifecycle
    ("525.147.05", "warn", "branch R525 (Production Branch), which reached end of life in 2023-12"),
    ("590.44.01", "pass", "New Feature Branch: NVIDIA gives those no end-of-life date"),
])
def test_the_long_term_and_production_branches_people_still_run_have_lifecycle_rows(version, status, words):
    ev = h200()
    ev.data["files"]["/proc/driver/nvidia/version"]["text"] = f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {version}  Release Build"
    result = judge(ev, "driver.branch_support")
    assert result.status.value == status and words in result.summary


def _compat_on_path(ev, libcuda: str):
    env(ev, LD_LIBRARY_PATH="/usr/local/cuda-13.2/compat")
    ev.data["listdirs"]["/usr/local/cuda-13.2/compat"] = ["libcuda.so", "libcuda.so.1", libcuda]
    ev.data["realpaths"]["/usr/local/cuda-13.2/compat/libcuda.so.1"] = f"/usr/local/cuda-13.2/compat/{libcuda}"
    ev.data["commands"]["ldconfig -p"] = {"rc": 0, "stdout": "0 libs found in cache\n", "stderr": "", "error": None}
    return ev


def test_forward_compat_on_data_center_and_geforce_gpus():
    ev = _compat_on_path(h200(), "libcuda.so.595.45.04")
    assert "in use from /usr/local/cuda-13.2/compat on data-center GPUs" in judge(ev, "cuda.forward_compat").summary
    nvml_device(ev, name="NVIDIA GeForce RTX 4090", cuda_compute_capability=[8, 9])
    result = judge(ev, "cuda.forward_compat")  # cudaErrorCompatNotSupportedOnDevice (804)
    assert result.status.value == "fail" and "804" in result.summary and result.fix.startswith("export LD_LIBRARY_PATH=")
    older = _compat_on_path(h200(), "libcuda.so.575.57.08")
    result = judge(older, "cuda.forward_compat")
    assert result.status.value == "fail" and "575.57.08" in result.summary and "803" in result.summary


def test_tensorflow_without_code_for_an_old_gpu():
    # tensorflow/tensorflow#60854's build info: ['sm_35', 'sm_50', 'sm_60', 'sm_70', 'sm_75', 'compute_80']
    ev = h200()
    ev.data["probes"]["/opt/torch/.venv/bin/python tensorflow"] = {"answer": {"version": "2.13.0", "gpus": ["/physical_device:GPU:0"],
        "build": {"is_cuda_build": True, "cuda_version": "11.8", "cudnn_version": "8",
                  "cuda_compute_capabilities": ["sm_35", "sm_50", "sm_60", "sm_70", "sm_75", "compute_80"]}}}
    assert judge(ev, "tensorflow.arch").status.value == "pass"  # sm_90 runs the compute_80 PTX
    nvml_device(ev, name="NVIDIA Tesla K10", cuda_compute_capability=[3, 0])
    result = judge(ev, "tensorflow.arch")
    assert result.status.value == "fail" and "sm_30" in result.summary and "device kernel image is invalid" in result.summary


def test_pytorch_from_conda_and_torch_from_pip_in_one_env():
    ev = with_conda_env(h200())
    ev.data["options"] = {"python": [f"{CONDA_ENV}/bin/python"]}
    ev.data["probes"][f"{CONDA_ENV}/bin/python env"] = {"answer": {
        "python": {"version": "3.11.10", "conda": True, "venv": False, "user_site": None},
        "distributions": [{"name": "torch", "version": "2.11.0", "location": f"{CONDA_ENV}/lib/python3.11/site-packages", "installer": "pip"}],
        "modules": {"torch": f"{CONDA_ENV}/lib/python3.11/site-packages/torch/__init__.py"}}}
    result = judge(ev, "conda.pip_mix")
    assert result.status.value == "warn" and "pytorch 2.5.1 from conda and torch 2.11.0 from pip" in result.summary
    # thousandbrainsproject/tbp.monty#385: pip's torch out, conda's pytorch back at the version the env asks for
    assert result.fix.splitlines()[:2] == [f"{CONDA_ENV}/bin/python -m pip uninstall -y torch   # pip's copy over conda's",
                                           f"conda install -p {CONDA_ENV} --force-reinstall 'pytorch=2.5.1'   # conda's own files back, the versions the env asks for"]
