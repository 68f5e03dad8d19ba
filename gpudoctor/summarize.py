"""`gpudoctor summarize`: a fleet's reports side by side.

Which nodes fail which checks, grouped by cause (the check and its summary with the numbers that differ between
nodes taken out); which software stacks run and on how many nodes; the smoke test's figures against the fleet's
median per GPU model, naming the outliers. One report per host counts: the newest.
"""

from __future__ import annotations

import os
import re
import statistics
from dataclasses import dataclass, field

from gpudoctor.compat import cuda_of_driver
from gpudoctor.archive import ReportError, load_report
from gpudoctor.speed import smoke_figure

PARALLEL_FROM = 64  # reports; fewer are read in this process
OUTLIER = 0.9  # a figure below this share of its model's fleet median is named
BAD = ("fail", "error")
FRAMEWORK_VERSION = {"torch": "version", "jax": "jax", "tensorflow": "version", "cupy": "cupy"}


@dataclass
class Fleet:
    nodes: dict = field(default_factory=dict)  # host -> digest (see digest())
    unreadable: list = field(default_factory=list)  # (path, why)


def report_paths(paths: list[str]) -> list[str]:
    """The files to read: each file given, and the reports (*.json, *.tar.gz) under each folder."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _, names in sorted(os.walk(path)):
                found += [os.path.join(folder, n) for n in sorted(names) if n.endswith((".json", ".tar.gz", ".tgz")) and not n.startswith(".")]
        else:
            found.append(path)
    return found


def digest(path: str) -> dict:
    """What the summary needs from one report (small, so worker processes send back little), or why it is unreadable."""
    try:
        document = load_report(path).document
    except ReportError as exc:
        return {"path": path, "error": str(exc)}
    bad = [{"id": r["id"], "summary": str(r.get("summary", ""))} for r in document["results"] if r.get("status") in BAD]
    return {"path": path, "host": str(document.get("host") or path), "started_at": str(document.get("started_at", "")),
            "failures": bad, "stack": stack(document), "smoke": smoke_devices(document)}


def gather(paths: list[str]) -> Fleet:
    """Every readable report, the newest per host; the others listed with why they could not be read.
    Parsing JSON is the cost, so a large fleet is read by one worker process per CPU."""
    files = report_paths(paths)
    workers = min(os.cpu_count() or 1, 16)
    if len(files) >= PARALLEL_FROM and workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            digests = list(pool.map(digest, files, chunksize=32))
    else:
        digests = [digest(path) for path in files]
    fleet = Fleet()
    for found in digests:
        if "error" in found:
            fleet.unreadable.append((found["path"], found["error"]))
            continue
        known = fleet.nodes.get(found["host"])
        if known is None or found["started_at"] > known["started_at"]:
            fleet.nodes[found["host"]] = found
    return fleet


def cause(summary: str) -> str:
    """A summary with what differs between nodes (numbers, ids, bus addresses) made general."""
    summary = re.sub(r"GPU-[0-9a-f-]{36}", "GPU-…", summary)
    summary = re.sub(r"\b[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]\b", "BUS", summary, flags=re.I)
    return re.sub(r"\d+(\.\d+)*", "N", summary)


def failures(fleet: Fleet) -> list[dict]:
    """Failing checks grouped by check and cause, the most widespread first."""
    groups: dict = {}
    for host, found in fleet.nodes.items():
        for result in found["failures"]:
            key = (result["id"], cause(result["summary"]))
            group = groups.setdefault(key, {"check": key[0], "cause": key[1], "example": result["summary"], "nodes": []})
            group["nodes"].append(host)
    return sorted(groups.values(), key=lambda g: (-len(g["nodes"]), g["check"], g["cause"]))


def _plain(value):
    return value.get("value") if isinstance(value, dict) and "value" in value else value


def stack(document: dict) -> dict:
    """The node's software as it loads: driver, the CUDA it runs, the GPUs, each judged interpreter's frameworks."""
    facts = document.get("facts") or {}
    nvml, smi = facts.get("nvml") or {}, ((facts.get("nvidia_smi") or {}).get("parsed") or {})
    devices = nvml.get("devices") or smi.get("devices") or []
    names = [d.get("name") for d in devices if isinstance(d, dict) and isinstance(d.get("name"), str)]
    frameworks = []
    for interpreter in (facts.get("python_envs") or {}).get("interpreters") or []:
        for name, key in FRAMEWORK_VERSION.items():
            version = _plain((interpreter.get(name) or {}).get(key))
            if isinstance(version, str):
                frameworks.append(f"{name} {version}")
    return {"driver": (facts.get("driver") or {}).get("version") or nvml.get("driver_version") or smi.get("driver_version") or "none",
            "cuda": cuda_of_driver(nvml.get("cuda_driver_version")) or smi.get("cuda_version") or "none",
            "gpus": ", ".join(f"{names.count(n)} × {n}" for n in sorted(set(names))) or "none",
            "frameworks": ", ".join(sorted(set(frameworks))) or "none"}


def stacks(fleet: Fleet) -> list[dict]:
    counted: dict = {}
    for host, found in fleet.nodes.items():
        counted.setdefault(tuple(found["stack"].items()), []).append(host)
    return sorted(({**dict(key), "nodes": hosts} for key, hosts in counted.items()), key=lambda s: (-len(s["nodes"]), str(s)))


def smoke_devices(document: dict) -> list[dict]:
    """Each GPU the PyTorch smoke test measured: its model, device and figures."""
    devices = []
    for run in ((document.get("facts") or {}).get("smoke") or {}).get("runs") or []:
        if run.get("framework") == "torch":
            devices += [{"model": d.get("name") or "unknown", "device": d.get("device"),
                         "figures": {what: smoke_figure(d, what) for what in ("bf16_tflops", "copy_gbps")}}
                        for d in (run.get("answer") or {}).get("devices") or [] if str(d.get("device", "")).startswith("cuda")]
    return devices


def speeds(fleet: Fleet) -> list[dict]:
    """Per GPU model: the fleet's median matmul and copy figures, and the GPUs below OUTLIER of them."""
    measured: dict = {}
    for host, found in fleet.nodes.items():
        for device in found["smoke"]:
            measured.setdefault(device["model"], []).append((host, device["device"], device["figures"]))
    models = []
    for model, rows in sorted(measured.items()):
        medians = {what: statistics.median(f[what] for _, _, f in rows if f[what]) for what in ("bf16_tflops", "copy_gbps")
                   if any(f[what] for _, _, f in rows)}
        outliers = [{"node": host, "device": device, "what": what, "value": figures[what], "share": round(figures[what] / median, 3)}
                    for host, device, figures in sorted(rows) for what, median in medians.items()
                    if figures.get(what) and figures[what] < OUTLIER * median]
        models.append({"model": model, "gpus": len(rows), "median": medians, "outliers": outliers})
    return models


