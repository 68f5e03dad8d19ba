"""The plugin API: decorators that turn functions into collectors and checks.

A plugin is a module. Its collectors touch the machine (only through the `Host` they are
given) and return JSON-able facts under a name; its checks are pure functions of those
facts. Built-in plugins and third-party ones (entry-point group ``gpudoctor.checks``)
are written exactly the same way::

    from gpudoctor.plugin import check, collector, fail, ok

    @collector("site_mounts", timeout=5)
    def site_mounts(host):
        return {"scratch": host.read("/proc/mounts").text.count(" /scratch ") > 0}

    @check("site.scratch", "Scratch file system mounted", needs=("site_mounts",))
    def scratch(site_mounts):
        if site_mounts["scratch"]:
            return ok("/scratch is mounted")
        return fail("/scratch is not mounted", fix="sudo mount /scratch")
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

from gpudoctor.models import Verdict, fail, ok, skip, warn

__all__ = ["Check", "Collector", "Skip", "check", "collector", "fail", "ok", "skip", "warn", "Verdict"]

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


def collector(name: str, timeout: float | None = None) -> Callable[[Callable], Collector]:
    """Declare a collector whose facts are stored under `name`."""
    if not _FACT.match(name):
        raise ValueError(f"collector name {name!r} must be a lower-case identifier")

    def wrap(func: Callable) -> Collector:
        return Collector(name, func, timeout)

    return wrap


def check(id: str, title: str, needs: tuple[str, ...] = (), uses: tuple[str, ...] = ()) -> Callable[[Callable], Check]:
    """Declare a check with a stable dotted id (`area.name`), given facts by name."""
    if not _ID.match(id):
        raise ValueError(f"check id {id!r} must look like 'area.name'")

    def wrap(func: Callable) -> Check:
        params = set(inspect.signature(func).parameters)
        missing = (set(needs) | set(uses)) - params
        if missing:
            raise ValueError(f"check {id}: function lacks parameters {sorted(missing)}")
        return Check(id, title, func, tuple(needs), tuple(uses))

    return wrap
