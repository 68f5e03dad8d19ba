"""The command line as users and scripts drive it: exit codes, one-line errors, JSON, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import psutil
import pytest
from evidence_helpers import fixture, recorded_report

import gpudoctor
from gpudoctor import cli
from gpudoctor.loader import load_plugins

EXPECTED_IDS = [
    "system.os", "system.kernel", "system.kernel_headers", "system.secure_boot", "system.nouveau", "system.glibc",
    "system.resources", "system.disk", "system.shm", "system.build_tools", "system.container",
    "driver.loaded", "driver.module_flavor", "driver.nvml_matches_kernel", "driver.nvidia_smi", "driver.device_nodes",
    "driver.uvm", "driver.persistence", "driver.fabric_manager", "driver.container_cuda", "driver.branch_support",
    "gpu.present", "gpu.visible", "gpu.inventory", "gpu.ecc", "gpu.memory_health", "gpu.xid", "gpu.pcie_link", "gpu.thermal", "gpu.mig",
    "gpu.compute_mode", "gpu.processes", "gpu.visible_devices", "gpu.device_order", "gpu.p2p",
    "advice.gpu_memory", "advice.tensor_cores", "advice.environment", "gpu.state",
    "cuda.driver_runtime", "cuda.toolkits", "cuda.cuda_home", "cuda.host_compiler", "cuda.ld_library_path", "cuda.forward_compat", "cuda.ptx_compiler",
    "python.interpreter", "python.user_site", "python.duplicates", "python.pip_check", "python.framework_cuda",
    "torch.build", "torch.cuda_available", "torch.arch_list", "torch.device_count",
    "cudnn.inventory", "cudnn.torch", "cudnn.hazard",
    "tensorflow.build", "tensorflow.gpus", "tensorflow.arch",
    "jax.install", "jax.backend",
    "onnxruntime.install", "onnxruntime.cuda",
    "conda.env", "conda.cuda_packages", "conda.channels", "conda.pip_mix",
    "smoke.torch", "smoke.jax", "smoke.tensorflow", "smoke.speed", "smoke.multi_gpu",
]
SCHEMA = json.loads((Path(gpudoctor.__file__).parent / "schema.json").read_text())
ANSI = "\x1b["


def gpudoctor_cmd(*args, env=None, timeout=60, cwd=None):
    return subprocess.run([sys.executable, "-m", "gpudoctor", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def h200_archive(tmp_path_factory) -> Path:
    """The newest real H200 run (tests/fixtures/h200-firecracker-2026-11-27-third-run) as a report archive, for --from."""
    return recorded_report(fixture("h200-firecracker-2026-11-27-third-run"), tmp_path_factory.mktemp("h200") / "h200.tar.gz",
                           "vm", "2026-11-27T08:00:00+00:00")


def one_line_error(proc, words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpudoctor: error:") and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_version():
    proc = gpudoctor_cmd("--version")
    assert (proc.returncode, proc.stdout) == (0, f"gpudoctor {gpudoctor.__version__}\n")


def test_help_documents_the_exit_codes():
    proc = gpudoctor_cmd("--help")
    assert proc.returncode == 0 and "3 gpudoctor itself broke" in " ".join(proc.stdout.split())


@pytest.mark.parametrize("args, words", [
    (["check", "--only", "no.such.check"], "unknown check id or area: no.such.check"),
    (["check", "--skip", "gpu,nope"], "unknown check id or area: nope"),
    (["check", "--timeout", "abc"], "'abc' is not a valid float"),
    (["check", "--timeout", "0"], "--timeout"),
    (["check", "--format", "xml"], "'xml' is not one of"),
    (["check", "-o", "/no/such/dir/node.json"], "/no/such/dir/node.json"),
    (["frobnicate"], "No such command 'frobnicate'"),
])
def test_usage_errors_are_one_line_and_exit_2(args, words):
    one_line_error(gpudoctor_cmd(*args), words)


def test_unwritable_output_file_is_refused_before_collecting(tmp_path):
    if os.geteuid() == 0:  # root writes into a read-only folder; sysfs creates no file for anyone
        target = Path("/sys")
    else:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(0o500)
    one_line_error(gpudoctor_cmd("check", "-o", str(target / "node.json")), f"cannot write {target / 'node.json'}")


@pytest.mark.live
def test_json_to_a_file_follows_the_schema_and_matches_the_exit_code(tmp_path):
    out = tmp_path / "node.json"
    proc = gpudoctor_cmd("check", "--format", "json", "-o", str(out))
    document = json.loads(out.read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["exit_code"] == proc.returncode and proc.stdout == ""
    assert sum(document["summary"].values()) == len(document["results"])
    assert {"os", "driver", "nvml", "machine"} <= set(document["facts"])


def test_only_and_skip_select_by_id_or_area(h200_archive):
    only = json.loads(gpudoctor_cmd("check", "--from", str(h200_archive), "--format", "json", "--only", "system,gpu.xid").stdout)
    assert sorted(r["id"] for r in only["results"]) == ["gpu.xid"] + sorted(i for i in EXPECTED_IDS if i.startswith("system."))
    # every other area, those of installed plugins too (CI's last leg installs the example plugin): --skip, repeatable
    others = sorted({chk.area for plugin in load_plugins() for chk in plugin.checks} - {"system", "smoke", "driver"})
    skipped = json.loads(gpudoctor_cmd("check", "--from", str(h200_archive), "--format", "json", "--skip", "driver",
                                       "--skip", ",".join(others), "--no-smoke").stdout)
    assert {r["area"] for r in skipped["results"]} == {"system"}


def test_no_smoke_leaves_the_smoke_test_out(h200_archive):
    # the H200 trained in its recorded run (smoke.torch, smoke.jax and smoke.speed passed)
    every = json.loads(gpudoctor_cmd("check", "--from", str(h200_archive), "--format", "json").stdout)
    assert {r["id"]: r["status"] for r in every["results"] if r["area"] == "smoke"}["smoke.torch"] == "pass"
    without = json.loads(gpudoctor_cmd("check", "--from", str(h200_archive), "--format", "json", "--no-smoke").stdout)
    assert [r["id"] for r in without["results"]] == [r["id"] for r in every["results"] if r["area"] != "smoke"]


def test_plain_text_when_piped_or_no_color(h200_archive):
    proc = gpudoctor_cmd("check", "-v", "--from", str(h200_archive), env={**os.environ, "NO_COLOR": "1"})
    lines = proc.stdout.splitlines()
    assert ANSI not in proc.stdout and lines[-1].endswith(f"exit code {proc.returncode}")
    # the area lines the H200 printed in that run (its check-verbose.txt)
    assert "✓ system       10 passed, 1 skipped" in lines and "✓ gpu          14 passed, 1 skipped" in lines


def test_list_shows_every_check_with_its_distribution():
    proc = gpudoctor_cmd("list")
    rows = [line.split() for line in proc.stdout.splitlines()]
    ids = [row[0] for row in rows]
    assert proc.returncode == 0 and ids == EXPECTED_IDS
    assert all(row[-1] == "[gpudoctor]" for row in rows)
    listed = json.loads(gpudoctor_cmd("list", "--format", "json").stdout)
    assert [r["id"] for r in listed] == ids


def fake_nvidia_smi(tmp_path):
    """An `nvidia-smi` that hangs, as the real one does on a GPU that fell off the bus."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/pid\nexec sleep 60\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def hung_smi_alive(tmp_path) -> bool:
    try:
        return psutil.Process(int((tmp_path / "pid").read_text())).status() != psutil.STATUS_ZOMBIE
    except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
        return False


