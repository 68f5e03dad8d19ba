"""The plugin API: decorators that mark functions as collectors, combiners and checks.

A plugin is a module. Its collectors touch the machine (only through the `Host` they are
given) and return JSON-able facts under a name; its combiners compute facts from facts; its
checks are pure functions of those facts. Each decorator returns the function unchanged, with
its declaration attached (`spec_of`), so a test calls it as written. Built-in plugins and
third-party ones (entry-point group ``gpudoctor.checks``) are written exactly the same way;
docs/plugins.md is the guide. A collector raises when it cannot answer: in replay, evidence
that lacks what it read then makes its checks skip "not recorded", with no replay code here::

    from gpudoctor.plugin import check, collector, fail, ok

    @collector("site_mounts", timeout=5)
    def site_mounts(host):
        mounts = host.read("/proc/mounts")
        if not mounts.ok:
            raise OSError(f"/proc/mounts: {mounts.error}")
        return {"mount_points": [line.split()[1] for line in mounts.text.splitlines() if line.strip()]}

    @check("site.scratch", "Scratch file system mounted", needs=("site_mounts",))
    def scratch(site_mounts):
        if "/scratch" in site_mounts["mount_points"]:
            return ok("/scratch is mounted")
        return fail("/scratch is not mounted", fix="sudo mount /scratch   # as its /etc/fstab entry says")
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

from gpudoctor.models import Verdict, fail, ok, skip, warn

__all__ = ["Check", "Collector", "Combiner", "Skip", "check", "collector", "combiner", "fail", "ok", "skip", "warn", "Verdict"]

_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$")
_FACT = re.compile(r"^[a-z][a-z0-9_]*$")


class Skip(Exception):
    """Raised anywhere inside a check (a shared helper, say) to make it a `skip` with this reason."""


@dataclass(frozen=True)
class Collector:
    """Gathers one named set of facts from the machine."""

    name: str
    func: Callable[[Any], dict]
    timeout: float | None = None


@dataclass(frozen=True)
class Check:
    """Judges facts: `needs` must be present or the check is skipped; `uses` may be None."""

    id: str
    title: str
    func: Callable[..., Verdict]
    needs: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass(frozen=True)
class Combiner:
    """Facts computed from facts (insights-core's combiners): one view many checks share, computed once.

    It raises `Skip` when its view does not exist here (no driver, say); checks that need it then skip
    with that reason, stated once."""

    name: str
    func: Callable[..., dict]
    needs: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()


SPEC = "gpudoctor"  # the attribute a decorated function carries its declaration in, as pluggy's markers do


def spec_of(func) -> Collector | Check | Combiner | None:
    """What a decorator declared on `func`, if anything."""
    found = getattr(func, SPEC, None)
    return found if isinstance(found, (Collector, Check, Combiner)) else None


def _mark(func: Callable, spec) -> Callable:
    setattr(func, SPEC, spec)
    return func


def _parameters_match(what: str, func: Callable, names: tuple[str, ...]) -> None:
    """A parameter the declaration does not give, or a fact no parameter takes, fails at import, not at run time."""
    params = [p.name for p in inspect.signature(func).parameters.values() if p.default is inspect.Parameter.empty]
    if set(params) != set(names) or len(set(names)) != len(names):
        lacking, unused = sorted(set(names) - set(params)), sorted(set(params) - set(names))
        raise ValueError(f"{what}: needs/uses and the function's parameters differ"
                         + (f"; no parameter for {lacking}" if lacking else "") + (f"; not declared: {unused}" if unused else ""))


def collector(name: str, timeout: float | None = None) -> Callable[[Callable], Callable]:
    """Declare a collector whose facts are stored under `name`; the function stays callable as written."""
    if not _FACT.match(name):
        raise ValueError(f"collector name {name!r} must be a lower-case identifier")

    def wrap(func: Callable) -> Callable:
        if len(inspect.signature(func).parameters) != 1:
            raise ValueError(f"collector {name}: the function takes one argument, the host")
        return _mark(func, Collector(name, func, timeout))

    return wrap


def combiner(name: str, needs: tuple[str, ...] = (), uses: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Declare facts computed from other facts, stored under `name` for the checks that name it."""
    if not _FACT.match(name):
        raise ValueError(f"combiner name {name!r} must be a lower-case identifier")

    def wrap(func: Callable) -> Callable:
        _parameters_match(f"combiner {name}", func, tuple(needs) + tuple(uses))
        return _mark(func, Combiner(name, func, tuple(needs), tuple(uses)))

    return wrap


def check(id: str, title: str, needs: tuple[str, ...] = (), uses: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Declare a check with a stable dotted id (`area.name`), given facts by name; the function stays callable."""
    if not _ID.match(id):
        raise ValueError(f"check id {id!r} must look like 'area.name'")

    def wrap(func: Callable) -> Callable:
        _parameters_match(f"check {id}", func, tuple(needs) + tuple(uses))
        return _mark(func, Check(id, title, func, tuple(needs), tuple(uses)))

    return wrap
