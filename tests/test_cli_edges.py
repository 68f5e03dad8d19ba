"""The command line's hard edges, each through a real gpudoctor process: a locale that is not UTF-8,
nonsense time limits, SIGTERM and SIGHUP, outputs that refuse writes or close early, bare
`gpudoctor`, and sibling commands that take the same options the same way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import jsonschema
import psutil
import pytest
from evidence_helpers import this_machine
from test_cli import SCHEMA, fake_nvidia_smi, gpudoctor_cmd, hung_smi_alive, one_line_error

from gpudoctor.host import RecordedHost
from gpudoctor.models import Run
from gpudoctor.loader import load_plugins
from gpudoctor.redact import COMMON_NAMES
from gpudoctor.report import write_report
from gpudoctor.runner import Selection, run_checks

GPUDOCTOR = [sys.executable, "-m", "gpudoctor"]


@pytest.fixture(scope="module")
def nogpu_report(tmp_path_factory) -> Path:
    """A report of the development machine's recorded evidence (no GPU: gpu.present fails, with a fix),
    made the way `gpudoctor report` makes one live, so every test here judges the same verdict."""
    path = tmp_path_factory.mktemp("report") / "nogpu.tar.gz"
    host = RecordedHost(this_machine())
    plugins = load_plugins(external=False)
    results, facts, timings = run_checks(plugins, host)
    run = Run(results, facts, "2026-11-27T06:00:00+00:00", 1.2, "dev-vm", timings)
    write_report(run, host, str(path), False, dict(host.environ), 5.0, plugins, Selection())
    return path


# -- a locale that is not UTF-8 ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def latin1_locale(tmp_path_factory) -> dict:
    """en_US.ISO-8859-1 compiled into a private folder (LOCPATH), as glibc's localedef(1) makes it:
    no root and no change to the machine. Debian's locales package lists it in /usr/share/i18n/SUPPORTED."""
    folder = tmp_path_factory.mktemp("locales")
    if not shutil.which("localedef"):
        pytest.skip("no localedef here: LANG=C is still tested")
    made = subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(folder / "en_US.ISO-8859-1")],
                          capture_output=True, text=True, timeout=120)
    if made.returncode not in (0, 1) or not (folder / "en_US.ISO-8859-1").exists():  # 1: made, with warnings
        pytest.skip(f"en_US.ISO-8859-1 cannot be generated here ({made.stderr.strip()[:200]}): LANG=C is still tested")
    return {"LOCPATH": str(folder), "LC_ALL": "en_US.ISO-8859-1", "LANG": "en_US.ISO-8859-1"}


def in_locale(args, locale: dict) -> subprocess.CompletedProcess:
    """gpudoctor under `locale`, with nothing that would force another encoding (PYTHONIOENCODING, PYTHONUTF8)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENCODING", "PYTHONUTF8", "LANG"))}
    return subprocess.run([*GPUDOCTOR, *args], env={**env, "NO_COLOR": "1", **locale}, capture_output=True, timeout=60)


def verdict_in(locale: dict, report: Path) -> subprocess.CompletedProcess:
    """The verbose verdict, less the line of this run's slowest collectors (timings differ run to run)."""
    proc = in_locale(["check", "--from", str(report), "-v"], locale)
    proc.stdout = b"".join(line for line in proc.stdout.splitlines(True) if not line.startswith(b"  Slowest "))
    return proc


def as_ascii(text: str, keep: str = "") -> str:
    """The marks gpudoctor falls back to where the terminal's charset lacks them."""
    return text.translate(str.maketrans({k: v for k, v in {"✓": "+", "✗": "x", "·": "-", "…": "...", "→": "->"}.items()
                                         if k not in keep}))


