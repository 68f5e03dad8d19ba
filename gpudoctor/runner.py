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
from dataclasses import dataclass, field
from typing import Any, Iterable

from gpudoctor.host import NotRecorded
from gpudoctor.models import Result, Status, Verdict, skip
from gpudoctor.plugin import Check, Collector, Skip
from gpudoctor.loader import Plugin

GRACE_S = 1.0


@dataclass(frozen=True)
class Selection:
    """Which checks to run: ids or areas to keep (`only`) and to drop (`skip`)."""

    only: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    left_out: tuple[tuple[str, str], ...] = ()  # (fact, why): never collected; checks that need it skip saying why

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


@dataclass
class Collected:
    """What the collectors gave: facts by name, error results, seconds each took, and what replay lacked."""

    facts: dict[str, Any] = field(default_factory=dict)
    errors: list[Result] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    unrecorded: dict[str, str] = field(default_factory=dict)


def collect(host: Any, jobs: list[tuple[Plugin, Collector]], timeout: float) -> Collected:
    """Run collectors concurrently, each under its deadline."""
    done: queue.Queue = queue.Queue()
    started = {}
    for plugin, col in jobs:
        started[col.name] = time.monotonic()
        thread = threading.Thread(target=_collect_one, args=(host, plugin, col, done), daemon=True,
                                  name=f"collect-{col.name}")
        thread.start()
    out = Collected()
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
                out.timings[name] = now - started[name]
                out.errors.append(_error(f"{_area(plugin, col)}.collect_{name}", f"Collect {name}", plugin,
                                         f"collector '{name}' of plugin {plugin.name} did not finish within "
                                         f"{col.timeout or timeout:g} s and was abandoned", out.timings[name]))
            continue
        if name not in pending:
            continue
        plugin, col = pending.pop(name)
        out.timings[name] = time.monotonic() - started[name]
        if exc is None:
            out.facts[name] = value
        elif isinstance(exc, NotRecorded):
            out.unrecorded[name] = str(exc)
        else:
            out.errors.append(_error(f"{_area(plugin, col)}.collect_{name}", f"Collect {name}", plugin,
                                     f"collector '{name}' of plugin {plugin.name} raised {exc}", out.timings[name]))
    if out.errors:
        host.kill_children()
    return out


def _area(plugin: Plugin, col: Collector) -> str:
    areas = {chk.area for chk in plugin.checks}
    return areas.pop() if len(areas) == 1 else plugin.name


def _collect_one(host: Any, plugin: Plugin, col: Collector, done: queue.Queue) -> None:
    unanswered = getattr(host, "unanswered", list)
    unanswered()
    try:
        value = col.func(host)
        if not isinstance(value, dict):
            raise TypeError(f"returned {type(value).__name__}, not a dict of facts")
    except NotRecorded as exc:
        done.put((col.name, None, exc))
    except Exception as exc:
        missing = unanswered()  # in replay, a collector that failed after a question with no answer lacked evidence
        done.put((col.name, None, NotRecorded(missing[0]) if missing else f"{type(exc).__name__}: {exc}"))
    else:
        done.put((col.name, value, None))


