"""scripts/ansible/gpudoctor.yml run by ansible-core's ansible-playbook against this machine (connection: local), as three
inventory hosts: one with a policy it meets, one with a policy no machine meets (64 GPUs), one with a broken policy.

What Ansible does is Ansible's own (https://docs.ansible.com/ansible/latest/collections/ansible/builtin/fetch_module.html:
`flat: true` writes to dest as named; ansible.builtin.fail fails the host; the PLAY RECAP counts failed tasks per host).
Only the policy and system.kernel are judged, so that the verdicts hold on any machine, a GPU server's included.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

PLAYBOOK = Path(__file__).parent.parent / "scripts" / "ansible" / "gpudoctor.yml"
ANSIBLE = shutil.which("ansible-playbook", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
pytestmark = pytest.mark.skipif(not ANSIBLE, reason="ansible-playbook is not installed here: pip install ansible-core (the test extra)")

POLICIES = {
    "meets": '[[waive]]\nid = "gpu.*"\nreason = "the test machine may have no GPU to judge"\nuntil = 2099-01-01\n',
    "short": "[gpus]\ncount = 64\n",
    "broken": "[gpus\ncount = 8\n",
}


@pytest.fixture(scope="module")
def play(tmp_path_factory):
    """One run of the playbook over the three hosts: (stdout, the reports folder)."""
    root = tmp_path_factory.mktemp("ansible")
    lines = []
    for host, text in POLICIES.items():
        (root / f"{host}.toml").write_text(text)
        lines.append(f"{host} ansible_connection=local ansible_python_interpreter={sys.executable} gpudoctor_policy={root / host}.toml")
    (root / "inventory").write_text("\n".join(lines) + "\n")
    extra = {"gpudoctor": f"{sys.executable} -m gpudoctor", "gpudoctor_reports": str(root / "reports"),
             "gpudoctor_report_args": "--only system.kernel", "gpudoctor_check_args": "--only policy,system.kernel"}
    env = {**os.environ, "ANSIBLE_HOME": str(root / "home"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_LOCAL_TEMP": str(root / "tmp"), "ANSIBLE_CONFIG": str(root / "none.cfg")}
    proc = subprocess.run([ANSIBLE, "-i", str(root / "inventory"), str(PLAYBOOK), "-e", json.dumps(extra)],
                          env=env, capture_output=True, text=True, timeout=180, cwd=root)
    return proc.stdout + proc.stderr, root / "reports"


def recap(output: str, host: str) -> dict[str, int]:
    line = re.search(rf"^{host}\s+:\s+(.*)$", output.split("PLAY RECAP")[-1], re.M).group(1)
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


def fatal(output: str, host: str) -> str:
    found = re.search(rf"^fatal: \[{host}\]: FAILED! => (\{{.*\}})$", output, re.M)
    return json.loads(found.group(1))["msg"] if found else ""


def test_a_host_that_meets_its_policy_passes_and_its_archive_is_fetched(play):
    output, reports = play
    assert recap(output, "meets")["failed"] == 0, output
    archive = reports / "meets.tar.gz"
    with tarfile.open(archive) as tar:
        assert any(name.endswith("report.json") for name in tar.getnames())
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


def test_a_host_that_fails_its_policy_fails_with_the_check_and_its_summary(play):
    output, reports = play
    assert recap(output, "short")["failed"] == 1, output
    assert re.fullmatch(r"gpudoctor check failed: policy\.gpu_count: \d+ GPU\(s\) answer; the policy expects 64", fatal(output, "short"))
    assert (reports / "short.tar.gz").stat().st_size > 0  # fetched before the host failed: the evidence for the verdict


def test_a_host_gpudoctor_cannot_judge_fails_with_the_one_line_error(play):
    output, _ = play
    assert recap(output, "broken")["failed"] == 1, output
    message = fatal(output, "broken")
    assert message.startswith("gpudoctor check exited 2: ") and "policy.toml:1: TOML syntax" in message and "\n" not in message
