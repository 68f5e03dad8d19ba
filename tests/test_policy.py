"""`--policy FILE`: the expectations judged on recorded evidence, waivers, warnings that fail, and broken files.

Evidence: the real H200 run (tests/fixtures/h200-firecracker-2026-11-27/check.json: 1 × H200 143771 MiB, driver
580.159.04 open, CUDA 13.0, torch 2.11.0+cu130 and JAX 0.11.2 each seeing the GPU, smoke 787.5 TFLOP/s bf16) and this
development machine without a GPU (tests/fixtures/debian12-kvm-docker-nogpu-2026-11-27).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from evidence_helpers import NO_GPU_MACHINE, assert_pasteable, fixture
from gpudoctor import cli
from gpudoctor.models import Result, Status
from gpudoctor.policy import PolicyError, load_policy, resolve
from gpudoctor.host import RecordedHost
from gpudoctor.loader import load_plugins
from gpudoctor.policy_checks import apply, policy_plugin
from gpudoctor.runner import Selection, run_checks

FIXTURES = Path(__file__).parent / "fixtures"
H200 = FIXTURES / "h200-firecracker-2026-11-27" / "check.json"
EXAMPLES = Path(__file__).parent.parent / "examples" / "policies"

# What the H200 capture holds, as an operator of that node would write it (values read from check.json's facts).
H200_POLICY = """
[gpus]
count = 1
model = "NVIDIA H200"
memory_min_gib = 140
ecc = true
mig = false
persistence = true
compute_mode = "Default"
pcie_gen = 5
pcie_width = 16
p2p = true

[driver]
branch = "580"
version = ">=580.65,<581"
cuda = ">=13.0"

[[python]]
path = "/opt/torch/.venv/bin/python3"
frameworks = { torch = ">=2.11,<2.12", jax = ">=0.11" }

[smoke]
min_speed_share = 0.8
"""


@pytest.fixture
def h200_report(tmp_path) -> Path:
    """check.json as recorded, with one repair: nvidia-ml-py 13 returns busId as str, and that commit's probe called
    .decode() on it (the README of the fixture names the bug); the bus id is the one nvidia-smi recorded beside it."""
    document = json.loads(H200.read_text())
    nvml = document["facts"]["nvml"]["devices"][0]
    nvml["pci"]["busId"] = document["facts"]["nvidia_smi"]["parsed"]["devices"][0]["pci"]["busId"]
    path = tmp_path / "check.json"
    path.write_text(json.dumps(document))
    return path


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_check(capsys, *args) -> tuple[int, dict]:
    code = cli.main(["check", "--format", "json", *map(str, args)])
    out = capsys.readouterr().out
    return code, json.loads(out) if out else {}


def results(document: dict, prefix: str = "policy.") -> dict[str, dict]:
    return {r["id"]: r for r in document["results"] if r["id"].startswith(prefix)}


def test_the_h200_capture_meets_a_policy_written_from_its_own_facts(tmp_path, h200_report, capsys):
    code, document = run_check(capsys, "--from", h200_report, "--policy", write(tmp_path, H200_POLICY), "--only", "policy")
    found = results(document)
    assert {k: v["status"] for k, v in found.items()} == {
        "policy.gpu_count": "pass", "policy.gpu_model": "pass", "policy.gpu_memory": "pass", "policy.ecc": "pass", "policy.mig": "pass",
        "policy.persistence": "pass", "policy.compute_mode": "pass", "policy.pcie": "pass", "policy.p2p": "pass", "policy.driver": "pass",
        "policy.driver_cuda": "pass", "policy.frameworks": "pass", "policy.smoke_speed": "pass", "policy.waivers": "skip"}, found
    assert code == 0
    assert document["facts"]["policy"]["path"].endswith("policy.toml")


def test_the_hgx_example_fails_the_single_h200_with_a_fix_per_expectation(h200_report, capsys):
    code, document = run_check(capsys, "--from", h200_report, "--policy", EXAMPLES / "hgx-h100-training.toml", "--only", "policy")
    found = results(document)
    assert code == 1
    assert found["policy.gpu_count"]["summary"] == "1 GPU(s) answer; the policy expects 8"
    assert "NVIDIA H200 is not NVIDIA H100 80GB HBM3" in found["policy.gpu_model"]["summary"]
    assert found["policy.frameworks"]["status"] == "fail"  # /opt/train/.venv was not judged on that machine
    assert found["policy.ecc"]["status"] == found["policy.driver"]["status"] == "pass"
    for result in found.values():
        if result["status"] == "fail":
            assert_pasteable(Result(result["id"], "", Status.FAIL, result["summary"], fix=result["fix"]), "apt")


def test_each_mismatch_is_named_on_the_h200(tmp_path, h200_report, capsys):
    policy = write(tmp_path, """
