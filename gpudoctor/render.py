"""Rendering a run: the terminal verdict and the JSON document, from the same results.

The text verdict is built as (text, style) segments, written with rich on a colour
terminal and as plain text when piped or when NO_COLOR is set, so both show the
same words and fixes stay copy-pasteable.
"""

from __future__ import annotations

import json
from typing import IO, Iterable

from gpudoctor import __version__
from gpudoctor.gpus import gpu_devices
from gpudoctor.models import Result, Run, Status

SCHEMA_VERSION = 1
MARKS = {Status.PASS: ("✓", "green"), Status.WARN: ("!", "yellow"), Status.FAIL: ("✗", "red"),
         Status.ERROR: ("✗", "red"), Status.SKIP: ("-", "dim")}
Line = list  # [(text, style), ...]


def to_json(run: Run, exit_code: int, source: dict | None = None) -> str:
    """The design's JSON document (schema_version 1); `source` names the report it re-judged."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "gpudoctor_version": __version__,
        "host": run.host,
        "started_at": run.started_at,
        "duration_s": round(run.duration_s, 3),
        "exit_code": exit_code,
        "summary": run.counts(),
        "results": [r.to_dict() for r in run.results],
        "facts": run.facts,
        "collector_durations_s": {name: round(s, 4) for name, s in sorted(run.collector_s.items())},
    }
    if source:
        document["source"] = source
    return json.dumps(document, indent=2, sort_keys=False, default=str) + "\n"


def _areas(results: list[Result]) -> dict[str, list[Result]]:
    areas: dict[str, list[Result]] = {}
    for result in results:
        areas.setdefault(result.area, []).append(result)
    return areas


def _area_line(area: str, results: list[Result], width: int) -> Line:
    judged = [r.status for r in results if r.status != Status.SKIP]
    if not judged:
        mark, style = MARKS[Status.SKIP]
        reasons = [r.summary for r in results]
        common = max(dict.fromkeys(reasons), key=reasons.count)  # the commonest reason, first seen on ties
        return [(f"{mark} ", style), (f"{area:<{width}}", "bold"), (f"skipped: {common}", style)]
    mark, style = MARKS[max(judged, key=lambda s: s.rank)]
    counts = {status: sum(r.status == status for r in results) for status in Status}
    return [(f"{mark} ", style), (f"{area:<{width}}", "bold"), (_tally(counts, skip_zero=True), "")]


def _tally(counts: dict, skip_zero: bool = False) -> str:
    """'1 failed, 2 warnings, 20 passed', in order of gravity."""
    words = ((Status.FAIL, "failed", "failed"), (Status.ERROR, "error", "errors"), (Status.WARN, "warning", "warnings"),
             (Status.PASS, "passed", "passed"), (Status.SKIP, "skipped", "skipped"))
    return ", ".join(f"{counts[s]} {one if counts[s] == 1 else many}" for s, one, many in words
                     if counts[s] or not skip_zero)


def _result_lines(result: Result, verbose: bool) -> Iterable[Line]:
    mark, style = MARKS[result.status]
    yield [(f"  {mark} ", style), (result.id, "bold"), (f"  {result.summary}", "")]
    if verbose or result.status in (Status.WARN, Status.FAIL, Status.ERROR):
        for detail in result.details:
            yield [(f"      {detail}", "dim")]
    if result.fix:
        yield [("      Fix:", "bold cyan")]
        for line in result.fix.splitlines():
            yield [(f"        {line}", "cyan")]


def key_facts(facts: dict) -> list[str]:
    """The machine in a few lines: OS, kernel, driver, CUDA, GPUs."""
    os = facts.get("os") or {}
    lines = []
    if os:
        kernel = os.get("kernel") or {}
        lines.append(f"OS      {os.get('pretty_name') or os.get('id')}, kernel {kernel.get('release')} {kernel.get('arch')}")
    lines += [line for line in (_cpu_line(facts.get("platform")), _tools_line(facts)) if line]
    lines += _python_lines(facts.get("python_envs"))
    driver = facts.get("driver") or {}
    nvml = facts.get("nvml") or {}
    if driver:
        flavour = {True: "open", False: "proprietary"}.get(driver.get("open"), "")
        lines.append(f"Driver  {driver.get('version') or 'not loaded'} {flavour}".rstrip())
    cuda = nvml.get("cuda_driver_version")
    if isinstance(cuda, int):
        lines.append(f"CUDA    {cuda // 1000}.{cuda % 1000 // 10} (the newest the driver supports)")
    for d in gpu_devices(nvml, facts.get("nvidia_smi")):
        memory = (d.get("memory") or {}).get("total")
        cc = f"sm_{d['cc'][0]}{d['cc'][1]}" if d.get("cc") else "sm_?"
        size = f", {memory / (1 << 30):.1f} GiB" if memory else ""
        lines.append(f"{'GPU' + str(d['index']):<8}{d.get('name')}{size}, {cc}" + (f", {d['bus']}" if d["bus"] else ""))
    return lines


FLAG_GROUPS = (("AVX2", ("avx2",)), ("AVX-512", ("avx512f",)), ("AVX-512 BF16", ("avx512_bf16",)),
               ("AVX-512 FP16", ("avx512_fp16",)), ("AMX", ("amx_tile",)), ("NEON", ("asimd",)), ("SVE", ("sve",)))


def _cpu_line(platform: dict | None) -> str | None:
    """The CPU as collect_env's lscpu block would tell it: model, sockets, NUMA, the instruction sets, the hypervisor."""
    if not platform:
        return None
    from gpudoctor.context import hypervisor

    cpu = platform.get("cpu") or {}
    parts = [cpu.get("model") or platform.get("cpu_model") or "unknown CPU"]
    shape = [f"{cpu[k]} {word}{'' if cpu[k] == 1 else 's'}" for k, word in (("sockets", "socket"), ("cpus", "CPU"), ("numa_nodes", "NUMA node"))
             if isinstance(cpu.get(k), int)]
    flags = set(platform.get("cpu_flags") or [])
    sets = [name for name, needed in FLAG_GROUPS if flags.issuperset(needed)]
    vm = hypervisor(platform, None)
    where = (f"{vm} guest" + (f" ({cpu['virtualization_type']} virtualisation)" if cpu.get("virtualization_type") else "")
             if vm else "bare metal" if vm == "" else "")
    text = ", ".join(parts + shape) + (f"; {', '.join(sets)}" if sets else "") + (f"; {where}" if where else "")
    return f"CPU     {text}"