def summarize(fleet: Fleet) -> dict:
    failing = {host for group in failures(fleet) for host in group["nodes"]}
    return {"nodes": len(fleet.nodes), "failing_nodes": sorted(failing), "failures": failures(fleet), "stacks": stacks(fleet),
            "speed": speeds(fleet), "unreadable": [{"path": p, "why": w} for p, w in fleet.unreadable]}


def _hosts(hosts: list[str], limit: int = 8) -> str:
    shown = sorted(hosts)
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def text_lines(summary: dict, markdown: bool = False) -> list[str]:
    """The summary as text, or as Markdown tables."""
    def table(head, rows):
        if markdown:
            return ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)] + ["| " + " | ".join(map(str, r)) + " |" for r in rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        return ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *rows]]

    title = "## " if markdown else ""
    out = [f"{title}{summary['nodes']} node(s), {len(summary['failing_nodes'])} failing", ""]
    if summary["failures"]:
        out += [f"{title}Failing checks by cause"] + table(["check", "nodes", "cause (first node's words)", "which"],
                                                          [(g["check"], len(g["nodes"]), g["example"][:90], _hosts(g["nodes"])) for g in summary["failures"]]) + [""]
    out += [f"{title}Software stacks"] + table(["nodes", "driver", "CUDA", "GPUs", "frameworks"],
                                               [(len(s["nodes"]), s["driver"], s["cuda"], s["gpus"], s["frameworks"]) for s in summary["stacks"]]) + [""]
    if summary["speed"]:
        rows = [(m["model"], m["gpus"], *(f"{m['median'].get(w, 0):g}" for w in ("bf16_tflops", "copy_gbps")),
                 "; ".join(f"{o['node']} {o['device']} {o['what'].split('_')[0]} {o['value']:g} ({o['share']:.0%})" for o in m["outliers"]) or "none")
                for m in summary["speed"]]
        out += [f"{title}Smoke figures against the fleet median (outliers below {OUTLIER:.0%})"] + table(
            ["GPU model", "GPUs", "median TFLOP/s", "median copy GB/s", "outliers"], rows) + [""]
    out += [f"unreadable: {u['path']}: {u['why']}" for u in summary["unreadable"]]
    return out
