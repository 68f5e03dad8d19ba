"""`--policy FILE`: what a node must be, read from TOML and resolved for one host.

One file serves a fleet: the top-level sections hold what every node must be, and each
`[[hosts]]` entry whose `match` glob fits the host name overrides them key by key (waivers and
warnings that fail add up). Anything wrong in the file is a `PolicyError` whose message names
the file, the line and the key, so the CLI can refuse it in one line (exit 2)::

    [gpus]
    count = 8
    model = "NVIDIA H100*"

    [[hosts]]
    match = "l4-*"
    [hosts.gpus]
    count = 4
"""

from __future__ import annotations

import datetime
import fnmatch
import re
import sys
from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from gpudoctor.gpus import COMPUTE_MODES as NVML_COMPUTE_MODES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 and 3.10
    import tomli as tomllib

FRAMEWORKS = ("torch", "jax", "tensorflow", "cupy")
XID_CLASSES = ("hardware", "driver", "application")
# what `nvidia-smi -c` sets: NVML's modes but Exclusive_Thread, which is gone
COMPUTE_MODES = tuple(sorted(mode for mode in NVML_COMPUTE_MODES.values() if mode != "Exclusive_Thread"))


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is the one line the user sees."""


def _int(low: int, high: int, allowed: tuple = ()):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high or (allowed and value not in allowed):
            choices = ", ".join(map(str, allowed)) if allowed else f"{low} to {high}"
            raise ValueError(f"expected a whole number ({choices}), got {value!r}")
        return value
    return check


def _bool(value):
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _text(value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _compute_mode(value):
    mode = next((m for m in COMPUTE_MODES if isinstance(value, str) and value.lower() == m.lower()), None)
    if mode is None:
        raise ValueError(f"expected one of {', '.join(COMPUTE_MODES)}, got {value!r}")
    return mode


def _share(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"expected a share between 0 and 1 (0.8 is 80 %), got {value!r}")
    return float(value)


def _gib(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"expected a positive number of GiB, got {value!r}")
    return float(value)


def _specifier(value):
    try:
        SpecifierSet(_text(value))
    except InvalidSpecifier:
        raise ValueError(f"expected a version specifier like '>=550,<600', got {value!r}") from None
    return value


def _branch(value):
    if not isinstance(value, str) or not re.fullmatch(r"\d{3}", value):
        raise ValueError(f"expected a driver branch in quotes like \"580\", got {value!r}")
    return value


def _globs(value, empty: bool = False):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not (value or empty) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a glob or a list of globs, got {value!r}")
    return value


def _id_globs(value):
    return _globs(value, empty=True)


def _date(value):
    if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
        raise ValueError(f"expected a date like 2027-01-31 (no quotes), got {value!r}")
    return value


def _frameworks(value):
    if not isinstance(value, dict) or not value:
        raise ValueError("expected a table of framework = version specifier, like { torch = \">=2.4\" }")
    for name, spec in value.items():
        if name not in FRAMEWORKS:
            raise KeyError(name, FRAMEWORKS)
        _specifier(spec) if spec != "*" else None
    return value


def _xid_classes(value):
    if not isinstance(value, dict):
        raise ValueError("expected a table of Xid = class, like { 13 = \"hardware\" }")
    for code, kind in value.items():
        if not code.isdigit():
            raise KeyError(code, ("Xid numbers",))
        if kind not in XID_CLASSES:
            raise ValueError(f"expected one of {', '.join(XID_CLASSES)} for Xid {code}, got {kind!r}")
    return {int(code): kind for code, kind in value.items()}


SECTIONS = {
    "gpus": {"count": _int(0, 64), "model": _text, "memory_min_gib": _gib, "ecc": _bool, "mig": _bool,
             "persistence": _bool, "compute_mode": _compute_mode, "pcie_gen": _int(1, 6), "pcie_width": _int(1, 32, (1, 2, 4, 8, 12, 16, 32)), "p2p": _bool},
    "driver": {"version": _specifier, "branch": _branch, "cuda": _specifier},
    "smoke": {"min_speed_share": _share},
    "checks": {"warnings_fail": _id_globs, "xid_classes": _xid_classes},
}
PYTHON = {"path": _text, "frameworks": _frameworks, "sees_all_gpus": _bool}
WAIVER = {"id": _text, "reason": _text, "until": _date}
TOP = {"description": _text}


@dataclass
class Waiver:
    id: str
    reason: str
    until: datetime.date
    line: int = 0


@dataclass
class Policy:
    """One host's expectations, after the matching [[hosts]] entries were applied."""

    path: str
    host: str
    gpus: dict = field(default_factory=dict)
    driver: dict = field(default_factory=dict)
    smoke: dict = field(default_factory=dict)
    pythons: list = field(default_factory=list)
    warnings_fail: list = field(default_factory=list)
    xid_classes: dict = field(default_factory=dict)
    waivers: list = field(default_factory=list)
    matched: list = field(default_factory=list)

    def interpreter_paths(self) -> list[str]:
        """The interpreters the policy names exactly (no glob), to judge when no --python is given."""
        return [entry["path"] for entry in self.pythons if "path" in entry and not any(c in entry["path"] for c in "*?[")]

    def to_dict(self) -> dict:
        """The resolved policy as facts, for reports and `check --from`."""
        return {"path": self.path, "host": self.host, "matched": self.matched, "gpus": self.gpus, "driver": self.driver,
                "smoke": self.smoke, "python": self.pythons, "warnings_fail": self.warnings_fail,
                "xid_classes": {str(k): v for k, v in self.xid_classes.items()},
                "waivers": [{"id": w.id, "reason": w.reason, "until": w.until.isoformat()} for w in self.waivers]}