def _tools_line(facts: dict) -> str | None:
    """gcc, clang, CMake and nvcc as they answered, where they are installed."""
    tools = facts.get("toolchain") or {}
    nvcc = (facts.get("cuda_toolkits") or {}).get("nvcc_full_version")
    found = [f"{name} {tools[name]}" for name in ("gcc", "clang", "cmake") if tools.get(name)] + ([f"nvcc {nvcc}"] if nvcc else [])
    return f"Tools   {'; '.join(found)}" if found else None


def _python_lines(python_envs: dict | None) -> list[str]:
    """Each judged interpreter with the versions a bug report asks for: torch's build, NumPy, ONNX Runtime."""
    lines = []
    for interpreter in (python_envs or {}).get("interpreters") or []:
        python = ((interpreter.get("env") or {}).get("python")) or {}
        dists = {d["name"]: d["version"] for d in (interpreter.get("env") or {}).get("distributions") or []}
        torch = interpreter.get("torch") or {}
        version = (torch.get("version") or {}).get("value")
        kind = "conda env" if python.get("conda") else "venv" if python.get("venv") else "system Python"
        parts = [f"torch {version} (CUDA {(torch.get('version_cuda') or {}).get('value') or 'none'}"
                 + (", debug build" if (torch.get("debug") or {}).get("value") else "") + ")"] if version else []
        parts += [f"{label} {dists[name]}" for name, label in (("numpy", "NumPy"), ("onnxruntime", "onnxruntime"),
                                                               ("onnxruntime-gpu", "onnxruntime-gpu")) if name in dists]
        if python.get("version"):
            lines.append(f"Python  {python['version']} ({kind}) {interpreter.get('path')}" + (f": {', '.join(parts)}" if parts else ""))
    return lines


def verdict_lines(run: Run, exit_code: int, verbose: bool = False) -> list[Line]:
    """Every line of the terminal verdict."""
    os = run.facts.get("os") or {}
    title = ", ".join(x for x in (run.host, os.get("pretty_name")) if x)
    lines: list[Line] = [[(f"gpudoctor {__version__}", "bold"), (f"  {title}  ({run.duration_s:.1f} s)", "dim")], []]
    if verbose:
        lines += [[(f"  {fact}", "")] for fact in key_facts(run.facts)]
        slowest = sorted(run.collector_s.items(), key=lambda item: -item[1])[:4]
        if slowest:
            lines.append([("  Slowest " + ", ".join(f"{name} {s:.2f} s" for name, s in slowest), "dim")])
        lines.append([])
    areas = _areas(run.results)
    width = max((len(area) for area in areas), default=6) + 2
    lines += [_area_line(area, results, width) for area, results in areas.items()]
    shown = [r for r in run.results if verbose or r.status in (Status.WARN, Status.FAIL, Status.ERROR)]
    for results in _areas(shown).values():
        lines.append([])
        lines += [line for r in results for line in _result_lines(r, verbose)]
    counts = {status: run.counts()[status.value] for status in Status}
    lines += [[], [(f"{_tally(counts)} · exit code {exit_code}", "bold")]]
    return lines


def write_text(lines: list[Line], stream: IO[str], colour: bool) -> None:
    """Write the verdict: styled by rich when `colour`, else as plain text."""
    if not colour:
        stream.write("".join("".join(text for text, _ in line) + "\n" for line in lines))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, soft_wrap=True)
    for line in lines:
        console.print(Text.assemble(*[(text, style) for text, style in line]) if line else "")
