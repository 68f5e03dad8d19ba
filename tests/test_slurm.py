"""scripts/slurm/gpudoctor-slurm against a real single-node Slurm: Debian's munged, slurmctld and slurmd, started here
as root with a generated slurm.conf (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none).

What Slurm does is Slurm's own (https://slurm.schedmd.com/slurm.conf.html: HealthCheckProgram, Prolog "If the Prolog
fails (returns a non-zero exit code), this will result in the node being set to a DRAIN state and the job being
requeued"; https://slurm.schedmd.com/scontrol.html: update NodeName State=DRAIN Reason=, State=RESUME). The node fails
a policy that no machine meets (64 GPUs) and passes one that waives everything it asks, so the test holds on any machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

WRAPPER = Path(__file__).parent.parent / "scripts" / "slurm" / "gpudoctor-slurm"
NEEDED = ("munged", "munge", "slurmctld", "slurmd", "scontrol", "sinfo", "sbatch", "squeue")
MISSING = [name for name in NEEDED if not shutil.which(name)]

pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=f"Slurm is not installed here ({', '.join(MISSING)} missing): "
                                             "apt-get install slurmctld slurmd slurm-client munge"),
    pytest.mark.skipif(os.geteuid() != 0, reason="slurmd and munged run as root in this test"),
]
FAILING = "[gpus]\ncount = 64\n"
PASSING = '[[waive]]\nid = "gpu.*"\nreason = "the test node has no GPU to judge"\nuntil = 2099-01-01\n'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(predicate, what: str, limit: float = 40.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"waited {limit:g} s for {what}")


class Cluster:
    """munged, slurmctld and slurmd in a folder of their own, on free ports, stopped by process id."""

    def __init__(self, root: Path) -> None:
        self.root, self.node = root, socket.gethostname().split(".")[0]
        self.env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf"), "SLURMD_NODENAME": self.node,
                    "GPUDOCTOR": f"{sys.executable} -m gpudoctor", "GPUDOCTOR_REPORTS": str(root / "reports"),
                    "GPUDOCTOR_ARGS": "--quick --only policy,system.kernel", "GPUDOCTOR_DEFAULTS": str(root / "none")}
        self.procs: list[subprocess.Popen] = []

    def write_conf(self) -> None:
        (self.root / "state").mkdir()
        (self.root / "spool").mkdir()
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        (self.root / "prolog.sh").write_text(
            "#!/bin/sh\n" + "".join(f"export {k}='{self.env[k]}'\n" for k in ("SLURM_CONF", "GPUDOCTOR", "GPUDOCTOR_REPORTS", "GPUDOCTOR_ARGS", "GPUDOCTOR_DEFAULTS"))
            + f"export GPUDOCTOR_POLICY='{self.root / 'policy.toml'}' PATH='{os.environ['PATH']}'\nexec {WRAPPER} prolog\n")
        (self.root / "prolog.sh").chmod(0o755)
        r = self.root
        (r / "slurm.conf").write_text(f"""ClusterName=gpudoctor
