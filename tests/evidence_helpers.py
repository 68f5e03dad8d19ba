"""Replaying recorded evidence through the real runner, with small documented changes.

Each scenario test starts from real evidence (a capture in fixtures/, or this machine's
own, recorded by LiveHost) and changes only the answers its incident is about, quoting
the real message people saw.
"""

from __future__ import annotations

import copy
import functools
import re
import subprocess
from pathlib import Path

from gpudoctor.evidence import Evidence, command_key
from gpudoctor.host import RecordedHost
from gpudoctor.loader import load_plugins
from gpudoctor.models import Result, Run
from gpudoctor.report import write_report
from gpudoctor.runner import Selection, run_checks

FIXTURES = Path(__file__).parent / "fixtures"

# What nvidia-smi printed, and its exit code, in real incidents: category -> (rc, output). Sources:
# tinygrad/open-gpu-kernel-modules#47 and mozilla/translations#1167 (mismatch, exit 18), NVIDIA/nvidia-docker#365
# (driver not loaded) and #284 (permissions), NVIDIA/open-gpu-kernel-modules#862 (no devices),
# NVIDIA/nvidia-container-toolkit#48 (container lost its devices); exit codes from nvidia-smi(1).
NVIDIA_SMI_FAILURES = {
    "version_mismatch": (18, "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.95\n"),
    "driver_not_loaded": (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that "
                             "the latest NVIDIA driver is installed and running."),
    "no_permission": (4, "Failed to initialize NVML: Insufficient Permissions"),
    "no_devices": (6, "No devices were found"),
    "gpu_lost": (15, "Unable to determine the device handle for GPU0000:00:06.0: GPU is lost.  Reboot the system to recover this GPU"),
    "inforom_corrupt": (14, "WARNING: infoROM is corrupted at gpu 0000:00:06.0"),
    "nvml_unknown_error": (255, "Failed to initialize NVML: Unknown Error"),
    "other": (3, "Unknown option"),
}


@functools.lru_cache(maxsize=None)
def _fixture_data(name: str) -> dict:
    return Evidence.from_dir(FIXTURES / name).to_dict()


NO_GPU_MACHINE = "debian12-kvm-docker-nogpu-2026-11-27"


def fixture(name: str) -> Evidence:
    """A fresh copy of a capture's evidence."""
    return Evidence(copy.deepcopy(_fixture_data(name)))


def this_machine() -> Evidence:
    """The development machine as LiveHost recorded it (no GPU, no driver, a KVM guest with a Docker marker).

    Recorded once, not live: the tests must judge the same evidence on a GPU server as here."""
    return fixture(NO_GPU_MACHINE)


def recorded_report(evidence: Evidence, path: Path, host_name: str, started_at: str, anonymize: bool = False) -> Path:
    """Recorded evidence written as `gpudoctor report` writes a live run's archive: what the CLI's --from reads,
    so the command line is tested on a recorded machine, not on the one running the tests."""
    host = RecordedHost(evidence)
    plugins = load_plugins(external=False)
    results, facts, timings = run_checks(plugins, host)
    run = Run(results, facts, started_at, 1.2, host_name, timings)
    write_report(run, host, str(path), anonymize, dict(host.environ), 5.0, plugins, Selection())
    return path


def judge(evidence: Evidence, check_id: str) -> Result:
    """Run the checks a selection needs on replayed evidence; return the one asked for."""
    results, _, _ = run_checks(load_plugins(external=False), RecordedHost(evidence),
                               Selection(only=frozenset({check_id})))
    for result in results:
        assert_pasteable(result)
    return next(r for r in results if r.id == check_id)


PLACEHOLDER = re.compile(r"\.\.\.|<[A-Za-z][A-Za-z0-9 _-]*>|\bIMAGE\b|\bPID\b")
FOREIGN = {"apt": re.compile(r"\b(dnf|yum|zypper)\b"), "dnf": re.compile(r"\b(apt-get|apt|dpkg|zypper)\b"),
           "zypper": re.compile(r"\b(apt-get|apt|dpkg|dnf|yum)\b")}


def _live(line: str) -> str:
    """The command part of a fix line: nothing for a comment, the text before an inline comment otherwise."""
    return "" if line.lstrip().startswith("#") else line.split("   #")[0]