[gpus]
memory_min_gib = 160
ecc = false
compute_mode = "exclusive_process"
pcie_width = 32
[driver]
branch = "570"
cuda = ">=13.1"
[[python]]
frameworks = { torch = "<2.11", tensorflow = ">=2.18" }
[smoke]
min_speed_share = 1.0
""")
    code, document = run_check(capsys, "--from", h200_report, "--policy", policy, "--only", "policy")
    found = {k: v["summary"] for k, v in results(document).items()}
    assert code == 1
    assert "140.4 GiB, the policy wants at least 160" in found["policy.gpu_memory"]
    assert "ECC on, the policy wants it off" in found["policy.ecc"]
    assert "x16 < x32" in found["policy.pcie"]
    assert found["policy.compute_mode"].endswith("GPU0 (0000:00:06.0): compute mode Default, the policy wants Exclusive_Process")
    assert results(document)["policy.compute_mode"]["fix"].startswith("sudo nvidia-smi -i GPU-")  # by UUID
    assert " -c EXCLUSIVE_PROCESS\n# the mode reverts" in results(document)["policy.compute_mode"]["fix"]
    assert found["policy.driver"] == "driver 580.159.04: branch 580, not 570"
    assert found["policy.driver_cuda"] == "the driver runs CUDA 13.0; the policy wants >=13.1"
    details = results(document)["policy.frameworks"]["details"]
    assert "/opt/torch/.venv/bin/python3: torch 2.11.0+cu130 is not <2.11" in details
    assert "/opt/torch/.venv/bin/python3: tensorflow is not installed (policy: >=2.18)" in details
    assert "/opt/torch/.venv/bin/python3 -m pip install 'torch<2.11' 'tensorflow>=2.18'" in results(document)["policy.frameworks"]["fix"]
    assert found["policy.smoke_speed"].endswith("NVIDIA H200 (cuda:0): matmul 98%, copy 89% of reference")  # recorded, below 1.0


def test_a_policy_asking_for_8_gpus_fails_a_machine_without_gpus():
    policy = resolve(load_policy(str(EXAMPLES / "hgx-h100-training.toml")), "dev")
    found, _, _ = run_checks(load_plugins(external=False) + [policy_plugin(policy)], RecordedHost(fixture(NO_GPU_MACHINE), 10),
                             Selection(only=frozenset({"policy"})))
    found = {r.id: r for r in found}
    assert found["policy.gpu_count"].status == Status.FAIL and found["policy.gpu_count"].summary == "0 GPU(s) answer; the policy expects 8"
    assert found["policy.ecc"].status == Status.SKIP  # no GPU to judge: gpu_count carries the failure
    assert found["policy.driver"].summary == "no NVIDIA driver is loaded; the policy wants branch 580"
    assert_pasteable(found["policy.driver"], "apt")


def test_the_workstation_example_gives_policy_results_here(capsys):
    """On any machine (this one has no GPU; a GPU server may pass it): the policy's checks run and say something."""
    code, document = run_check(capsys, "--policy", EXAMPLES / "workstation.toml", "--only", "policy", "--no-smoke", "--timeout", "20")
    assert code in (0, 1)
    assert {"policy.gpu_count", "policy.gpu_model", "policy.driver_cuda", "policy.frameworks"} <= set(results(document))


def test_hosts_sections_override_by_name():
    loaded = load_policy(str(EXAMPLES / "hgx-h100-training.toml"))
    assert resolve(loaded, "hgx-001").gpus["count"] == 8
    assert resolve(loaded, "hgx-017.cluster.example.org").gpus["count"] == 7
    assert resolve(loaded, "HGX-042").matched == ["hgx-017 hgx-042"]
    l4 = load_policy(str(EXAMPLES / "l4-inference.toml"))
    assert (resolve(l4, "l4x4-3").gpus["count"], resolve(l4, "l4-3").gpus["count"]) == (4, 1)


