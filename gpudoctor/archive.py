"""The report archive's format: written privately and whole, read back without extracting anything.

`write_tar` puts members in a .tar.gz with mode 0600, through a private folder and a rename; `load_report`
reads an archive, a bare report.json or an extracted archive's folder, and refuses corrupt, oversized, unsafe
or unknown-schema input with one line (`ReportError`).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gpudoctor import render

ARCHIVE_CAP = 256 << 20  # a report is a few MiB; anything this large is not one
MEMBER_CAP = 64 << 20
TOTAL_CAP = 512 << 20
MEMBERS_CAP = 20_000


class ReportError(Exception):
    """A report that cannot be read; the message is one line for the user."""


def unsafe_target(path: str) -> str | None:
    """Why `path` must not be written (a link, another user's file, a folder), or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link (a report is never written through one)"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if st.st_uid != os.getuid():
        return "a file of another user"
    return None


def write_tar(path: str, top: str, members: dict[str, bytes]) -> int:
    """The archive, mode 0600 whatever the umask, built in a private folder beside `path` and renamed
    onto it: never written through a link or over another user's file, never half-written."""
    target = Path(path)
    why = unsafe_target(path)
    if why:
        raise ReportError(f"cannot write {path}: {why}")
    folder = tempfile.mkdtemp(prefix=".gpudoctor-", dir=target.parent)  # 0700, this user's
    partial = os.path.join(folder, target.name)
    try:
        handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
            for name, data in sorted(members.items()):
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(data))
        os.replace(partial, target)  # a rename replaces a link planted meanwhile; it never follows it
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return target.stat().st_size


@dataclass
class Loaded:
    document: dict
    evidence: dict | None


def load_report(path: str) -> Loaded:
    """A report archive, report.json or an extracted archive's folder, checked; an archive is never extracted to disk."""
    file = Path(path)
    if file.is_dir():
        return _load_folder(file, path)
    if not file.is_file():
        raise ReportError(f"{path}: no such report file")
    size = file.stat().st_size
    if size > ARCHIVE_CAP:
        raise ReportError(f"{path}: {size >> 20} MiB, far larger than a report can be; refused")
    with file.open("rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b" or (magic[:1] != b"{" and tarfile.is_tarfile(file)):  # a JSON report is never a tar
        members = _read_archive(file, "r:gz" if magic == b"\x1f\x8b" else "r:")
        if "report.json" not in members:
            raise ReportError(f"{path}: no report.json in this archive; is it a gpudoctor report?")
        document, evidence = _parse(members["report.json"], path), members.get("evidence.json")
        evidence = _parse(evidence, path) if evidence is not None else None
    else:
        document, evidence = _parse(file.read_bytes(), path), None
    return _checked(document, evidence, path)


def _checked(document: dict, evidence: dict | None, path: str) -> Loaded:
    _validate(document, path)
    if evidence is not None and not all(isinstance(evidence.get(s, {}), dict) for s in ("commands", "files", "probes")):
        raise ReportError(f"{path}: evidence.json is not gpudoctor evidence")
    return Loaded(document, evidence)


def _load_folder(folder: Path, path: str) -> Loaded:
    """An extracted archive: the folder holding report.json (and evidence.json, when kept)."""
    members = {}
    for name in ("report.json", "evidence.json"):
        member = folder / name
        if member.is_file():
            if member.stat().st_size > MEMBER_CAP:
                raise ReportError(f"{path}: {name} is far larger than a report can be; refused")
            try:
                members[name] = member.read_bytes()
            except OSError as exc:
                raise ReportError(f"{path}: cannot read {name} ({exc.strerror or exc})") from None
    if "report.json" not in members:
        raise ReportError(f"{path}: a folder without report.json; give the extracted report's folder (gpudoctor-report-HOST-TIME)")
    document = _parse(members["report.json"], path)
    evidence = _parse(members["evidence.json"], path) if "evidence.json" in members else None
    return _checked(document, evidence, path)


def _read_archive(file: Path, mode: str) -> dict[str, bytes]:
    """report.json and evidence.json from the archive, after every member passed the safety rules."""
    wanted: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(file, mode) as tar:
            for count, member in enumerate(tar, 1):
                name = PurePosixPath(member.name)
                if member.name.startswith(("/", "\\")) or ".." in name.parts or re.match(r"^[A-Za-z]:", member.name):
                    raise ReportError(f"{file}: member {member.name!r} would land outside the report; refused")
                if not (member.isfile() or member.isdir()):
                    raise ReportError(f"{file}: member {member.name!r} is a link or device, which no report holds; refused")
                total += member.size
                if count > MEMBERS_CAP or member.size > MEMBER_CAP or total > TOTAL_CAP:
                    raise ReportError(f"{file}: far larger than a report can be ({count} members, {total >> 20} MiB); refused")
                if member.isfile() and name.name in ("report.json", "evidence.json") and len(name.parts) <= 2:
                    wanted[name.name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        why = " ".join(str(exc).split())[:160]
        raise ReportError(f"{file}: corrupt or truncated archive ({why or type(exc).__name__})") from None
    return wanted


def _parse(data: bytes, path: str):
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a gpudoctor report (not JSON: {exc})") from None
    if not isinstance(value, dict):
        raise ReportError(f"{path}: not a gpudoctor report (JSON {type(value).__name__}, not an object)")
    return value


def _validate(document: dict, path: str) -> None:
    version = document.get("schema_version")
    if version is None:
        raise ReportError(f"{path}: not a gpudoctor report (no schema_version)")
    if version != render.SCHEMA_VERSION:
        raise ReportError(f"{path}: unknown schema version {version!r}; this gpudoctor reads {render.SCHEMA_VERSION}")
    results = document.get("results")
    if not isinstance(results, list) or not isinstance(document.get("facts"), dict):
        raise ReportError(f"{path}: not a gpudoctor report (no results or facts)")
    if not all(isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("status"), str) for r in results):
        raise ReportError(f"{path}: not a gpudoctor report (a result without an id or status)")