SlurmctldHost={self.node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={r}/munge.socket
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmctldLogFile={r}/slurmctld.log
SlurmdLogFile={r}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/linear
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
Prolog={r}/prolog.sh
NodeName={self.node} CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def start(self) -> None:
        self.write_conf()
        r = self.root
        self._daemon(["munged", "--foreground", "--force", f"--socket={r}/munge.socket", f"--key-file={r}/munge.key",
                      f"--log-file={r}/munged.log", f"--pid-file={r}/munged.pid", f"--seed-file={r}/munged.seed"])
        _wait(lambda: (r / "munge.socket").exists(), "munged's socket")
        self._daemon(["slurmctld", "-D", "-c", "-f", str(r / "slurm.conf")])
        self._daemon(["slurmd", "-D", "-c", "-f", str(r / "slurm.conf")])
        _wait(lambda: self.state()[0] == "idle", "the node to come up idle")

    def _daemon(self, argv: list[str]) -> None:
        log = open(self.root / f"{argv[0]}.out", "w")
        self.procs.append(subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)

    def run(self, *argv: str, check: bool = True) -> str:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60, check=check).stdout

    def state(self) -> tuple[str, str]:
        out = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T|%E", check=False).strip()
        state, _, reason = (out.splitlines() or ["|"])[0].partition("|")
        return state.rstrip("*~#$@%!^-"), reason

    def healthcheck(self, policy: str) -> subprocess.CompletedProcess:
        (self.root / "policy.toml").write_text(policy)
        env = {**self.env, "GPUDOCTOR_POLICY": str(self.root / "policy.toml")}
        return subprocess.run([str(WRAPPER), "healthcheck"], env=env, capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_a_failing_node_is_drained_with_its_reason_and_resumed_when_it_passes(cluster):
    proc = cluster.healthcheck(FAILING)
    assert proc.returncode == 0, proc.stderr
    reasons = [line.split("|")[0].rstrip() + "|" + line.split("|")[1] for line in cluster.run("sinfo", "-R", "-h", "-o", "%300E|%N").splitlines()]
    # as many GPUs as this machine answers with (none here; one where the suite runs on a GPU server or its simulation)
    assert any(re.fullmatch(rf"gpudoctor: policy\.gpu_count: \d+ GPU\(s\) answer; the policy expects 64\|{cluster.node}", r) for r in reasons), reasons
    assert cluster.state()[0] in ("drained", "draining")
    latest = cluster.root / "reports" / f"{cluster.node}.json"
    kept = json.loads(latest.read_text())
    assert kept["exit_code"] == 1 and stat.S_IMODE(latest.stat().st_mode) == 0o600
    assert len(list((cluster.root / "reports").glob(f"{cluster.node}-*.json"))) >= 1  # each failure kept
    proc = cluster.healthcheck(PASSING)
    assert proc.returncode == 0, proc.stderr
    assert cluster.state() == ("idle", "none")


def test_an_administrators_drain_is_never_resumed_nor_reworded(cluster):
    cluster.run("scontrol", "update", f"nodename={cluster.node}", "state=drain", "reason=admin: PSU swap on Tuesday")
    try:
        assert cluster.healthcheck(PASSING).returncode == 0
        assert cluster.state() == ("drained", "admin: PSU swap on Tuesday")
        assert cluster.healthcheck(FAILING).returncode == 0
        assert cluster.state() == ("drained", "admin: PSU swap on Tuesday")
    finally:
        cluster.run("scontrol", "update", f"nodename={cluster.node}", "state=resume")


def test_a_long_reason_is_cut_to_fit_and_kept_whole_by_slurm(cluster):
    long_model = "NVIDIA " + "H" * 400
    # two expectations no machine meets (64 GPUs, a driver >= 9999), so the reason has more than one failure on any machine
    proc = cluster.healthcheck(f'[gpus]\ncount = 64\n[driver]\nversion = ">=9999"\n[[python]]\npath = "/{long_model}"\nframeworks = {{ torch = "*" }}\n')
    try:
        assert proc.returncode == 0, proc.stderr
        state, reason = cluster.state()
        assert reason.startswith("gpudoctor: ") and len(reason) <= 255 and reason.endswith(("…", ")")), reason
        assert "more)" in reason or reason.endswith("…")
    finally:
        assert cluster.healthcheck(PASSING).returncode == 0
    assert cluster.state()[0] == "idle"


def test_the_prolog_drains_with_its_reason_and_slurm_requeues_the_job(cluster):
    (cluster.root / "policy.toml").write_text(FAILING)
    job = cluster.run("sbatch", "--parsable", "--output", str(cluster.root / "slurm-%j.out"), "--wrap", "true").strip()
    try:
        _wait(lambda: cluster.state()[0] in ("drained", "draining"), "the prolog to drain the node")
        assert re.fullmatch(r"gpudoctor: policy\.gpu_count: \d+ GPU\(s\) answer; the policy expects 64", cluster.state()[1])
        # requeued once the prolog exits 1, not run on the failing node
        queued = _wait(lambda: (lambda s: s if s.startswith("PENDING") else "")(cluster.run("squeue", "-h", "-j", job, "-o", "%T|%r", check=False).strip()),
                       "the job to be requeued")
        assert "requeued" in queued, queued
    finally:
        cluster.run("scancel", job, check=False)
        (cluster.root / "policy.toml").write_text(PASSING)
    assert cluster.healthcheck(PASSING).returncode == 0
    _wait(lambda: cluster.state()[0] == "idle", "the node to be resumed")
