"""Comparing two reports: versions, facts and statuses that differ, as diff(1) would say.

Facts are flattened to dotted paths so any two reports compare leaf by leaf; list items that
carry a name (a package, an interpreter, a GPU) are keyed by it, not by position, so one
extra package does not make every later one differ. Readings that change from minute to
minute (temperatures, free memory, durations) are left out: they are not differences.
"""

from __future__ import annotations

from typing import Any, Iterator

IDENTITY_KEYS = ("name", "path", "python", "uuid", "bus_id", "index", "prefix")
VOLATILE = {"duration_s", "s", "free", "used", "bar1Free", "bar1Used", "temperature_gpu", "power_usage_mw",
            "clock_sm", "clock_mem", "pcie_gen_cur", "processes", "memory_available", "date", "stderr_tail",
            "throttle_reasons"}  # and every timing: a name ending in _s


def flat_facts(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, scalar) for every leaf; a list of scalars is one leaf."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flat_facts(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        for index, item in enumerate(value):
            ident = next((item[k] for k in IDENTITY_KEYS if isinstance(item, dict) and isinstance(item.get(k), (str, int))), index)
            yield from flat_facts(item, f"{path}[{ident}]")
    elif isinstance(value, list):
        yield path, ", ".join(str(item) for item in value)
    else:
        yield path, value


def _is_version(path: str) -> bool:
    return "version" in path.lower()


def _volatile(path: str) -> bool:
    return any(name in VOLATILE or name.endswith("_s") for name in (part.split("[")[0] for part in path.split(".")))


def compare(a: dict, b: dict) -> dict:
    """What differs between two report documents; `same` is true when nothing does."""
    facts_a = {p: v for p, v in flat_facts(a.get("facts") or {}) if not _volatile(p)}
    facts_b = {p: v for p, v in flat_facts(b.get("facts") or {}) if not _volatile(p)}
    changed = [{"path": p, "a": facts_a.get(p), "b": facts_b.get(p)}
               for p in sorted(facts_a.keys() | facts_b.keys()) if facts_a.get(p) != facts_b.get(p)]
    status_a = {r["id"]: r["status"] for r in a.get("results") or []}
    status_b = {r["id"]: r["status"] for r in b.get("results") or []}
    results = [{"id": i, "a": status_a.get(i), "b": status_b.get(i)}
               for i in sorted(status_a.keys() | status_b.keys()) if status_a.get(i) != status_b.get(i)]
    versions = [row for row in changed if _is_version(row["path"])]
    facts = [row for row in changed if not _is_version(row["path"])]
    return {"a": _about(a), "b": _about(b), "same": not (results or changed),
            "versions": versions, "results": results, "facts": facts}


def _about(document: dict) -> dict:
    return {k: document.get(k) for k in ("host", "started_at", "gpudoctor_version", "summary")}


def text_lines(diff: dict, verbose: bool = False, limit: int = 30) -> list[str]:
    """The comparison for a terminal: versions first, then statuses, then other facts."""
    a, b = diff["a"], diff["b"]
    lines = [f"A: {a['host']}, {a['started_at']}, gpudoctor {a['gpudoctor_version']}",
             f"B: {b['host']}, {b['started_at']}, gpudoctor {b['gpudoctor_version']}"]
    if diff["same"]:
        return lines + ["The reports agree: same versions, facts and statuses."]
    for title, rows, key in (("Versions", diff["versions"], "path"), ("Statuses", diff["results"], "id"),
                             ("Facts", diff["facts"], "path")):
        if not rows:
            continue
        shown = rows if verbose else rows[:limit]
        width = min(max(len(str(r[key])) for r in shown), 70)
        lines += ["", f"{title} ({len(rows)} differ)"]
        lines += [f"  {str(r[key]):<{width}}  {_show(r['a'])} → {_show(r['b'])}" for r in shown]
        if len(shown) < len(rows):
            lines.append(f"  … {len(rows) - len(shown)} more (-v shows all)")
    return lines


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "…"