def test_every_example_loads():
    for path in EXAMPLES.glob("*.toml"):
        assert resolve(load_policy(str(path)), "node").gpus, path


def test_a_waiver_in_force_turns_a_problem_into_a_skip_and_an_expired_one_counts_again(tmp_path, h200_report, capsys):
    """driver.persistence really warns on the H200 (its image turns persistence on with the legacy `nvidia-smi -pm 1`)."""
    today = datetime.date.today()
    waived = write(tmp_path, f'[[waive]]\nid = "driver.persistence"\nreason = "the image sets it"\nuntil = {today + datetime.timedelta(days=30)}\n')
    code, document = run_check(capsys, "--from", h200_report, "--policy", waived, "--only", "driver.persistence,policy", "--strict")
    found = results(document, "")
    assert found["driver.persistence"]["status"] == "skip"
    assert found["driver.persistence"]["summary"].startswith(f"waived until {today + datetime.timedelta(days=30)}: the image sets it (was warn:")
    assert found["policy.waivers"]["status"] == "pass" and code == 0
    expired = write(tmp_path, '[[waive]]\nid = "driver.persistence"\nreason = "the image sets it"\nuntil = 2026-01-01\n', "old.toml")
    code, document = run_check(capsys, "--from", h200_report, "--policy", expired, "--only", "driver.persistence,policy", "--strict")
    found = results(document, "")
    assert found["driver.persistence"]["status"] == "warn" and code == 1
    assert "the waiver for driver.persistence expired on 2026-01-01 (the image sets it): it no longer counts" in found["driver.persistence"]["details"]
    assert found["policy.waivers"]["status"] == "warn" and "old.toml (line 1)" in found["policy.waivers"]["fix"]


def test_warnings_the_policy_names_fail(tmp_path, h200_report, capsys):
    policy = write(tmp_path, '[checks]\nwarnings_fail = ["driver.*"]\n')
    code, document = run_check(capsys, "--from", h200_report, "--policy", policy, "--only", "driver")
    found = results(document, "driver.")
    assert code == 1 and found["driver.persistence"]["status"] == "fail"
    assert found["driver.persistence"]["summary"].endswith("(the policy counts this warning as a failure)")


def test_apply_leaves_passes_alone():
    policy = resolve({"path": "p.toml", "base": {"waive": [], "checks": {"warnings_fail": ["*"]}}, "hosts": []}, "n")
    passed = Result("gpu.ecc", "", Status.PASS, "fine")
    assert apply([passed], policy, datetime.date(2026, 1, 1)) == [passed]


BROKEN = [
    ("[gpus]\ncount = 8\nmodle = 'H100'\n", "policy.toml:3: gpus.modle: unknown key (known here: count, model,"),
    ("[gpus]\ncount = 'eight'\n", "policy.toml:2: gpus.count: expected a whole number (0 to 64), got 'eight'"),
    ("[gpus\ncount = 8\n", "policy.toml:1: TOML syntax at column"),
    ("[driver]\nversion = '=>550'\n", "policy.toml:2: driver.version: expected a version specifier like '>=550,<600', got '=>550'"),
    ("[driver]\nbranch = 580\n", "policy.toml:2: driver.branch: expected a driver branch in quotes like \"580\", got 580"),
    ("[[python]]\nframeworks = { pytorch = '>=2' }\n", "policy.toml:2: python[0].frameworks.pytorch: unknown key (known here: torch, jax, tensorflow, cupy)"),
    ("[[waive]]\nid = 'gpu.ecc'\nreason = 'x'\nuntil = '2027-01-01'\n", "policy.toml:4: waive[0].until: expected a date like 2027-01-31 (no quotes)"),
    ("[[waive]]\nid = 'gpu.ecc'\nreason = 'x'\n", "policy.toml:1: waive[0]: a waiver needs until"),
    ("[gpus]\ncount = 1\n\n[[hosts]]\nmatch = 'a*'\n[hosts.gpus]\necc = 'yes'\n", "policy.toml:7: hosts[0].gpus.ecc: expected true or false, got 'yes'"),
    ("[[hosts]]\n[hosts.gpus]\ncount = 2\n", "policy.toml:1: hosts[0]: a [[hosts]] entry needs match"),
    ("[gpus]\ncompute_mode = 'exclusive'\n", "policy.toml:2: gpus.compute_mode: expected one of Default, Exclusive_Process, Prohibited, got 'exclusive'"),
    ("[smoke]\nmin_speed_share = 80\n", "policy.toml:2: smoke.min_speed_share: expected a share between 0 and 1"),
    ("[checks]\nxid_classes = { 13 = 'user' }\n", "policy.toml:2: checks.xid_classes: expected one of hardware, driver, application for Xid 13, got 'user'"),
    ("gpu_count = 8\n", "policy.toml:1: gpu_count: unknown key (known here: checks, description, driver, gpus, hosts, python, smoke, waive)"),
]


