"""Finding and loading plugins: the built-ins listed once here, the rest by entry point.

Both kinds become the same `Plugin` objects and run the same way. A plugin that fails
to import is kept as a `Plugin` with `load_error` set, which the runner reports as an
`error` result naming its distribution, instead of stopping the run.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, replace
from types import ModuleType

from gpudoctor.plugin import Check, Collector, Combiner, spec_of

ENTRY_POINT_GROUP = "gpudoctor.checks"

BUILTIN = (
    "gpudoctor.gpus",
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
    combiners: tuple[Combiner, ...] = ()
    problems: tuple[tuple[str, str], ...] = ()  # (check id, why it cannot run), found when plugins load


def from_module(module: ModuleType, name: str, distribution: str) -> Plugin:
    """Gather what a module defines (not what it imports from another) in definition order."""
    specs = [spec_of(m) for m in vars(module).values() if getattr(m, "__module__", None) == module.__name__]
    return Plugin(
        name=name,
        distribution=distribution,
        collectors=tuple(s for s in specs if isinstance(s, Collector)),
        checks=tuple(s for s in specs if isinstance(s, Check)),
        combiners=tuple(s for s in specs if isinstance(s, Combiner)),
    )


def _load(module_name: str, name: str, distribution: str) -> Plugin:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a broken plugin must not stop the run
        return Plugin(name, distribution, load_error=f"{type(exc).__name__}: {exc}")
    return from_module(module, name, distribution)


def _entry_points() -> list[tuple[str, str, str]]:
    """(name, module, distribution) of each registered plugin, found by walking the installed distributions
    (EntryPoint.dist, which names the owner, is Python 3.10+). One name claimed by two distributions is a clash,
    kept with both owners named, never one silently replacing the other."""
    from importlib.metadata import distributions

    found: dict[str, list[tuple[str, str]]] = {}
    for dist in distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                owner = (ep.value.split(":", 1)[0], dist.metadata["Name"] or "unknown")
                if owner not in found.setdefault(ep.name, []):  # a distribution seen twice on sys.path is one
                    found[ep.name].append(owner)
    return sorted((name, owners[0][0], " and ".join(sorted(d for _, d in owners))) for name, owners in found.items())


def _clash(name: str, distribution: str) -> Plugin | None:
    if " and " in distribution:
        return Plugin(name, distribution, load_error=f"the plugin name {name!r} is registered by both {distribution}: "
                                                     "uninstall one, or rename its entry point")
    return None


def _problems(plugins: list[Plugin]) -> list[Plugin]:
    """Name, when plugins load, each check whose `needs`/`uses` names a fact nothing provides (a typo would
    otherwise skip it forever as "facts not collected")."""
    provided = {c.name for p in plugins for c in p.collectors + p.combiners}
    out = []
    for plugin in plugins:
        problems = []
        for chk in plugin.checks:
            # a need nothing provides is always a mistake; a use may be a fact that only some runs have (a policy's),
            # so only one that reads like a misspelt fact is named
            hints = {n: difflib.get_close_matches(n, provided, 1) for n in chk.needs + chk.uses if n not in provided}
            unknown = [n for n in hints if n in chk.needs or hints[n]]
            if unknown:
                hints = {n: hints[n] for n in unknown}
                named = ", ".join(f"{n!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for n, h in hints.items())
                problems.append((chk.id, f"check {chk.id} of plugin {plugin.name} ({plugin.distribution}) names facts "
                                         f"no collector provides: {named}"))
        out.append(replace(plugin, problems=tuple(problems)) if problems else plugin)
    return out


def load_plugins(builtin: tuple[str, ...] = BUILTIN, external: bool = True) -> list[Plugin]:
    """Every plugin: the built-ins, then those registered under the entry-point group, checked for clashes."""
    plugins = [_load(module_name, module_name.rsplit(".", 1)[-1], "gpudoctor") for module_name in builtin]
    if external:
        plugins += [_clash(name, dist) or _load(module, name, dist) for name, module, dist in _entry_points()]
    return _problems(plugins)
