"""OS identification through `distro`, on real release files of 26 releases (fixtures/os-release/README.md).

Each case replays a real machine's release files through the `os` collector, as `check --from` does, and holds
it to what `distro`'s own test suite expects of those files (id, version) and to NVIDIA's driver repositories
(gpudoctor/knowledge/distros.json: NVIDIA's Driver Installation Guide r580/r610); a derivative takes its base's
repository through ID_LIKE (Ubuntu by UBUNTU_CODENAME, https://wiki.ubuntu.com/Releases; RHEL by its major).
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from evidence_helpers import FIXTURES, file, fixture, judge, this_machine

from gpudoctor import fixes, osinfo
from gpudoctor.evidence import Evidence
from gpudoctor.host import LiveHost, RecordedHost
from gpudoctor.loader import load_plugins
from gpudoctor.runner import Selection, run_checks

RELEASES = FIXTURES / "os-release"

# folder: (id, version, package manager, NVIDIA repository or None, the install command's first word)
CASES = {
    "distro-ubuntu24": ("ubuntu", "24.04", "apt", "ubuntu2404", "sudo apt-get"),
    "distro-ubuntu2604": ("ubuntu", "26.04", "apt", "ubuntu2604", "sudo apt-get"),
    "distro-debian13": ("debian", "13", "apt", "debian13", "sudo apt-get"),
    "distro-kali": ("kali", "2017.1", "apt", None, "sudo apt-get"),
    "distro-raspbian8": ("raspbian", "8", "apt", None, "sudo apt-get"),
    "distro-linuxmint17": ("ubuntu", "14.04", "apt", None, "sudo apt-get"),
    "chef-linuxmint_21": ("linuxmint", "21.3", "apt", "ubuntu2204", "sudo apt-get"),
    "chef-linuxmint_22": ("linuxmint", "22", "apt", "ubuntu2404", "sudo apt-get"),
    "issue-popos2204": ("pop", "22.04", "apt", "ubuntu2204", "sudo apt-get"),
    "chef-zorin": ("zorin", "16", "apt", None, "sudo apt-get"),
    "distro-rhel9": ("rhel", "9.6", "dnf", "rhel9", "sudo dnf"),
    "chef-redhat_8": ("rhel", "8.10", "dnf", "rhel8", "sudo dnf"),
    "distro-rocky9": ("rocky", "9.3", "dnf", "rhel9", "sudo dnf"),
    "chef-rocky_8": ("rocky", "8.9", "dnf", "rhel8", "sudo dnf"),
    "distro-almalinux10": ("almalinux", "10.0", "dnf", "rhel10", "sudo dnf"),
    "chef-alma_9": ("almalinux", "9.6", "dnf", "rhel9", "sudo dnf"),
    "distro-centosstream9": ("centos", "9", "dnf", "rhel9", "sudo dnf"),
    "distro-centos7": ("centos", "7", "dnf", None, "sudo yum"),
    "distro-centos5": ("centos", "5.11", "dnf", None, "sudo yum"),
    "distro-oracle7": ("oracle", "7.5", "dnf", None, "sudo yum"),
    "distro-fedora42": ("fedora", "42", "dnf", "fedora42", "sudo dnf"),
    "distro-amazon2023": ("amzn", "2023", "dnf", "amzn2023", "sudo dnf"),
    "chef-amazon_2": ("amzn", "2", "dnf", None, "sudo yum"),
    "distro-sles12": ("sles", "12.1", "zypper", None, "sudo zypper"),
    "chef-sles_15": ("sles", "15.7", "zypper", "sles15", "sudo zypper"),
    "distro-opensuse15": ("opensuse", "15.2", "zypper", "opensuse15", "sudo zypper"),
}


def release_files(folder: Path) -> dict[str, str]:
    return {"/" + str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def replayed(folder: Path) -> Evidence:
    """This machine's recorded evidence with its release files replaced by another machine's."""
    ev = this_machine()
    found = release_files(folder)
    for path in osinfo.RELEASE_FILES:
        file(ev, path, found.get(path))
    return ev


def os_facts(ev: Evidence) -> dict:
    _, facts, _ = run_checks(load_plugins(external=False), RecordedHost(ev), Selection(only=frozenset({"system.os"})))
    return facts["os"]


def test_every_folder_is_a_case_and_there_are_more_than_ten():
    assert sorted(p.name for p in RELEASES.iterdir() if p.is_dir()) == sorted(CASES) and len(CASES) > 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_real_release_is_identified_with_its_package_manager_and_repository(name):
    ident, version, family, repo, install = CASES[name]
    ev = replayed(RELEASES / name)
    os = os_facts(ev)
    assert (os["id"], os["version"], fixes.family(os), fixes.nvidia_repo(os)) == (ident, version, family, repo)
    assert fixes.install(os, "gcc").startswith(install)
    result = judge(ev, "system.os")
    assert result.status.value == ("pass" if repo else "warn")
    assert (repo in result.summary) if repo else ("not a release NVIDIA's driver packages support" in result.summary)


def test_derivatives_name_their_base_and_get_ubuntus_own_driver_packages():
    mint = os_facts(replayed(RELEASES / "chef-linuxmint_22"))
    assert mint["base"] == {"id": "ubuntu", "version": "24.04"} and mint["pretty_name"] == "Linux Mint 22"
    assert "built on Ubuntu 24.04" in judge(replayed(RELEASES / "chef-linuxmint_22"), "system.os").summary
    assert fixes.install_branch(mint, "580", open_modules=True).startswith("sudo apt-get install -y nvidia-driver-580-open")
    assert fixes.mok_key(mint) == "/var/lib/shim-signed/mok/MOK.der"
    stream = os_facts(replayed(RELEASES / "distro-centosstream9"))
    assert stream["base"] == {"id": "rhel", "version": "9"}
    assert "sudo dnf module enable -y nvidia-driver:open-dkms" in fixes.install_driver(stream)
    assert os_facts(replayed(RELEASES / "distro-rocky9"))["base"] is None  # NVIDIA lists Rocky itself


def test_where_the_name_came_from():
    assert os_facts(replayed(RELEASES / "distro-fedora42"))["source"] == "/usr/lib/os-release"  # /etc has none here
    assert os_facts(replayed(RELEASES / "distro-ubuntu24"))["source"] == "/etc/os-release"
    centos5 = os_facts(replayed(RELEASES / "distro-centos5"))  # older than os-release: distro reads centos-release
    assert (centos5["source"], centos5["pretty_name"]) == ("/etc/centos-release", "CentOS 5.11 (Final)")


def test_lsb_release_alone_names_ubuntu_as_lsb_release_would():
    """Only /etc/lsb-release (the H200 capture's own): distro gets its keys as `lsb_release -a` gives them."""
    text = (FIXTURES / "h200-2026-11-26/files/etc/lsb-release").read_text()
    facts = osinfo.identify({"/etc/lsb-release": text})
    assert (facts["id"], facts["version"], facts["pretty_name"], facts["source"]) == (
        "ubuntu", "24.04", "Ubuntu 24.04.3 LTS", "/etc/lsb-release")
    assert fixes.nvidia_repo(facts) == "ubuntu2404"


def test_the_h200_capture_replays_as_before():
    """Its /etc/os-release is a link into /usr/lib, which the capture lacks: lsb-release names it, as before."""
    os = os_facts(fixture("h200-2026-11-26"))
    assert {k: os[k] for k in ("id", "version", "codename", "pretty_name", "source")} == {
        "id": "ubuntu", "version": "24.04", "codename": "noble", "pretty_name": "Ubuntu 24.04.3 LTS", "source": "/etc/lsb-release"}
    assert judge(fixture("h200-2026-11-26"), "system.os").summary == \
        "Ubuntu 24.04.3 LTS: supported by NVIDIA's driver packages (ubuntu2404)"


def test_live_and_replay_agree_and_both_os_release_files_are_recorded():
    host = LiveHost(timeout=5)
    _, live, _ = run_checks(load_plugins(external=False), host, Selection(only=frozenset({"system.os"})))
    recorded = host.evidence.to_dict()["files"]
    assert "/etc/os-release" in recorded and "/usr/lib/os-release" in recorded
    _, replay, _ = run_checks(load_plugins(external=False), RecordedHost(Evidence(host.evidence.to_dict())),
                              Selection(only=frozenset({"system.os"})))
    assert live["os"] == replay["os"] and live["os"]["id"]


def test_an_unbalanced_quote_costs_its_line_only_and_garbage_never_raises():
    """distro lexes os-release as one shell text: one unbalanced quote would otherwise lose every key."""
    text = (RELEASES / "distro-rhel9/etc/os-release").read_text() + 'X_BROKEN="unterminated\n'
    facts = osinfo.identify({"/etc/os-release": text})
    assert (facts["id"], facts["version"]) == ("rhel", "9.6") and facts["unparsable_lines"] == ['/etc/os-release: X_BROKEN="unterminated']
    facts = osinfo.identify({"/etc/os-release": "\x00\x01 not=an \"os release\nID", "/etc/redhat-release": "\ufffd\n"})
    assert isinstance(facts["id"], str) and facts["base"] is None


def test_docstring_samples():
    assert doctest.testmod(osinfo).failed == 0


def test_a_collector_still_identifying_when_gpudoctor_exits_prints_nothing(tmp_path):
    """Ctrl-C ends gpudoctor while the `os` collector's daemon thread may be writing its release files
    (CI on Python 3.9: "OSError: [Errno 39] Directory not empty: 'etc'" from TemporaryDirectory's clean-up
    at exit, after "gpudoctor: interrupted"). Four threads identify without pause while the interpreter exits."""
    import os
    import subprocess
    import sys
    script = ("import threading, time\nfrom gpudoctor import osinfo\n"
              f"files = {{'/etc/os-release': {(RELEASES / 'distro-debian13' / 'etc' / 'os-release').read_text()!r}}}\n"
              "def loop():\n    while True:\n        osinfo.identify(files)\n"
              "for _ in range(4):\n    threading.Thread(target=loop, daemon=True).start()\n"
              "time.sleep(0.3)\n")
    for _ in range(3):
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "TMPDIR": str(tmp_path)})  # what the frozen threads leave
        assert run.returncode == 0 and run.stderr == ""