class _Lines:
    """Where each key of a TOML text was written: 'hosts[1].gpus.count' -> line number."""

    HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
    KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        arrays: dict[str, int] = {}
        table = ""
        for number, line in enumerate(text.splitlines(), 1):
            header = self.HEADER.match(line)
            if header:
                table = self._path(header.group(2), arrays)
                if header.group(1) == "[[":
                    arrays[table] = arrays.get(table, -1) + 1
                    table = f"{table}[{arrays[table]}]"
                self.lines.setdefault(table, number)
                continue
            key = self.KEY.match(line)
            if key and not line.lstrip().startswith("#"):
                dotted = ".".join(part.strip().strip("\"'") for part in key.group(1).split("."))
                self.lines.setdefault(f"{table}.{dotted}" if table else dotted, number)

    @staticmethod
    def _path(name: str, arrays: dict[str, int]) -> str:
        parts, path = [p.strip().strip("\"'") for p in name.split(".")], ""
        for part in parts:
            path = f"{path}.{part}" if path else part
            if path in arrays:
                path = f"{path}[{arrays[path]}]"
        return path

    def of(self, key: str) -> int:
        """The line of `key`, or of its nearest enclosing table."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = re.sub(r"(\[\d+\]|\.[^.]+|^[^.\[]+)$", "", key)
        return 1


def load_policy(path: str) -> dict:
    """The file's validated contents (still for every host); PolicyError on anything wrong."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise PolicyError(f"{path}:1: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        line = f"{found.group(1)}: TOML syntax at column {found.group(2)}" if found else "1: TOML syntax"
        raise PolicyError(f"{path}:{line}: {message}") from None
    lines = _Lines(text)
    return {"path": path, "base": _section_set(data, "", lines, path, top=True),
            "hosts": [_host(entry, f"hosts[{i}]", lines, path) for i, entry in enumerate(_array(data, "hosts", lines, path))]}


def _problem(path: str, lines: _Lines, key: str, message: str) -> PolicyError:
    return PolicyError(f"{path}:{lines.of(key)}: {key}: {message}")


def _array(data: dict, name: str, lines: _Lines, path: str, prefix: str = "") -> list:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _problem(path, lines, prefix + name, f"expected [[{prefix + name}]] tables")
    return value


def _fields(table, schema: dict, key: str, lines: _Lines, path: str) -> dict:
    if not isinstance(table, dict):
        raise _problem(path, lines, key, "expected a table")
    out = {}
    for name, value in table.items():
        full = f"{key}.{name}" if key else name
        if name not in schema:
            raise _problem(path, lines, full, f"unknown key (known here: {', '.join(schema)})")
        try:
            out[name] = schema[name](value)
        except KeyError as exc:
            bad, known = exc.args
            raise _problem(path, lines, f"{full}.{bad}", f"unknown key (known here: {', '.join(known)})") from None
        except ValueError as exc:
            raise _problem(path, lines, full, str(exc)) from None
    return out


def _section_set(data: dict, prefix: str, lines: _Lines, path: str, top: bool = False) -> dict:
    allowed = set(SECTIONS) | {"python", "waive"} | (set(TOP) | {"hosts"} if top else {"match"})
    for name in data:
        if name not in allowed:
            raise _problem(path, lines, prefix + name, f"unknown key (known here: {', '.join(sorted(allowed))})")
    out = {name: _fields(data[name], schema, prefix + name, lines, path) for name, schema in SECTIONS.items() if name in data}
    if "python" in data:
        out["python"] = [_fields(entry, PYTHON, f"{prefix}python[{i}]", lines, path)
                         for i, entry in enumerate(_array(data, "python", lines, path, prefix))]
    out["waive"] = [_waiver(entry, f"{prefix}waive[{i}]", lines, path) for i, entry in enumerate(_array(data, "waive", lines, path, prefix))]
    if top and "description" in data:
        _fields({"description": data["description"]}, TOP, "", lines, path)
    return out


def _waiver(entry: dict, key: str, lines: _Lines, path: str) -> Waiver:
    fields = _fields(entry, WAIVER, key, lines, path)
    missing = [name for name in WAIVER if name not in fields]
    if missing:
        raise _problem(path, lines, key, f"a waiver needs {', '.join(missing)} (id, reason and until: the date it expires)")
    return Waiver(fields["id"], fields["reason"], fields["until"], lines.of(key))


def _host(entry: dict, key: str, lines: _Lines, path: str) -> dict:
    if "match" not in entry:
        raise _problem(path, lines, key, "a [[hosts]] entry needs match = \"host-name-glob\"")
    try:
        globs = _globs(entry["match"])
    except ValueError as exc:
        raise _problem(path, lines, f"{key}.match", str(exc)) from None
    return {"match": globs, **_section_set({k: v for k, v in entry.items() if k != "match"}, f"{key}.", lines, path)}


def resolve(loaded: dict, host: str) -> Policy:
    """The policy for one host: the base, then every [[hosts]] entry whose glob matches its name (short or full)."""
    names = {host.lower(), host.split(".")[0].lower()}
    policy = Policy(loaded["path"], host)
    for index, layer in enumerate([loaded["base"]] + loaded["hosts"]):
        if index and not any(fnmatch.fnmatchcase(name, glob.lower()) for glob in layer["match"] for name in names):
            continue
        if index:
            policy.matched.append(" ".join(layer["match"]))
        policy.gpus.update(layer.get("gpus", {}))
        policy.driver.update(layer.get("driver", {}))
        policy.smoke.update(layer.get("smoke", {}))
        checks = layer.get("checks", {})
        policy.warnings_fail += checks.get("warnings_fail", [])
        policy.xid_classes.update(checks.get("xid_classes", {}))
        policy.waivers += layer.get("waive", [])
        if "python" in layer:
            policy.pythons = layer["python"]
    return policy