def pasteable_problems(fix: str, family: str | None = None) -> list[str]:
    """Why a fix block could not be pasted into a shell and run top to bottom (README's promise).

    Every line is a command or a `#` comment; it parses (`bash -n`); no placeholder (`...`, `<name>`) outside
    comments; a reboot only as the last command; at most one live `pip install` (alternatives are comments);
    no package manager of another distribution family.
    """
    problems = []
    lines = fix.splitlines()
    for line in lines:
        if not re.match(r"^(#|[a-z]|/|\$|~)", line):
            problems.append(f"prose, not a command or comment: {line!r}")
        if PLACEHOLDER.search(_live(line)):
            problems.append(f"placeholder in a command: {line!r}")
        if family in FOREIGN and FOREIGN[family].search(_live(line)):
            problems.append(f"another distribution's package manager: {line!r}")
    live = [_live(line) for line in lines if _live(line).strip()]
    if any("reboot" in cmd for cmd in live[:-1]):
        problems.append("a reboot before the last command")
    targets = [cmd.split(" -m pip install")[0].split()[-1] if " -m pip install" in cmd else "pip" for cmd in live if "pip install" in cmd]
    if len(targets) != len(set(targets)):
        problems.append("two live `pip install` lines into one environment: alternatives must be comments")
    if fix.strip():
        parsed = subprocess.run(["bash", "-n"], input=fix, capture_output=True, text=True)
        if parsed.returncode:
            problems.append(f"bash -n: {parsed.stderr.strip()}")
    return problems


def assert_pasteable(result: Result, family: str | None = None) -> None:
    """A fix block that a user can paste into a shell as it is."""
    problems = pasteable_problems(result.fix, family)
    assert not problems, f"{result.id}: {problems}\n{result.fix}"


def judge_all(evidence: Evidence) -> dict[str, Result]:
    results, _, _ = run_checks(load_plugins(external=False), RecordedHost(evidence))
    return {r.id: r for r in results}


def command(evidence: Evidence, argv: str, rc: int | None = 0, stdout: str = "", stderr: str = "",
            error: str | None = None, duration_s: float = 0.1) -> None:
    evidence.data["commands"][command_key(argv.split())] = {
        "rc": rc, "stdout": stdout, "stderr": stderr, "error": error, "duration_s": duration_s}


def file(evidence: Evidence, path: str, text: str | None = None, error: str | None = None) -> None:
    evidence.data["files"][path] = {"text": text} if text is not None else {"error": error or "absent"}


def listdir(evidence: Evidence, path: str, entries: list[str] | None) -> None:
    evidence.data["listdirs"][path] = entries


def stat(evidence: Evidence, path: str, **info) -> None:
    base = {"mode": "0o666", "kind": "char", "uid": 0, "gid": 0, "group": "root", "readable": True, "writable": True}
    evidence.data["stats"][path] = None if info.get("absent") else {**base, **info}


def disk(evidence: Evidence, path: str, total: int, free: int) -> None:
    evidence.data["disk_usage"][path] = {"total": total, "free": free}


def nvml_device(evidence: Evidence, index: int = 0, **fields) -> dict:
    device = evidence.data["nvml"]["devices"][index]
    device.update(fields)
    return device


def env(evidence: Evidence, **variables) -> None:
    evidence.data["env"].update(variables)


def gpu_on_bus(evidence: Evidence, bdf: str = "0000:00:06.0", device: str = "0x2335") -> Evidence:
    """Put an NVIDIA GPU on the recorded PCI bus (vendor, display class, device id), as sysfs shows one with no driver.
    The default is the H200 capture's: 10de:2335 at 0000:00:06.0."""
    entries = evidence.data["listdirs"].get("/sys/bus/pci/devices") or []
    evidence.data["listdirs"]["/sys/bus/pci/devices"] = sorted(set(entries) | {bdf})
    file(evidence, f"/sys/bus/pci/devices/{bdf}/vendor", "0x10de\n")
    file(evidence, f"/sys/bus/pci/devices/{bdf}/class", "0x030200\n")
    file(evidence, f"/sys/bus/pci/devices/{bdf}/device", f"{device}\n")
    return evidence