def judge(plugin: Plugin, chk: Check, facts: dict, unrecorded: dict[str, str], absent: dict[str, str] | None = None) -> Result:
    """Run one check on the facts; a missing required fact makes it a skip, saying why the fact is missing."""
    start = time.perf_counter()
    missing = [name for name in chk.needs if name not in facts]
    absent = absent or {}
    try:
        if any(name in absent for name in missing):
            verdict = skip(next(absent[name] for name in missing if name in absent))
        elif missing:
            why = [f"{name} ({unrecorded[name]} not recorded)" if name in unrecorded else name for name in missing]
            verdict = skip(f"facts not collected: {', '.join(why)}")
        else:
            args = {name: facts.get(name) for name in chk.needs + chk.uses}
            verdict = chk.func(**args)
            if not isinstance(verdict, Verdict):
                raise TypeError(f"returned {type(verdict).__name__}, not a Verdict")
    except Skip as reason:
        verdict = skip(str(reason))
    except Exception as exc:
        return _error(chk.id, chk.title, plugin, f"check {chk.id} of plugin {plugin.name} raised "
                      f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    return Result(chk.id, chk.title, verdict.status, verdict.summary, verdict.details, verdict.fix,
                  time.perf_counter() - start, plugin.distribution)


def combine(plugins: list[Plugin], facts: dict, wanted: set[str]) -> tuple[dict, dict[str, str], list[Result]]:
    """Compute the wanted combiners from the facts, each once, in the order their inputs allow.

    Returns their facts, why each that does not exist here is absent (its Skip, or a fact it needs), and errors."""
    pending = {c.name: (p, c) for p in plugins for c in p.combiners if c.name in wanted}
    derived, absent, errors = {}, {}, []
    while pending:
        ready = [n for n, (_, c) in pending.items() if not (set(c.needs + c.uses) & set(pending))]
        if not ready:  # a cycle: name it instead of looping
            for name, (plugin, _) in pending.items():
                errors.append(_error(f"plugin.{_slug(plugin.name)}", f"Combine {name}", plugin, f"combiner {name} depends on itself"))
            break
        for name in ready:
            plugin, comb = pending.pop(name)
            known = {**facts, **derived}
            lacking = [n for n in comb.needs if n not in known]
            if lacking:
                absent[name] = absent.get(lacking[0]) or f"facts not collected: {', '.join(lacking)}"
                continue
            try:
                derived[name] = comb.func(**{n: known.get(n) for n in comb.needs + comb.uses})
            except Skip as reason:
                absent[name] = str(reason)
            except Exception as exc:
                errors.append(_error(f"plugin.{_slug(plugin.name)}", f"Combine {name}", plugin,
                                     f"combiner {name} of plugin {plugin.name} raised {type(exc).__name__}: {exc}"))
                absent[name] = f"combiner {name} failed (see its error)"
    return derived, absent, errors


def _inputs(plugins: list[Plugin], names: set[str]) -> set[str]:
    """The names asked for, and everything the combiners among them are computed from."""
    combiners = {c.name: c for p in plugins for c in p.combiners}
    out, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            if name in combiners:
                todo.extend(combiners[name].needs + combiners[name].uses)
    return out


def run_checks(plugins: list[Plugin], host: Any, selection: Selection = Selection(),
               timeout: float = 10.0, facts: dict | None = None) -> tuple[list[Result], dict, dict]:
    """Collect what the selected checks need, judge them, and return results and facts.

    Given `facts` (a report that kept no raw evidence), nothing is collected: they are judged as they are.
    """
    results: list[Result] = []
    chosen: list[tuple[Plugin, Check]] = []
    seen: dict[str, Plugin] = {}
    for plugin in plugins:
        if plugin.load_error:
            results.append(_error(f"plugin.{_slug(plugin.name)}", f"Load plugin {plugin.name}", plugin,
                                  f"plugin {plugin.name} from {plugin.distribution} failed to load: {plugin.load_error}"))
            continue
        problems = dict(plugin.problems)
        for chk in plugin.checks:
            if chk.id in seen:
                first = seen[chk.id]
                results.append(_error(chk.id, chk.title, plugin, f"check id {chk.id} is defined by both {first.name} "
                                      f"({first.distribution}) and {plugin.name} ({plugin.distribution}); the first one ran"))
            elif chk.id in problems and selection.wants(chk):
                results.append(_error(chk.id, chk.title, plugin, problems[chk.id]))
            elif selection.wants(chk):
                seen[chk.id] = plugin
                chosen.append((plugin, chk))
    left_out = dict(selection.left_out)  # facts --quick leaves out, each with the reason its checks skip
    wanted = _inputs(plugins, {name for _, chk in chosen for name in chk.needs + chk.uses}) - set(left_out)
    jobs, owners = [], {}
    for plugin in plugins:
        for col in plugin.collectors:
            if col.name in owners:
                results.append(_error(f"plugin.{_slug(plugin.name)}", f"Load plugin {plugin.name}", plugin,
                                      f"collector '{col.name}' of plugin {plugin.name} is already defined by plugin {owners[col.name]}"))
            else:
                owners[col.name] = plugin.name
                if col.name in wanted:
                    jobs.append((plugin, col))
    collected = collect(host, jobs, timeout) if facts is None else Collected(facts=dict(facts))
    combiners = {c.name for p in plugins for c in p.combiners}
    raw = {k: v for k, v in collected.facts.items() if k not in combiners}  # a report's copy is computed afresh
    derived, absent, errors = combine(plugins, raw, wanted)
    results.extend(collected.errors + errors)
    results.extend(judge(plugin, chk, {**raw, **derived}, collected.unrecorded, {**left_out, **absent}) for plugin, chk in chosen)
    order = {}
    for plugin in plugins:
        for chk in plugin.checks:
            order.setdefault(chk.area, len(order))
    return sorted(results, key=lambda r: (order.get(r.area, len(order)), r.id)), raw, collected.timings


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()) or "unnamed"
