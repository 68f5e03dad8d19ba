"""Finding and loading plugins: the built-ins listed once here, the rest by entry point.

Both kinds become the same `Plugin` objects and run the same way. A plugin that fails
to import is kept as a `Plugin` with `load_error` set, which the runner reports as an
`error` result naming its distribution, instead of stopping the run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from gpudoctor.plugin import Check, Collector

ENTRY_POINT_GROUP = "gpudoctor.checks"

BUILTIN = (
    "gpudoctor.checks.system",
    "gpudoctor.checks.driver",
    "gpudoctor.checks.gpu",
    "gpudoctor.checks.fitness",
    "gpudoctor.checks.cuda",
    "gpudoctor.checks.python",
    "gpudoctor.checks.torch",
    "gpudoctor.checks.cudnn",
    "gpudoctor.checks.tensorflow",
    "gpudoctor.checks.jax",
    "gpudoctor.checks.onnxruntime",
    "gpudoctor.checks.conda",
    "gpudoctor.checks.smoke",
)


@dataclass(frozen=True)
class Plugin:
    """One module's collectors and checks, and where it came from."""

    name: str
    distribution: str
    collectors: tuple[Collector, ...] = ()
    checks: tuple[Check, ...] = ()
    load_error: str | None = None


def from_module(module: ModuleType, name: str, distribution: str) -> Plugin:
    """Gather a module's decorated collectors and checks in definition order."""
    members = vars(module).values()
    return Plugin(
        name=name,
        distribution=distribution,
        collectors=tuple(m for m in members if isinstance(m, Collector)),
        checks=tuple(m for m in members if isinstance(m, Check)),
    )


def _load(module_name: str, name: str, distribution: str) -> Plugin:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a broken plugin must not stop the run
        return Plugin(name, distribution, load_error=f"{type(exc).__name__}: {exc}")
    return from_module(module, name, distribution)


def _entry_points() -> list[tuple[str, str, str]]:
    """(name, module, distribution) of each registered plugin, found by walking the
    installed distributions: EntryPoint.dist, which names the owner, is Python 3.10+."""
    from importlib.metadata import distributions

    found = {}
    for dist in distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                found.setdefault(ep.name, (ep.name, ep.value.split(":", 1)[0], dist.metadata["Name"] or "unknown"))
    return sorted(found.values())


def load_plugins(builtin: tuple[str, ...] = BUILTIN, external: bool = True) -> list[Plugin]:
    """Every plugin: the built-ins, then those registered under the entry-point group."""
    plugins = [_load(module_name, module_name.rsplit(".", 1)[-1], "gpudoctor") for module_name in builtin]
    if external:
        plugins += [_load(module, name, distribution) for name, module, distribution in _entry_points()]
    return plugins
