"""Which Linux distribution this is, through `distro`, live and on replay alike.

`distro` knows the distributions' quirks (release files of releases older than os-release,
normalised ids, `/usr/lib/os-release` where `/etc` has none). gpudoctor reads the files it
looks at through the host, so they are recorded as evidence, and hands them to `distro` in a
folder of their own (its `root_dir`): a live run and `check --from` see the same files and
give the same answer. `/etc/lsb-release` is what `lsb_release -a` reads on Debian and Ubuntu;
`distro` takes it from that command, which a root_dir excludes, so its keys are given to
`distro` as that command's answer.

A derivative that NVIDIA does not package for (Pop!_OS, Linux Mint, CentOS Stream) gets its
`base`: the Ubuntu release its `UBUNTU_CODENAME` names, or the RHEL major of a rebuild that
says it is like `rhel`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile

import distro

from gpudoctor import kb

# os-release in both places, lsb-release, debian_version, and the release files that releases
# older than os-release have (the names distro 1.9 falls back on when /etc cannot be listed).
RELEASE_FILES = (
    "/etc/os-release", "/usr/lib/os-release", "/etc/lsb-release", "/etc/debian_version",
    *(f"/etc/{name}" for name in (
        "SuSE-release", "altlinux-release", "arch-release", "base-release", "centos-release", "fedora-release",
        "gentoo-release", "mageia-release", "mandrake-release", "mandriva-release", "mandrivalinux-release",
        "manjaro-release", "oracle-release", "redhat-release", "rocky-release", "sl-release", "slackware-version")),
)
LSB_KEYS = {"DISTRIB_ID": "distributor_id", "DISTRIB_RELEASE": "release", "DISTRIB_CODENAME": "codename",
            "DISTRIB_DESCRIPTION": "description"}


def identify(files: dict[str, str]) -> dict:
    """The `os` facts from release files' texts by path (those that exist); never raises.

    >>> identify({"/etc/os-release": 'ID=pop\\nID_LIKE="ubuntu debian"\\nVERSION_ID="22.04"\\nUBUNTU_CODENAME=jammy\\n'})["base"]
    {'id': 'ubuntu', 'version': '22.04'}
    """
    dropped = []
    # not TemporaryDirectory: its clean-up at exit races a collector thread still writing here after Ctrl-C
    root = tempfile.mkdtemp(prefix="gpudoctor-os-")
    try:
        for path, text in files.items():
            if path in RELEASE_FILES and text is not None:
                if path.endswith("os-release"):  # distro lexes the whole file: one unbalanced quote would lose all of it
                    text, bad = _parsable_lines(text)
                    dropped += [f"{path}: {line}" for line in bad]
                target = os.path.join(root, path.lstrip("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w", encoding="utf-8", errors="replace") as handle:
                    handle.write(text)
        found = _Recorded(root, _lsb(files.get("/etc/lsb-release")))
        try:
            release = found.os_release_info()
            facts = {
                "id": found.id(),
                "version": found.version(),
                "codename": found.codename(),
                "pretty_name": found.name(pretty=True),
                "like": found.like().lower(),
                "source": _source(found, root, release),
            }
        except (ValueError, OSError, UnicodeError) as exc:  # a release file distro cannot read
            release, facts = {}, {"id": "", "version": "", "codename": "", "pretty_name": "", "like": "", "source": None,
                                  "error": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    facts["base"] = base_release(facts, release)
    if dropped:
        facts["unparsable_lines"] = dropped[:10]
    return facts


def _parsable_lines(text: str) -> tuple[str, list[str]]:
    """The lines of an os-release that a shell would parse, and those it would not."""
    good, bad = [], []
    for line in text.splitlines():
        try:
            shlex.split(line, comments=True)
        except ValueError:
            bad.append(line[:200])
            continue
        good.append(line)
    return "\n".join(good) + "\n", bad


class _Recorded(distro.LinuxDistribution):
    """distro over a root folder, with lsb-release's keys as `lsb_release -a`'s answer."""

    def __init__(self, root: str, lsb: dict):
        super().__init__(root_dir=root)
        self._lsb = lsb

    @property
    def _lsb_release_info(self) -> dict:  # distro runs `lsb_release -a` for this, which a root_dir rules out
        return self._lsb


def _lsb(text: str | None) -> dict:
    """/etc/lsb-release's keys under the names `lsb_release -a` gives them."""
    values = {}
    for line in (text or "").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key in LSB_KEYS:
            values[LSB_KEYS[key]] = value.strip().strip("\"'")
    return values


def _source(found, root: str, release: dict) -> str | None:
    """Which recorded file named the distribution."""
    if release:
        return "/" + os.path.relpath(found.os_release_file, root)
    if found.lsb_release_info():
        return "/etc/lsb-release"
    if found.distro_release_file:
        return "/" + os.path.relpath(found.distro_release_file, root)
    return None


def base_release(facts: dict, release: dict) -> dict | None:
    """The release NVIDIA packages for that this derivative is built on: Ubuntu by its codename, RHEL by its major."""
    table = kb.load("distros")
    if facts["id"] in table["supported"]:
        return None
    like = facts["like"].split()
    codename = release.get("ubuntu_codename")
    if "ubuntu" in like and codename in table["ubuntu_codenames"]:
        return {"id": "ubuntu", "version": table["ubuntu_codenames"][codename]}
    major = facts["version"].split(".")[0]
    if ("rhel" in like or "centos" in like) and major.isdigit():
        return {"id": "rhel", "version": major}
    return None
