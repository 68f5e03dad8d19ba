"""`pip check` without pip: the same judgement over what the env probe read with importlib.metadata.

A uv virtual environment has no pip, and neither has an interpreter installed without it; `pip check`
cannot run there. pip's check is a pure function over the installed set (pip's
`operations/check.py`): each distribution's requirements, their markers evaluated for that
interpreter (with no extra), against the installed versions. This is that function, answering in
pip check's own words, so python.pip_check reads both the same way.
"""

from __future__ import annotations

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


def broken_requirements(installed: dict[str, dict], markers: dict) -> list[tuple[str, str]]:
    """pip check's lines for the installed set, each with the requirement to install: missing ones and unmet versions.

    >>> broken_requirements({"requests": {"version": "2.32.3", "requires": ["urllib3<3,>=1.21.1"]},
    ...                      "urllib3": {"version": "1.20", "requires": []}}, {"python_version": "3.12"})
    [('requests 2.32.3 has requirement urllib3<3,>=1.21.1, but you have urllib3 1.20.', 'urllib3<3,>=1.21.1')]
    """
    versions = {canonicalize_name(name): info.get("version") or "" for name, info in installed.items()}
    found = []
    for name, info in sorted(installed.items()):
        for text in info.get("requires") or []:
            line = _judge(name, info.get("version") or "", text, versions, markers)
            if line:
                found.append(line)
    return found


def _judge(name: str, version: str, text: str, versions: dict, markers: dict) -> tuple[str, str] | None:
    try:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({**markers, "extra": ""}):
            return None
    except (InvalidRequirement, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return None
    have = versions.get(canonicalize_name(req.name))
    if have is None:
        return f"{name} {version} requires {req.name}, which is not installed.", f"{req.name}{req.specifier}"
    try:
        if req.specifier and not req.specifier.contains(Version(have), prereleases=True):
            return f"{name} {version} has requirement {req}, but you have {req.name} {have}.", f"{req.name}{req.specifier}"
    except InvalidVersion:
        return None
    return None
