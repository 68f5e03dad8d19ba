"""Fit for training: the setup guide's choices (GPU memory, tensor cores, an environment) and the GPUs' state, on real captures.

The GTX 1050 laptop (4 GB, compute capability 6.1), the 8 x V100S server in training (32 GB, 7.0, with its processes)
and the H200 (141 GB, 9.0) are the public and recorded captures in fixtures/; the figures they are held to come from
gpudoctor/knowledge/advice.json (the guide, and NVIDIA's compute-capability tables).
"""

from __future__ import annotations

import doctest

from evidence_helpers import assert_pasteable, fixture, judge
from incident_ops import apply

from gpudoctor import gpustate

H200, V100S, GTX1050 = "h200-2026-11-26", "v100s-8gpu-training-460", "gtx1050-laptop-515"


def test_a_4_gb_gpu_is_named_with_its_memory_and_what_it_limits():
    result = judge(fixture(GTX1050), "advice.gpu_memory")
    assert result.status.value == "warn" and "GTX 1050" in result.summary and "4.3 GB" in result.summary
    assert "batch sizes" in result.summary and "gradient accumulation" in result.fix
    assert judge(fixture(H200), "advice.gpu_memory").status.value == "pass"
    assert judge(fixture(V100S), "advice.gpu_memory").status.value == "pass"


def test_tensor_cores_and_precisions_per_gpu():
    h200 = judge(fixture(H200), "advice.tensor_cores")
    assert h200.status.value == "pass" and "tensor cores, fp16, bf16, fp8" in h200.summary
    gtx = judge(fixture(GTX1050), "advice.tensor_cores")
    assert gtx.status.value == "warn" and "(compute capability 6.1) has no tensor cores" in gtx.summary
    assert judge(fixture(V100S), "advice.tensor_cores").status.value == "pass"


def test_a_precision_the_user_asked_for_that_a_gpu_lacks_warns():
    v100s = fixture(V100S)
    v100s.data["options"]["precision"] = ["bf16"]
    result = judge(v100s, "advice.tensor_cores")
    assert result.status.value == "warn" and "has no bf16" in result.summary and "(needs 8.0)" in result.summary
    assert "torch.float16" in result.fix
    h200 = fixture(H200)
    h200.data["options"]["precision"] = ["bf16", "fp8"]
    assert judge(h200, "advice.tensor_cores").status.value == "pass"


def test_frameworks_in_the_system_python_warn_with_a_venv_to_move_to():
    python = "/usr/bin/python3"
    ev = apply(fixture(H200), [
        {"op": "interpreter", "python": python, "copy_from": "/opt/torch/.venv/bin/python"},
        {"op": "distributions", "python": python, "venv": False, "conda": False, "executable": python, "version": "3.12.3",
         "add": [{"name": "torch", "version": "2.11.0", "location": "/usr/local/lib/python3.12/dist-packages"}]}])
    result = judge(ev, "advice.environment")
    assert result.status.value == "warn" and "system Python /usr/bin/python3" in result.summary
    assert result.fix.splitlines()[:2] == ["/usr/bin/python3 -m venv ~/venvs/train",
                                           "~/venvs/train/bin/python -m pip install torch==2.11.0   # the same versions, now in the venv"]
    assert_pasteable(result)


def test_pip_install_user_warns_too():
    python = "/opt/torch/.venv/bin/python"
    ev = apply(fixture(H200), [{"op": "distributions", "python": python, "user_site": "/root/.local/lib/python3.12/site-packages",
                                "add": [{"name": "torch", "version": "2.11.0", "location": "/root/.local/lib/python3.12/site-packages"}]}])
    result = judge(ev, "advice.environment")
    assert result.status.value == "warn" and "user site (pip install --user)" in result.summary and "uninstall -y --user torch" in result.fix


def test_the_gpu_state_from_nvml_where_nvidia_smi_was_not_asked():
    result = judge(fixture(V100S), "gpu.state")  # nvidia-smi -q -x only: memory, temperature, power and the training processes
    assert result.status.value == "pass" and result.summary == "8 GPU(s), 8 compute process(es)"
    # <power_draw>232.80 W</power_draw> and <power_limit>250.00 W</power_limit> in the capture's XML
    assert result.details[:2] == ("GPU0 Tesla V100S-PCIE-32GB: 30.9 of 31.7 GiB used, 66 °C, 233 W of 250 W", "  pid 37305 python: 30.9 GiB")
    h200 = judge(fixture(H200), "gpu.state")  # NVML: power too
    assert h200.details[0].startswith("GPU0 NVIDIA H200: ") and " W of 700 W" in h200.details[0]


def test_nvidia_smis_query_form_read():
    """The H200's own `nvidia-smi --query-gpu` answer (fixtures/h200-firecracker-2026-11-27/nvidia-smi-query-gpu.csv), in the
    noheader,nounits form gpudoctor asks for: the same values without the units."""
    line = "0, 00000000:00:06.0, NVIDIA H200, 0, 0, 0, 143771, 40, 78.53, 700.00, 345, 3201, 1980"
    row = gpustate.parse_query(line, gpustate.QUERY_GPU)[0]
    assert (row["memory.total"], row["temperature.gpu"], row["power.draw"], row["clocks.sm"], row["clocks.mem"]) == (143771, 40, 78.53, 345, 3201)
    assert gpustate.parse_query("0, 00000000:00:06.0, NVIDIA H200, [N/A], 0, 0, 143771, 40, [N/A], 700.00, 345, 3201, 1980",
                                gpustate.QUERY_GPU)[0]["utilization.gpu"] is None
    lines = gpustate.state_lines({"gpus": [row], "processes": []}, [{"index": 0, "name": "NVIDIA H200", "bus": "00:06.0"}])
    assert lines == ["GPU0 NVIDIA H200: 0 % busy, 0.0 of 140.4 GiB used, 40 °C, 79 W of 700 W, SM 345 MHz (max 1980), memory 3201 MHz"]


def test_docstring_samples():
    assert doctest.testmod(gpustate).failed == 0