def test_a_node_in_the_compute_mode_its_policy_names_is_not_warned_about_it(tmp_path, h200_report, capsys):
    """A fleet that runs one process per GPU (a Slurm site's rule, or MPS) says so once in its policy; gpu.compute_mode
    then agrees instead of warning on every node. The H200's GPU set to Exclusive_Process, in NVML and nvidia-smi alike."""
    document = json.loads(h200_report.read_text())
    document["facts"]["nvml"]["devices"][0]["compute_mode"] = 3
    document["facts"]["nvidia_smi"]["parsed"]["devices"][0]["compute_mode"] = 3
    h200_report.write_text(json.dumps(document))
    code, plain = run_check(capsys, "--from", h200_report, "--only", "gpu.compute_mode")
    assert results(plain, "gpu.")["gpu.compute_mode"]["status"] == "warn"
    assert 'compute_mode = "Exclusive_Process"' in results(plain, "gpu.")["gpu.compute_mode"]["fix"]
    policy = write(tmp_path, '[gpus]\ncompute_mode = "Exclusive_Process"\n')
    code, judged = run_check(capsys, "--from", h200_report, "--policy", policy, "--only", "gpu.compute_mode,policy")
    found = {**results(judged), **results(judged, "gpu.")}
    assert found["gpu.compute_mode"]["summary"] == "compute mode Exclusive_Process on every GPU, as the policy expects"
    assert found["policy.compute_mode"]["status"] == "pass" and code == 0
    default = write(tmp_path, '[gpus]\ncompute_mode = "Default"\n', "default.toml")
    code, judged = run_check(capsys, "--from", h200_report, "--policy", default, "--only", "gpu.compute_mode,policy")
    found = {**results(judged), **results(judged, "gpu.")}  # judged against the policy's mode, with one fix
    assert found["gpu.compute_mode"]["summary"] == "GPU0 (0000:00:06.0) is in compute mode Exclusive_Process; the policy names Default"
    assert found["gpu.compute_mode"]["fix"].startswith("sudo nvidia-smi -i GPU-") and " -c DEFAULT\n" in found["gpu.compute_mode"]["fix"]
    assert found["policy.compute_mode"]["fix"].startswith(found["gpu.compute_mode"]["fix"])  # then the policy's own alternative
    document["facts"]["nvml"]["devices"][0]["compute_mode"] = 2  # Prohibited, judged without policy.compute_mode
    document["facts"]["nvidia_smi"]["parsed"]["devices"][0]["compute_mode"] = 2
    h200_report.write_text(json.dumps(document))
    code, judged = run_check(capsys, "--from", h200_report, "--policy", policy, "--only", "gpu.compute_mode")
    assert results(judged, "gpu.")["gpu.compute_mode"]["status"] == "fail" and code == 1


@pytest.mark.parametrize("text, message", BROKEN)
def test_a_broken_policy_is_refused_naming_file_line_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(str(path))
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(message), caught.value


def test_a_broken_policy_exits_2_in_one_line(tmp_path, capsys):
    path = write(tmp_path, "[gpus]\ncount = -1\n")
    assert cli.main(["check", "--policy", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"gpudoctor: error: {path}:2: gpus.count: expected a whole number (0 to 64), got -1"]
    assert cli.main(["check", "--policy", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the policy" in capsys.readouterr().err
