"""The verdict for CI and monitoring: JUnit XML, a node-exporter textfile, Markdown for tickets.

Each renderer takes the run and its exit code and returns the whole text; `AtomicFile` writes the
Prometheus file beside its target and renames it into place, so a collector never reads half of it.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from gpudoctor import __version__
from gpudoctor.diff import flat_facts
from gpudoctor.models import Result, Run, Status
from gpudoctor.render import key_facts

BAD = (Status.FAIL, Status.ERROR)


def _warnings_fail(run: Run, exit_code: int) -> bool:
    """--strict made warnings failures: exit 1 with nothing failed."""
    return exit_code == 1 and not any(r.status in BAD for r in run.results)


def _areas(results: list[Result]) -> dict[str, list[Result]]:
    areas: dict[str, list[Result]] = {}
    for result in results:
        areas.setdefault(result.area, []).append(result)
    return areas


def _problem_text(result: Result) -> str:
    lines = [result.summary, *result.details]
    return "\n".join(lines + (["", "Fix:", result.fix] if result.fix else []))


def _testcase(result: Result, strict: bool) -> str:
    head = f'    <testcase name={quoteattr(result.id)} classname={quoteattr("gpudoctor." + result.area)} time="{result.duration_s:.3f}"'
    if result.status == Status.PASS:
        return head + "/>"
    if result.status == Status.SKIP:
        body = f"<skipped message={quoteattr(result.summary)}/>"
    elif result.status == Status.WARN and not strict:
        body = f"<system-out>{escape('warning: ' + _problem_text(result))}</system-out>"
    else:
        tag = "error" if result.status == Status.ERROR else "failure"
        body = f"<{tag} type={quoteattr(result.status.value)} message={quoteattr(result.summary)}>{escape(_problem_text(result))}</{tag}>"
    return f"{head}>\n      {body}\n    </testcase>"


def to_junit(run: Run, exit_code: int) -> str:
    """One testsuite per area, one testcase per check; failures carry the summary and the fix."""
    strict = _warnings_fail(run, exit_code)
    suites = []
    for area, results in _areas(run.results).items():
        failures = sum(r.status == Status.FAIL or (strict and r.status == Status.WARN) for r in results)
        errors = sum(r.status == Status.ERROR for r in results)
        skipped = sum(r.status == Status.SKIP for r in results)
        time = sum(r.duration_s for r in results)
        cases = "\n".join(_testcase(r, strict) for r in results)
        suites.append(f'  <testsuite name={quoteattr("gpudoctor." + area)} tests="{len(results)}" failures="{failures}" errors="{errors}" '
                      f'skipped="{skipped}" time="{time:.3f}" timestamp={quoteattr(run.started_at)} hostname={quoteattr(run.host)}>\n'
                      f"{cases}\n  </testsuite>")
    counts = run.counts()
    failures = counts["fail"] + (counts["warn"] if strict else 0)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuites name={quoteattr("gpudoctor " + __version__ + " on " + run.host)} tests="{len(run.results)}" '
            f'failures="{failures}" errors="{counts["error"]}" time="{run.duration_s:.3f}">\n' + "\n".join(suites) + "\n</testsuites>\n")


def _label(value) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _labels(**labels) -> str:
    return "{" + ",".join(f"{k}={_label(v)}" for k, v in labels.items()) + "}"


SMOKE_METRICS = (("gpudoctor_smoke_matmul_tflops", "Matmul rate the smoke test measured, TFLOP/s.", "matmul_tflops_"),
                 ("gpudoctor_smoke_copy_gbps", "Device-to-device copy rate the smoke test measured (bytes read + written), GB/s.", "copy_gbps"),
                 ("gpudoctor_smoke_pinned_gbps", "Pinned host-device copy rate the smoke test measured, GB/s.", "pinned_gbps"))


def _smoke_samples(facts: dict) -> dict[str, list[str]]:
    samples: dict[str, list[str]] = {name: [] for name, _, _ in SMOKE_METRICS}
    for run in (facts.get("smoke") or {}).get("runs") or []:
        for device in (run.get("answer") or {}).get("devices") or []:
            base = {"framework": run.get("framework"), "device": device.get("device"), "gpu": device.get("name") or "",
                    "uuid": device.get("uuid") or ""}
            for key, value in device.items():
                figure = value.get("value") if isinstance(value, dict) else None
                if key.startswith("matmul_tflops_") and isinstance(figure, (int, float)):
                    samples["gpudoctor_smoke_matmul_tflops"].append(f"{_labels(**base, dtype=key[14:])} {figure}")
                elif key == "copy_gbps" and isinstance(figure, (int, float)):
                    samples["gpudoctor_smoke_copy_gbps"].append(f"{_labels(**base)} {figure}")
                elif key == "pinned_gbps" and isinstance(figure, dict):
                    samples["gpudoctor_smoke_pinned_gbps"] += [f"{_labels(**base, direction=d)} {figure[d]}" for d in ("h2d", "d2h")
                                                               if isinstance(figure.get(d), (int, float))]
    return samples


def _timestamp(started_at: str) -> float | None:
    try:
        return datetime.fromisoformat(started_at).timestamp()
    except (TypeError, ValueError):
        return None


def to_prometheus(run: Run, exit_code: int) -> str:
    """A node-exporter textfile (no sample timestamps: the textfile collector refuses them)."""
    out = ["# HELP gpudoctor_check_status How each check came out: 0 pass, 1 skip, 2 warn, 3 fail, 4 error.",
           "# TYPE gpudoctor_check_status gauge"]
    out += [f"gpudoctor_check_status{_labels(check=r.id, area=r.area, status=r.status.value)} {r.status.rank}" for r in run.results]
    out += ["# HELP gpudoctor_exit_code The exit code of gpudoctor check: 0 healthy, 1 a check failed.", "# TYPE gpudoctor_exit_code gauge",
            f"gpudoctor_exit_code {exit_code}"]
    for name, help_text, _ in SMOKE_METRICS:
        samples = _smoke_samples(run.facts)[name]
        if samples:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"] + [name + s for s in samples]
    out += ["# HELP gpudoctor_run_duration_seconds How long the check took.", "# TYPE gpudoctor_run_duration_seconds gauge",
            f"gpudoctor_run_duration_seconds {run.duration_s:.3f}"]
    stamp = _timestamp(run.started_at)
    if stamp is not None:
        out += ["# HELP gpudoctor_run_timestamp_seconds When the check started, Unix time.", "# TYPE gpudoctor_run_timestamp_seconds gauge",
                f"gpudoctor_run_timestamp_seconds {stamp:.0f}"]
    out += ["# HELP gpudoctor_info The gpudoctor that wrote this file.", "# TYPE gpudoctor_info gauge",
            f"gpudoctor_info{_labels(version=__version__, host=run.host)} 1"]
    return "\n".join(out) + "\n"


MARKS = {Status.PASS: "✅", Status.SKIP: "➖", Status.WARN: "⚠️", Status.FAIL: "❌", Status.ERROR: "❌"}


def to_markdown(run: Run, exit_code: int) -> str:
    """For a ticket: the node, a table of areas, then each problem with its fix as a shell block."""
    counts = run.counts()
    lines = [f"## gpudoctor {__version__} on `{run.host}`", "",
             f"{run.started_at} · {run.duration_s:.1f} s · exit code {exit_code} · {counts['fail']} failed, {counts['error']} errors, "
             f"{counts['warn']} warnings, {counts['pass']} passed, {counts['skip']} skipped", ""]
    lines += [f"- {fact}" for fact in key_facts(run.facts)] + ([""] if key_facts(run.facts) else [])
    lines += ["| area | verdict |", "| --- | --- |"]
    for area, results in _areas(run.results).items():
        worst = max((r.status for r in results), key=lambda s: s.rank)
        bad = [r.id for r in results if r.status in (Status.WARN, *BAD)]
        lines.append(f"| {area} | {MARKS[worst]} {worst.value}" + (f": {', '.join(f'`{i}`' for i in bad)}" if bad else "") + " |")
    for result in (r for r in run.results if r.status in (Status.WARN, *BAD)):
        lines += ["", f"### {MARKS[result.status]} `{result.id}` {result.status.value}", "", result.summary.replace("\n", " ")]
        lines += [""] + [f"> {d}" for d in result.details] if result.details else []
        if result.fix:
            lines += ["", "```bash", result.fix, "```"]
    return "\n".join(lines) + "\n"


RENDERERS = {"junit": to_junit, "prometheus": to_prometheus, "markdown": to_markdown}


class AtomicFile:
    """A text file that appears whole or not at all: written beside its target, renamed into place on close."""

    def __init__(self, path: str, mode: int = 0o644) -> None:
        self.path, self.mode = path, mode
        fd, self.temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(os.path.abspath(path)))
        self._file = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, text: str) -> int:
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.chmod(self.temporary, self.mode)  # node-exporter reads it as its own user
        os.replace(self.temporary, self.path)


def report_markdown(document: dict, verdict: str) -> str:
    """report.md: the verdict with its fixes, then every collector's facts as a table."""
    lines = [f"# gpudoctor report: {document['host']}", "",
             f"Collected {document['started_at']} by gpudoctor {document['gpudoctor_version']}; "
             f"re-judge it with `gpudoctor check --from <this archive>`.", "", "## Verdict", "", "```text",
             verdict.rstrip("\n"), "```", "", "## Facts"]
    for name, facts in (document.get("facts") or {}).items():
        lines += ["", f"### {name}", "", "| fact | value |", "| --- | --- |"]
        for path, value in flat_facts(facts):
            shown = str(value).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {path or name} | {shown if len(shown) <= 160 else shown[:157] + '…'} |")
    return "\n".join(lines) + "\n"
