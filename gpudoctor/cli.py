"""The command line: `gpudoctor check`, `gpudoctor list`, `gpudoctor --version`.

Exit codes: 0 nothing failed (warnings allowed unless --strict); 1 a check failed or
errored (or warned, with --strict); 2 usage error; 3 gpudoctor itself broke; 130 Ctrl-C.
Heavy modules (rich, the engine, the checks) are imported only by the command that needs
them, so `--version` and `--help` stay fast.
"""

from __future__ import annotations

import os
import sys

import click

from gpudoctor import __version__

EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 2, 3, 130


class UsageProblem(click.UsageError):
    """A usage error that gpudoctor reports in one line."""


def _names(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(n.strip() for v in values for n in v.split(",") if n.strip())


def _colour(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=__doc__.split("\n\n")[1])
@click.version_option(__version__, "-V", "--version", prog_name="gpudoctor", message="%(prog)s %(version)s")
def cli() -> None:
    """Can this Linux server train models on its GPUs right now? If not, what fixes it."""


@cli.command()
@click.option("-v", "--verbose", is_flag=True, help="Show every check, its details and the key facts.")
@click.option("--only", multiple=True, metavar="IDS", help="Run only these check ids or areas (comma-separated, repeatable).")
@click.option("--skip", "skip_", multiple=True, metavar="IDS", help="Leave out these check ids or areas.")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=3600), default=10.0, show_default=True,
              metavar="S", help="Seconds each collector, command and NVML query may take.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, allow_dash=True), help="Write the result here.")
@click.option("--no-smoke", is_flag=True, help="Skip the on-GPU training smoke test.")
@click.option("--python", "pythons", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Judge this interpreter (repeatable); default: the active venv or conda env, else python3 on PATH.")
def check(verbose, only, skip_, timeout, strict, fmt, output, no_smoke, pythons) -> None:
    """Check this machine and print the verdict with a fix under every problem."""
    from gpudoctor.host import LiveHost
    from gpudoctor.plugins import load_plugins
    from gpudoctor.runner import Selection, unknown_names

    plugins = load_plugins()
    selection = Selection(_names(only), _names(skip_) | ({"smoke"} if no_smoke else set()))
    unknown = unknown_names(plugins, (selection.only | selection.skip) - {"smoke"})
    if unknown:
        raise UsageProblem(f"unknown check id or area: {', '.join(unknown)} (see `gpudoctor list`)")
    stream = _open_output(output)
    host = LiveHost(timeout=timeout, options={"python": list(pythons)})
    try:
        run = _run(plugins, host, selection, timeout)
    finally:  # Ctrl-C, or a collector abandoned still running: nothing may outlive gpudoctor
        host.close()
    code = run.exit_code(strict)
    _emit(run, code, fmt, verbose, stream)
    sys.exit(code)


def _open_output(output: str | None):
    if output in (None, "-"):
        return sys.stdout
    try:
        return open(output, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageProblem(f"cannot write {output}: {exc.strerror or exc}") from None


def _run(plugins, host, selection, timeout):
    import socket
    import time
    from datetime import datetime, timezone

    from gpudoctor.models import Run
    from gpudoctor.runner import run_checks

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.monotonic()
    spinner = _spinner()
    try:
        results, facts, timings = run_checks(plugins, host, selection, timeout)
    finally:
        if spinner:
            spinner.stop()
    hostname = ((facts.get("os") or {}).get("kernel") or {}).get("hostname") or socket.gethostname()
    return Run(results, facts, started, time.monotonic() - clock, hostname, timings)


def _spinner():
    """A spinner on stderr while collecting, only when stderr is a terminal."""
    if not _colour(sys.stderr):
        return None
    from rich.console import Console

    status = Console(file=sys.stderr).status("gpudoctor: collecting facts…")
    status.start()
    return status


def _emit(run, code: int, fmt: str, verbose: bool, stream) -> None:
    from gpudoctor import render

    if fmt == "json":
        stream.write(render.to_json(run, code))
    else:
        render.write_text(render.verdict_lines(run, code, verbose), stream, _colour(stream))
    stream.flush()
    if stream is not sys.stdout:
        stream.close()


@cli.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_checks(fmt) -> None:
    """List every check: id, area, title and the distribution it comes from."""
    import json

    from gpudoctor.plugins import load_plugins

    rows = []
    for plugin in load_plugins():
        if plugin.load_error:
            click.echo(f"gpudoctor: plugin {plugin.name} from {plugin.distribution} failed to load: {plugin.load_error}", err=True)
        rows += [{"id": c.id, "area": c.area, "title": c.title, "distribution": plugin.distribution} for c in plugin.checks]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["id"]) for r in rows), default=10)
    for row in rows:
        click.echo(f"{row['id']:<{width}}  {row['area']:<7}  {row['title']}  [{row['distribution']}]")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line usage errors, exit 3 on our own bugs, 130 on Ctrl-C."""
    try:
        cli.main(args=argv, prog_name="gpudoctor", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        click.echo(f"gpudoctor: error: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except click.Abort:
        click.echo("gpudoctor: interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("gpudoctor: interrupted", err=True)
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except click.ClickException as exc:
        click.echo(f"gpudoctor: error: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except Exception as exc:  # gpudoctor's own bug: say so, never a bare traceback
        if os.environ.get("GPUDOCTOR_DEBUG"):
            raise
        click.echo(f"gpudoctor: internal error ({type(exc).__name__}: {exc}); this is a bug in gpudoctor, "
                   "please report it with GPUDOCTOR_DEBUG=1 output", err=True)
        return EXIT_BUG
    return 0


if __name__ == "__main__":
    sys.exit(main())