def test_an_ascii_terminal_gets_ascii_marks_and_the_same_verdict(nogpu_report):
    """LC_ALL=C with Python's UTF-8 mode off gives an ASCII stdout (PEP 538 and 540 coerce C to UTF-8
    only when LC_ALL is unset and PYTHONUTF8 is not 0). Printing ✓ there failed, and gpudoctor called
    its own failure a bug (exit 3); now only the marks change."""
    utf8 = verdict_in({"LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"}, nogpu_report)
    assert utf8.returncode == 1 and "✗ gpu" in utf8.stdout.decode()  # the evidence has no GPU: a failure
    proc = verdict_in({"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}, nogpu_report)
    assert proc.returncode == 1 and proc.stderr == b"", proc.stderr
    text = proc.stdout.decode("ascii")  # strict: every byte is ASCII
    assert text == as_ascii(utf8.stdout.decode()) and "x gpu" in text and "+ system" in text


def test_a_latin1_terminal_gets_ascii_marks_where_latin1_lacks_them(nogpu_report, latin1_locale):
    """en_US.ISO-8859-1: the charset has no ✓ (U+2713) or ✗ (U+2717) (glibc's charmap
    /usr/share/i18n/charmaps/ISO-8859-1.gz maps 0x00-0xFF to U+0000-U+00FF), but has the middle dot."""
    utf8 = verdict_in({"LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"}, nogpu_report)
    proc = verdict_in(latin1_locale, nogpu_report)
    assert proc.returncode == 1 and proc.stderr == b"", proc.stderr
    assert proc.stdout.decode("latin-1") == as_ascii(utf8.stdout.decode(), keep="·")


def test_lang_c_alone_prints_utf8_as_python_chooses_for_it(nogpu_report):
    """LANG=C alone: Python coerces the C locale to UTF-8 (PEP 538, PEP 540), so the marks stay, and
    nothing exits 3 (`PYTHONIOENCODING` unset)."""
    args = ["check", "--from", str(nogpu_report)]
    proc = in_locale(args, {"LANG": "C"})
    assert proc.returncode == 1 and proc.stderr == b""
    assert proc.stdout.decode("utf-8") == in_locale(args, {"LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"}).stdout.decode()


# -- time limits ----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["check", "report", "smoke"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "0", "-5"])
def test_a_time_limit_must_be_a_positive_finite_number_of_seconds(command, value):
    """click's FloatRange compares, and every comparison with nan is false: nan passed as a time limit
    (Python docs, math.isnan; IEEE 754), and a collector then raised 'cannot convert float NaN to integer'."""
    proc = gpudoctor_cmd(command, "--timeout", value)
    one_line_error(proc, "--timeout")


def test_each_timeout_says_which_limit_it_is():
    check = " ".join(gpudoctor_cmd("check", "--help").stdout.split())
    smoke = " ".join(gpudoctor_cmd("smoke", "--help").stdout.split())
    assert "any one collector, command, probe or NVML query may run before it is killed" in check
    assert "smoke --timeout" in check  # the one limit check's --timeout does not set, and where it is set
    assert "each framework's training run may take in each interpreter before it is killed" in smoke


# -- SIGTERM and SIGHUP ---------------------------------------------------------------------------
def hanging_python(tmp_path) -> Path:
    """An interpreter that hangs in every probe (an NFS home that stopped answering, a sitecustomize
    that waits on a lock), recording each process it becomes. Named python, as --python requires."""
    script = tmp_path / "bin" / "python"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\necho $$ >> {tmp_path}/pids\nexec sleep 60\n")
    script.chmod(0o755)
    return script


def started(tmp_path) -> list[int]:
    try:
        return [int(line) for line in (tmp_path / "pids").read_text().split()]
    except FileNotFoundError:
        return []


def alive(pids: list[int]) -> list[int]:
    living = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                living.append(pid)
        except psutil.NoSuchProcess:
            pass
    return living


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
@pytest.mark.parametrize("args, children", [
    (["check", "--only", "python", "--timeout", "60"], 6),  # env, torch, jax, tensorflow, cupy probes and pip check
    (["smoke", "--device", "cpu"], 1),
])
def test_sigterm_and_sighup_kill_every_child_like_ctrl_c(tmp_path, signum, code, args, children):
    """Kubernetes ends a pod with SIGTERM (kubernetes.io, 'Pod Lifecycle: Termination of Pods'), Slurm a
    job step with SIGTERM then SIGKILL after KillWait (slurm.conf(5)), a closed terminal sends SIGHUP. Their
    default action left the hung probes running, each in its own process group: six orphans per interpreter.
    The shell reports a process a signal ended as 128 + its number (bash manual, 'Exit Status')."""
    python = hanging_python(tmp_path)
    proc = subprocess.Popen([*GPUDOCTOR, *args, "--python", str(python)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(started(tmp_path)) < children and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(started(tmp_path)) >= children, "the hanging probes never started"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == code
    assert err.strip() == f"gpudoctor: stopped by {signal.Signals(signum).name}", err
    time.sleep(0.2)
    assert alive(started(tmp_path)) == [], "every probe gpudoctor started must end with it"


def test_a_sighup_ignored_at_start_stays_ignored_as_nohup_asks(tmp_path):
    """nohup(1) (POSIX): the utility runs with SIGHUP ignored, and must keep running through a hangup."""
    python = hanging_python(tmp_path)
    proc = subprocess.Popen([*GPUDOCTOR, "check", "--only", "python.interpreter", "--timeout", "2", "--python", str(python),
                             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    deadline = time.monotonic() + 30
    while not started(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err  # ran to its end: the hung interpreter is the finding
    result = json.loads(out)["results"][0]
    assert result["status"] == "fail" and "hung when probed" in result["summary"]


# -- outputs that refuse writes, or go away --------------------------------------------------------
@pytest.mark.parametrize("target", ["/dev/full", "/proc/version"])
@pytest.mark.parametrize("args", [["check", "--timeout", "30"], ["smoke"], ["list"], ["diff", "{report}", "{report}"]])
def test_an_output_that_takes_the_open_but_refuses_the_write_exits_2_before_the_run(tmp_path, nogpu_report, target, args):
    """/dev/full answers every write with ENOSPC (full(4)); /proc/version has no write method, so root
    may open it and every write fails with EIO. Both used to fail only after the whole run, as a bug (exit 3)."""
    if not os.path.exists(target):
        pytest.skip(f"no {target} here")
    env = fake_nvidia_smi(tmp_path)  # a run would start it and hang for 30 s
    start = time.monotonic()
    proc = gpudoctor_cmd(*[a.format(report=nogpu_report) for a in args], "-o", target, env=env)
    one_line_error(proc, f"cannot write {target}")
    assert time.monotonic() - start < 20 and not hung_smi_alive(tmp_path) and not (tmp_path / "pid").exists()


def test_report_refuses_a_target_it_cannot_put_an_archive_on_before_the_run(tmp_path):
    """The archive is written beside its target and renamed onto it: /proc takes no new file, and a pipe
    or device (/dev/full: not used here, a regression would replace it) would be replaced by the archive."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    env = fake_nvidia_smi(tmp_path)
    for target, words in (("/proc/version", "its folder takes no new file"), (str(fifo), "not a regular file")):
        if os.path.exists(target):
            one_line_error(gpudoctor_cmd("report", "--timeout", "30", "-o", target, env=env), f"cannot write {target}: {words}")
    assert fifo.is_fifo() and not (tmp_path / "pid").exists()


def test_check_o_says_on_stderr_where_it_wrote(tmp_path):
    out = tmp_path / "node.json"
    proc = gpudoctor_cmd("check", "--only", "system.os", "--format", "json", "-o", str(out))
    assert proc.stdout == "" and proc.stderr == f"gpudoctor: wrote {out} (json, exit code {proc.returncode})\n"
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)


@pytest.mark.parametrize("args", [["list"], ["list", "--format", "json"], ["check", "--only", "system"],
                                  ["check", "--only", "system", "--format", "json"], ["--help"], ["diff", "{report}", "{report}"]])
def test_output_into_a_closed_pipe_ends_quietly_with_141(args, nogpu_report):
    """The reader is gone before gpudoctor writes (what `| head -1` becomes once head has its line).
    Python's signal docs ('Note on SIGPIPE') give the recipe; 141 is what a shell reports for any tool
    SIGPIPE ends (128 + 13), and click would have said 1, a failed check's code."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([*GPUDOCTOR, *[a.format(report=nogpu_report) for a in args]], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")


@pytest.mark.parametrize("command", ["list", "check --only system"])
def test_gpudoctor_piped_into_head_prints_its_first_line_and_nothing_on_stderr(command):
    line = " ".join(GPUDOCTOR)
    proc = subprocess.run(["bash", "-c", f"{line} {command} | head -1; echo \"status ${{PIPESTATUS[0]}}\" >&2"],
                          capture_output=True, text=True, timeout=60)
    first = subprocess.run([*GPUDOCTOR, *command.split()], capture_output=True, text=True, timeout=60).stdout.splitlines()[0]
    assert proc.stdout.splitlines()[0].split("(")[0] == first.split("(")[0]  # the title line ends with the run's time
    status = proc.stderr.strip()
    assert status in ("status 0", "status 1", "status 141"), proc.stderr  # 141 only when head left before gpudoctor wrote


# -- bare gpudoctor ---------------------------------------------------------------------------------
def test_bare_gpudoctor_prints_its_help_and_exits_0():
    bare = gpudoctor_cmd()
    assert (bare.returncode, bare.stderr) == (0, "")
    assert bare.stdout == gpudoctor_cmd("--help").stdout and "Commands:" in bare.stdout


# -- sibling commands agree -------------------------------------------------------------------------
def test_list_diff_and_smoke_take_o_and_format_json(tmp_path, nogpu_report):
    listed = tmp_path / "checks.json"
    proc = gpudoctor_cmd("list", "--format", "json", "-o", str(listed))
    assert proc.returncode == 0 and proc.stdout == "" and f"wrote {listed}" in proc.stderr
    assert json.loads(listed.read_text()) == json.loads(gpudoctor_cmd("list", "--format", "json").stdout)

    compared = tmp_path / "diff.json"
    proc = gpudoctor_cmd("diff", str(nogpu_report), str(nogpu_report), "--format", "json", "-o", str(compared))
    assert proc.returncode == 0 and proc.stdout == "" and json.loads(compared.read_text())["same"] is True

    env = tmp_path / "env"  # an interpreter without any framework: nothing to train, exit 1, said on stderr
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    smoked = tmp_path / "smoke.json"
    proc = gpudoctor_cmd("smoke", "--device", "cpu", "--python", str(env), "--format", "json", "-o", str(smoked))
    document = json.loads(smoked.read_text())
    jsonschema.validate(document, SCHEMA)
    assert proc.returncode == document["exit_code"] == 1 and proc.stdout == ""
    assert f"wrote {smoked}" in proc.stderr and "nothing was trained" in proc.stderr


def test_report_takes_only_and_skip(tmp_path):
    out = tmp_path / "r.tar.gz"
    proc = gpudoctor_cmd("report", "--only", "system", "--skip", "system.disk", "-o", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(out) as tar:
        document = json.load(tar.extractfile(next(m for m in tar if m.name.endswith("/report.json"))))
    ids = [r["id"] for r in document["results"]]
    assert ids and all(i.startswith("system.") for i in ids) and "system.disk" not in ids
    one_line_error(gpudoctor_cmd("report", "--only", "no.such", "-o", str(tmp_path / "x.tar.gz")), "unknown check id or area: no.such")


def test_check_anonymize_works_for_json_with_the_reports_anonymizer(tmp_path):
    """The identities of test_report's planted machine, through `check --format json --anonymize`: an
    nvidia-smi that prints a GPU UUID, an IP and a MAC address; a pip index URL with a password."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-33497751-baba-a7bf-3038-8645175b5bde) at 10.20.30.40 "
                   "aa:bb:cc:dd:ee:01'\nexit 9\n")
    smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "USER": "mallory-q", "HOME": "/home/mallory-q",
           "PIP_INDEX_URL": "https://alice:pipPassw0rd@10.20.30.41/simple"}
    args = ["check", "--only", "driver,system.os", "--format", "json"]
    plain = gpudoctor_cmd(*args, env=env)
    anonymous = gpudoctor_cmd(*args, "--anonymize", env=env)
    identities = ["33497751-baba", "10.20.30.40", "aa:bb:cc:dd:ee:01", "mallory-q", "pipPassw0rd", "10.20.30.41"]
    assert [i for i in identities if i in plain.stdout] == identities  # the test sees what it must remove
    document = json.loads(anonymous.stdout)
    jsonschema.validate(document, SCHEMA)
    assert [i for i in identities if i in anonymous.stdout] == []
    assert "GPU-00000000-0000-0000-0000-000000000001" in anonymous.stdout and "192.0.2.1" in anonymous.stdout
    if socket.gethostname().split(".")[0].lower() not in COMMON_NAMES | {""}:
        assert json.loads(plain.stdout)["host"] != document["host"] and document["host"].startswith("host-")
    assert [(r["id"], r["status"]) for r in document["results"]] == [(r["id"], r["status"]) for r in json.loads(plain.stdout)["results"]]
    assert anonymous.returncode == plain.returncode == document["exit_code"]
    one_line_error(gpudoctor_cmd("check", "--from", str(tmp_path), "--anonymize"), "--anonymize")


def test_check_from_and_diff_take_an_extracted_report_folder(tmp_path, nogpu_report):
    with tarfile.open(nogpu_report) as tar:
        tar.extractall(tmp_path, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(tmp_path)
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    from_folder = gpudoctor_cmd("check", "--from", str(folder), "--format", "json")
    from_archive = gpudoctor_cmd("check", "--from", str(nogpu_report), "--format", "json")
    assert from_folder.returncode == from_archive.returncode == 1
    verdict = [(r["id"], r["status"], r["summary"], r["fix"]) for r in json.loads(from_folder.stdout)["results"]]
    assert verdict == [(r["id"], r["status"], r["summary"], r["fix"]) for r in json.loads(from_archive.stdout)["results"]]
    assert json.loads(from_folder.stdout)["source"]["host"] == "dev-vm"
    assert gpudoctor_cmd("diff", str(folder), str(nogpu_report)).returncode == 0
    one_line_error(gpudoctor_cmd("check", "--from", str(tmp_path / "nothing-here")), "no such report")
    (tmp_path / "empty").mkdir()
    one_line_error(gpudoctor_cmd("check", "--from", str(tmp_path / "empty")), "a folder without report.json")


def test_report_python_says_what_it_does():
    text = " ".join(gpudoctor_cmd("report", "--help").stdout.split())
    assert "Judge this interpreter and put its probe answers and `pip list` in the archive" in text
