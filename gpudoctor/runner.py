"""Running plugins: collectors concurrently under deadlines, then checks on the facts.

Each collector runs in a daemon thread, so one that hangs past its deadline is
abandoned (and its commands killed) without keeping gpudoctor alive. Anything a
collector or check raises becomes an `error` result naming the plugin and the
exception; the run goes on. KeyboardInterrupt is let through.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

from gpudoctor.host import NotRecorded
from gpudoctor.models import Result, Status, Verdict, skip
from gpudoctor.plugin import Check, Collector
from gpudoctor.plugins import Plugin

GRACE_S = 1.0


@dataclass(frozen=True)
class Selection:
    """Which checks to run: ids or areas to keep (`only`) and to drop (`skip`)."""

    only: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()

    def wants(self, check: Check) -> bool:
        names = {check.id, check.area}
        return (not self.only or bool(names & self.only)) and not names & self.skip


def unknown_names(plugins: Iterable[Plugin], names: Iterable[str]) -> list[str]:
    """The names given to --only/--skip that are neither a check id nor an area."""
    known = set()
    for plugin in plugins:
        for chk in plugin.checks:
            known.update((chk.id, chk.area))
    return sorted(set(names) - known)


def _error(id: str, title: str, plugin: Plugin, message: str, duration: float = 0.0) -> Result:
    return Result(id, title, Status.ERROR, message, duration_s=duration, plugin=plugin.distribution)


def collect(host: Any, jobs: list[tuple[Plugin, Collector]], timeout: float) -> tuple[dict, list[Result], dict]:
    """Run collectors concurrently; return facts, error results, and each one's seconds."""
    done: queue.Queue = queue.Queue()
    started = {}
    for plugin, col in jobs:
        started[col.name] = time.monotonic()
        thread = threading.Thread(target=_collect_one, args=(host, plugin, col, done), daemon=True,
                                  name=f"collect-{col.name}")
        thread.start()
    facts: dict[str, Any] = {}
    unrecorded: dict[str, str] = {}
    errors: list[Result] = []
    timings: dict[str, float] = {}
    pending = {col.name: (plugin, col) for plugin, col in jobs}
    deadline = {name: started[name] + (col.timeout or timeout) + GRACE_S for name, (_, col) in pending.items()}
    while pending:
        wait = max(0.0, min(deadline[name] for name in pending) - time.monotonic())
        try:
            name, value, exc = done.get(timeout=min(wait, 0.2))
        except queue.Empty:
            now = time.monotonic()
            for name in [n for n in pending if deadline[n] <= now]:
                plugin, col = pending.pop(name)
                timings[name] = now - started[name]
                errors.append(_error(f"{_area(plugin, col)}.collect_{name}", f"Collect {name}", plugin,
                                     f"collector '{name}' of plugin {plugin.name} did not finish within "
                                     f"{col.timeout or timeout:g} s and was abandoned", timings[name]))
            continue
        if name not in pending:
            continue
        plugin, col = pending.pop(name)
        timings[name] = time.monotonic() - started[name]
        if exc is None:
            facts[name] = value
        elif isinstance(exc, NotRecorded):
            unrecorded[name] = str(exc)
        else:
            errors.append(_error(f"{_area(plugin, col)}.collect_{name}", f"Collect {name}", plugin,
                                 f"collector '{name}' of plugin {plugin.name} raised {exc}", timings[name]))
    if errors:
        host.kill_children()
    timings["not_recorded"] = unrecorded
    return facts, errors, timings


def _area(plugin: Plugin, col: Collector) -> str:
    areas = {chk.area for chk in plugin.checks}
    return areas.pop() if len(areas) == 1 else plugin.name


def _collect_one(host: Any, plugin: Plugin, col: Collector, done: queue.Queue) -> None:
    try:
        value = col.func(host)
        if not isinstance(value, dict):
            raise TypeError(f"returned {type(value).__name__}, not a dict of facts")
    except NotRecorded as exc:
        done.put((col.name, None, exc))
    except Exception as exc:
        done.put((col.name, None, f"{type(exc).__name__}: {exc}"))
    else:
        done.put((col.name, value, None))


def judge(plugin: Plugin, chk: Check, facts: dict, unrecorded: dict | None = None) -> Result:
    """Run one check on the facts; a missing required fact makes it a skip."""
    start = time.perf_counter()
    missing = [name for name in chk.needs if name not in facts]
    try:
        if missing:
            why = [f"{name} ({(unrecorded or {})[name]} not recorded)" if name in (unrecorded or {}) else name for name in missing]
            verdict = skip(f"facts not collected: {', '.join(why)}")
        else:
            args = {name: facts.get(name) for name in chk.needs + chk.uses}
            verdict = chk.func(**args)
            if not isinstance(verdict, Verdict):
                raise TypeError(f"returned {type(verdict).__name__}, not a Verdict")
    except Exception as exc:
        return _error(chk.id, chk.title, plugin, f"check {chk.id} of plugin {plugin.name} raised "
                      f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    return Result(chk.id, chk.title, verdict.status, verdict.summary, verdict.details, verdict.fix,
                  time.perf_counter() - start, plugin.distribution)


def run_checks(plugins: list[Plugin], host: Any, selection: Selection = Selection(),
               timeout: float = 10.0) -> tuple[list[Result], dict, dict]:
    """Collect what the selected checks need, judge them, and return results and facts."""
    results: list[Result] = []
    chosen: list[tuple[Plugin, Check]] = []
    seen: set[str] = set()
    for plugin in plugins:
        if plugin.load_error:
            results.append(_error(f"plugin.{_slug(plugin.name)}", f"Load plugin {plugin.name}", plugin,
                                  f"plugin {plugin.name} from {plugin.distribution} failed to load: {plugin.load_error}"))
            continue
        for chk in plugin.checks:
            if chk.id in seen:
                results.append(_error(chk.id, chk.title, plugin, f"duplicate check id {chk.id} in plugin {plugin.name}"))
            elif selection.wants(chk):
                seen.add(chk.id)
                chosen.append((plugin, chk))
    wanted = {name for _, chk in chosen for name in chk.needs + chk.uses}
    jobs = [(p, c) for p in plugins for c in p.collectors if c.name in wanted]
    facts, errors, timings = collect(host, jobs, timeout)
    results.extend(errors)
    unrecorded = timings.pop("not_recorded")
    results.extend(judge(plugin, chk, facts, unrecorded) for plugin, chk in chosen)
    order = {}
    for plugin in plugins:
        for chk in plugin.checks:
            order.setdefault(chk.area, len(order))
    return sorted(results, key=lambda r: (order.get(r.area, len(order)), r.id)), facts, timings


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()) or "unnamed"
