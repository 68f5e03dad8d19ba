"""Evidence: the raw answers a machine gave, as JSON-able data, and captures loaded from disk.

`LiveHost` records into it; `RecordedHost` answers from it. A capture folder (real outputs
at their paths plus an `evidence.json` saying which file answers which question) loads
into the same structure, so recorded machines replay like live ones.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
from pathlib import Path
from typing import Any, Iterable


def command_key(argv: Iterable[str]) -> str:
    return shlex.join(list(argv))


class Evidence:
    """Raw answers the machine gave, kept as JSON-able data; thread-safe to record into."""

    SECTIONS = ("commands", "files", "listdirs", "stats", "disk_usage", "machine", "env", "user", "nvml",
                "probes", "which", "options", "realpaths")

    def __init__(self, data: dict | None = None):
        self.data: dict[str, Any] = {section: {} for section in self.SECTIONS}
        for key, value in (data or {}).items():
            self.data[key] = value
        self._lock = threading.Lock()

    def record(self, section: str, key: str, value: Any) -> None:
        with self._lock:
            self.data[section][key] = value

    def put(self, section: str, value: Any) -> None:
        """Record a whole section (NVML's answer, the machine's sizes)."""
        with self._lock:
            self.data[section] = value

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.data.get(section, {}).get(key, default)

    def to_dict(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(self.data))

    @classmethod
    def from_dir(cls, folder: str | os.PathLike) -> "Evidence":
        """Load `evidence.json` from a capture folder, resolving `*_file` references.

        A `files_dir` entry records every file under that folder at its absolute path,
        and every folder's listing, so a capture laid out as `files/proc/...` needs no
        listing of its own.
        """
        folder = Path(folder)
        spec = json.loads((folder / "evidence.json").read_text(encoding="utf-8"))
        data = _resolve(spec, folder)
        files_dir = data.pop("files_dir", None)
        if files_dir:
            root = folder / files_dir
            recorded = {}
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    recorded["/" + str(path.relative_to(root))] = {"text": path.read_text(encoding="utf-8", errors="replace")}
            recorded.update(data.get("files", {}))
            data["files"] = recorded
            folders = {"/" + str(p.relative_to(root)): sorted(c.name for c in p.iterdir())
                       for p in root.rglob("*") if p.is_dir()}
            data["listdirs"] = {**folders, **data.get("listdirs", {})}
        return cls(data)


def _resolve(value: Any, folder: Path) -> Any:
    """Replace `{"x_file": path}` by `{"x": text}` and `{"json_file": p, "key": k}` by the JSON."""
    if isinstance(value, list):
        return [_resolve(item, folder) for item in value]
    if not isinstance(value, dict):
        return value
    if "json_file" in value:
        loaded = json.loads((folder / value["json_file"]).read_text(encoding="utf-8"))
        return loaded[value["key"]] if "key" in value else loaded
    resolved = {}
    for key, item in value.items():
        if key.endswith("_file") and isinstance(item, str):
            resolved[key[: -len("_file")]] = (folder / item).read_text(encoding="utf-8", errors="replace")
        else:
            resolved[key] = _resolve(item, folder)
    return resolved
