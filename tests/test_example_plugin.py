"""The example plugin distribution (examples/gpudoctor-example-plugin) installed by pip and run by the real CLI.

It is installed the way a site would install it: into the test venv by .ci/run, else here with pip into a
temporary folder put on PYTHONPATH for the gpudoctor subprocesses only, so no other test sees its checks.
What the checks conclude live depends on the machine; the tests assert what holds everywhere (the plugin is
found, named, judged without errors, and a report replays to the live verdict) and judge recorded reports.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gpudoctor-example-plugin"
DIST = "gpudoctor-example-plugin"
SITE_CHECKS = {"site.scratch_mounted", "site.scratch_space"}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """The environment under which `python -m gpudoctor` finds the example distribution."""
    try:
        importlib.metadata.distribution(DIST)
        return dict(os.environ)
    except importlib.metadata.PackageNotFoundError:
        pass
    tmp = tmp_path_factory.mktemp("example")
    source = shutil.copytree(EXAMPLE, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(tmp / "site"), str(source)], capture_output=True, text=True, timeout=300)
    if proc.returncode:
        pytest.skip("pip could not install the example plugin here (.ci/run installs it into the test venv): "
                    + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp / "site"), os.environ.get("PYTHONPATH")]))}


def gpudoctor(env: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpudoctor", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)


def site_results(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    return {r["id"]: r for r in json.loads(proc.stdout)["results"] if r["area"] == "site"}


def test_list_names_the_checks_and_their_distribution(env):
    proc = gpudoctor(env, "list")
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("site.")]
    assert {words[0] for words in lines} == SITE_CHECKS and all(words[-1] == f"[{DIST}]" for words in lines)


def test_check_only_its_area_judges_this_machine_without_errors(env):
    results = site_results(gpudoctor(env, "check", "--only", "site", "--format", "json"))
    assert set(results) == SITE_CHECKS
    assert all(r["plugin"] == DIST and r["status"] in ("pass", "fail", "skip") for r in results.values()), results


def test_a_report_replays_to_the_live_verdict(env, tmp_path):
    """`gpudoctor report` records what the plugin's collector read; `check --from` judges the archive the same way."""
    archive = tmp_path / "node.tar.gz"
    made = gpudoctor(env, "report", "--only", "site", "-o", str(archive), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    live = site_results(gpudoctor(env, "check", "--only", "site", "--format", "json"))
    replayed = site_results(gpudoctor(env, "check", "--from", str(archive), "--only", "site", "--format", "json"))
    assert {i: (r["status"], r["summary"]) for i, r in replayed.items()} == {i: (r["status"], r["summary"]) for i, r in live.items()}


def test_check_from_the_examples_recorded_report(env):
    """The example's own report (a Debian 12 guest without a GPU, /scratch a 64 GiB tmpfs): mounted, and the
    space check skips with the `gpus` view's reason."""
    report = EXAMPLE / "tests" / "evidence" / "dev-vm-report-2026-11-27"
    results = site_results(gpudoctor(env, "check", "--from", str(report), "--only", "site", "--format", "json"))
    assert results["site.scratch_mounted"]["status"] == "pass"
    assert (results["site.scratch_space"]["status"], results["site.scratch_space"]["summary"]) == (
        "skip", "no NVIDIA kernel module is loaded (see driver.loaded)")


def test_check_from_a_report_made_before_the_plugin_was_installed(env):
    """The H200's first report kept facts only, none of them the plugin's: its checks skip, naming the missing fact."""
    report = ROOT / "tests" / "fixtures" / "h200-firecracker-2026-11-27" / "check.json"
    results = site_results(gpudoctor(env, "check", "--from", str(report), "--only", "site", "--format", "json"))
    assert {r["status"] for r in results.values()} == {"skip"}
    assert all("site_scratch" in r["summary"] for r in results.values()), results


def test_the_examples_own_tests_pass_against_this_gpudoctor(env):
    """Its tests use only gpudoctor.testing: an API change that breaks a third party's tests fails here."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=EXAMPLE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_testing_reads_every_form_of_a_report_alike(tmp_path):
    """gpudoctor.testing.recorded: an extracted report, its report.json or evidence.json, and the archive of it."""
    import tarfile

    from gpudoctor import testing

    folder = EXAMPLE / "tests" / "evidence" / "dev-vm-report-2026-11-27"
    archive = tmp_path / "report.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="gpudoctor-report-vm-20261127T073731")
    forms = [folder, folder / "report.json", folder / "evidence.json", archive, json.loads((folder / "evidence.json").read_text())]
    datas = [testing.recorded(form).to_dict() for form in forms]
    assert all(data == datas[0] for data in datas) and "/proc/mounts" in datas[0]["files"]
    with pytest.raises(ValueError, match="kept no raw evidence"):
        testing.recorded(ROOT / "tests" / "fixtures" / "h200-firecracker-2026-11-27" / "check.json")


def test_testing_judges_a_builtin_check_with_the_gpus_view_from_given_facts():
    """The H200 capture's driver and NVML facts, collected by gpudoctor's own collectors from its evidence, give the
    `gpus` view a check needs: one H200 (the capture's README); the machine without a driver gets the view's one skip."""
    from gpudoctor import testing
    from gpudoctor.checks import driver, gpu

    facts = testing.collect(driver, ROOT / "tests" / "fixtures" / "h200-firecracker-2026-11-27").facts
    result = testing.judge(gpu.inventory, facts)
    assert result.status == testing.Status.PASS and "H200" in result.summary, result
    nogpu = testing.collect(driver, ROOT / "tests" / "fixtures" / "debian12-kvm-docker-nogpu-2026-11-27").facts
    assert testing.judge(gpu.inventory, nogpu).summary == "no NVIDIA kernel module is loaded (see driver.loaded)"