@pytest.mark.live
def test_a_hung_nvidia_smi_costs_only_the_timeout(tmp_path):
    start = time.monotonic()
    # only what reads nvidia-smi: on a GPU server the rest of a full check (probes, smoke) takes seconds of its own
    proc = gpudoctor_cmd("check", "--only", "driver.nvidia_smi", "--format", "json", "--timeout", "1", env=fake_nvidia_smi(tmp_path))
    took = time.monotonic() - start
    facts = json.loads(proc.stdout)["facts"]
    assert facts["nvidia_smi"]["error"] == "timed out" and took < 6
    assert not hung_smi_alive(tmp_path)


@pytest.mark.live
def test_ctrl_c_stops_everything_and_exits_130(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "gpudoctor", "check", "--timeout", "30"], env=fake_nvidia_smi(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not hung_smi_alive(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hung_smi_alive(tmp_path), "the fake nvidia-smi never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 130 and err.strip() == "gpudoctor: interrupted" and "Traceback" not in err
    time.sleep(0.2)
    assert not hung_smi_alive(tmp_path), "Ctrl-C must kill the commands gpudoctor started"


def test_gpudoctors_own_bug_exits_3_with_one_line(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'items'")

    monkeypatch.setattr("gpudoctor.runner.run_checks", broken)
    assert cli.main(["check"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error" in err[0] and "bug in gpudoctor" in err[0]


def test_strict_turns_warnings_into_exit_1(tmp_path):
    # the H200 capture's only problem is a warning: persistence through the legacy `nvidia-smi -pm 1` (its kernel log)
    archive = recorded_report(fixture("h200-2026-11-26"), tmp_path / "h200.tar.gz", "h200-node", "2026-11-26T06:00:00+00:00")
    document = json.loads(gpudoctor_cmd("check", "--from", str(archive), "--format", "json").stdout)
    assert [r["id"] for r in document["results"] if r["status"] in ("warn", "fail", "error")] == ["driver.persistence"]
    assert gpudoctor_cmd("check", "--from", str(archive)).returncode == 0
    strict = gpudoctor_cmd("check", "--from", str(archive), "--strict")
    assert strict.returncode == 1 and strict.stdout.splitlines()[-1].endswith("exit code 1")


def test_python_takes_an_environment_folder_or_a_command(tmp_path):
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    by_folder = json.loads(gpudoctor_cmd("check", "--python", str(env), "--only", "python.interpreter", "--format", "json").stdout)
    assert by_folder["facts"]["python_envs"]["interpreters"][0]["path"] == str(env / "bin" / "python")
    path = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # this venv's python3
    by_name = json.loads(gpudoctor_cmd("check", "--python", "python3", "--only", "python.interpreter", "--format", "json", env=path).stdout)
    assert by_name["results"][0]["status"] == "pass"


@pytest.mark.parametrize("value, words", [("/bin/ls", "is not a Python interpreter"), ("{tmp}", "a folder without bin/python"),
                                          ("no-such-python-here", "no command 'no-such-python-here' on PATH")])
def test_something_that_is_not_a_python_is_a_usage_error(value, words, tmp_path):
    proc = gpudoctor_cmd("check", "--python", value.format(tmp=tmp_path))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr


def test_a_selection_that_leaves_nothing_is_a_usage_error():
    proc = gpudoctor_cmd("check", "--only", "gpu.xid", "--skip", "gpu")
    assert proc.returncode == 2 and "leave no check to run" in proc.stderr
