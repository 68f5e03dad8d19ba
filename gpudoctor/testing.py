"""Helpers for a plugin's own unit tests: judge on facts, collect from evidence, replay a report.

Everything runs through gpudoctor's real runner and `RecordedHost`, so a plugin's test sees what
`gpudoctor check` and `check --from` would show, with no GPU and no mocks::

    from gpudoctor import testing
    import gpudoctor_example_site as site          # examples/gpudoctor-example-plugin

    def test_unmounted_scratch_fails():
        facts = {"site_scratch": {"path": "/scratch", "mount": None, "usage": None}}
        assert testing.judge(site.scratch_mounted, facts).status == testing.Status.FAIL

    def test_a_customer_report_replays():
        results = testing.replay("tests/evidence/node17.tar.gz", site)
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Union

from gpudoctor.evidence import Evidence
from gpudoctor.host import RecordedHost
from gpudoctor.models import Result, Status
from gpudoctor.plugin import Check, spec_of
from gpudoctor.loader import BUILTIN, Plugin, from_module, load_plugins
from gpudoctor.runner import Collected, Selection, collect as run_collectors, run_checks

__all__ = ["Status", "Result", "Collected", "judge", "collect", "replay", "recorded"]

Source = Union[Evidence, dict, str, "os.PathLike[str]"]


def _plugin(module: ModuleType) -> Plugin:
    return from_module(module, module.__name__.rsplit(".", 1)[-1], f"{module.__name__} (under test)")


def _with(modules: Iterable[ModuleType]) -> list[Plugin]:
    """gpudoctor's built-ins (their collectors and the `gpus` combiner), then the modules under test.

    External plugins are left out: a test judges only what it names, whatever else is installed."""
    modules = list(modules)
    names = {m.__name__ for m in modules}
    return load_plugins(tuple(b for b in BUILTIN if b not in names), external=False) + [_plugin(m) for m in modules]


def judge(check: Callable, facts: dict[str, Any], *modules: ModuleType) -> Result:
    """Judge one decorated check on `facts` (collector names -> facts), as the runner would.

    The combiners it needs are computed from `facts` first: the built-in `gpus` from `nvml`,
    `nvidia_smi` and `driver`, and those of the check's own module and of `modules`. A missing
    `needs` fact gives the skip the runner gives ("facts not collected: ...")."""
    spec = spec_of(check)
    if not isinstance(spec, Check):
        raise TypeError(f"{getattr(check, '__name__', check)!r} is not a function decorated with @check")
    own = sys.modules[check.__module__]
    plugins = _with([own, *[m for m in modules if m is not own]])
    results, _, _ = run_checks(plugins, None, Selection(only=frozenset({spec.id})), facts=copy.deepcopy(facts))
    return next(r for r in results if r.id == spec.id)


def recorded(source: Source) -> Evidence:
    """Evidence from a dict (`Evidence.SECTIONS` as keys), a capture folder or its evidence.json,
    or a report: an archive (.tar.gz), its extracted folder, or a report.json beside its evidence.json."""
    if isinstance(source, Evidence):
        return source
    if isinstance(source, dict):
        return Evidence(copy.deepcopy(source))
    path = Path(source)
    if path.name in ("report.json", "evidence.json"):  # a member stands for its folder: an extracted report or a capture
        path = path.parent
    if path.is_dir() and not (path / "report.json").is_file():
        return Evidence.from_dir(path)
    from gpudoctor.archive import load_report

    loaded = load_report(str(path))
    if loaded.evidence is None:
        raise ValueError(f"{source}: this report kept no raw evidence (evidence.json), so its collectors cannot be replayed")
    return Evidence(loaded.evidence)


def collect(module: ModuleType, source: Source, timeout: float = 10.0) -> Collected:
    """Run a plugin module's collectors on recorded evidence.

    `.facts` holds what each returned; `.unrecorded` names the collectors that asked the evidence a
    question it has no answer to (their checks skip "not recorded"); `.errors` those that raised."""
    plugin = _plugin(module)
    return run_collectors(RecordedHost(recorded(source), timeout), [(plugin, c) for c in plugin.collectors], timeout)


def replay(source: Source, *modules: ModuleType, only: Iterable[str] = (), timeout: float = 10.0) -> list[Result]:
    """`gpudoctor check --from` with these plugin modules: their checks (or the check ids and areas in `only`)
    judged on the evidence of a report archive, a capture or a dict, through gpudoctor's built-ins."""
    wanted = frozenset(only) or frozenset(c.id for m in modules for c in _plugin(m).checks)
    if not wanted:
        raise ValueError("replay: name the plugin modules to judge, or the check ids and areas in only=")
    results, _, _ = run_checks(_with(modules), RecordedHost(recorded(source), timeout), Selection(only=wanted), timeout)
    return results
