"""The command line: `gpudoctor check`, `report`, `diff`, `list`, `--version`.

Exit codes: 0 nothing failed (warnings allowed unless --strict); 1 a check failed or
errored (or warned, with --strict); 2 usage error or unreadable report; 3 gpudoctor
itself broke; 130 Ctrl-C. `report` exits 0 once the archive is written; `diff` as
diff(1): 0 same, 1 different, 2 trouble.

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


class PythonType(click.ParamType):
    """An interpreter to judge: its path, an environment's folder (a venv or conda prefix: its bin/python),
    or a command on PATH. Anything else is a usage error, in one line."""

    name = "PYTHON"

    def convert(self, value, param, ctx):
        import re
        import shutil

        path = value
        if os.path.isdir(value):
            path = next((os.path.join(value, "bin", n) for n in ("python", "python3") if os.path.isfile(os.path.join(value, "bin", n))), "")
            if not path:
                self.fail(f"{value} is a folder without bin/python: not a virtual or conda environment", param, ctx)
        elif os.sep not in value and not os.path.exists(value):
            path = shutil.which(value) or ""
            if not path:
                self.fail(f"no command {value!r} on PATH", param, ctx)
        if not os.path.exists(path):
            self.fail(f"{value} does not exist", param, ctx)
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            self.fail(f"{value} is not an executable file", param, ctx)
        names = (os.path.basename(path), os.path.basename(os.path.realpath(path)))
        if not any(re.match(r"(python|pypy)", n) for n in names):
            self.fail(f"{value} is not a Python interpreter (give an env's bin/python, its folder, or a python command)", param, ctx)
        return os.path.abspath(path) if os.sep in value or os.path.isdir(value) else path


PYTHON = PythonType()


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
@click.option("--python", "pythons", multiple=True, type=PYTHON,
              help="Judge this interpreter (repeatable): its path, its env folder, or a command; default: the active venv or conda env, else python3 on PATH.")
@click.option("--from", "source", metavar="REPORT", help="Re-judge a report (archive or report.json) instead of this machine.")
def check(verbose, only, skip_, timeout, strict, fmt, output, no_smoke, pythons, source) -> None:
    """Check this machine and print the verdict with a fix under every problem."""
    plugins, selection = _selected(only, skip_, no_smoke)
    if source and pythons:
        raise UsageProblem("--python judges this machine's interpreters; it cannot be used with --from")
    loaded = _load(source) if source else None
    stream = _open_output(output)
    run = _rejudge(plugins, loaded, selection, timeout) if loaded else _live_run(plugins, selection, timeout, pythons)[0]
    code = run.exit_code(strict)
    _emit(run, code, fmt, verbose, stream, loaded.document if loaded else None)
    sys.exit(code)


def _selected(only, skip_, no_smoke):
    from gpudoctor.plugins import load_plugins
    from gpudoctor.runner import Selection, unknown_names

    plugins = load_plugins()
    selection = Selection(_names(only), _names(skip_) | ({"smoke"} if no_smoke else set()))
    unknown = unknown_names(plugins, (selection.only | selection.skip) - {"smoke"})
    if unknown:
        raise UsageProblem(f"unknown check id or area: {', '.join(unknown)} (see `gpudoctor list`)")
    if not any(selection.wants(chk) for plugin in plugins for chk in plugin.checks):
        raise UsageProblem("--only and --skip leave no check to run")
    return plugins, selection


def _live_run(plugins, selection, timeout, pythons, after=None, smoke=None):
    """Check this machine; `after(run, host)` runs before the host is closed (report's context)."""
    from gpudoctor.host import LiveHost

    host = LiveHost(timeout=timeout, options={"python": list(pythons), **({"smoke": smoke} if smoke else {})})
    try:
        run = _run(plugins, host, selection, timeout)
        return run, (after(run, host) if after else None)
    finally:  # Ctrl-C, or a collector abandoned still running: nothing may outlive gpudoctor
        host.close()


def _load(source: str):
    from gpudoctor.report import ReportError, load_report

    try:
        return load_report(source)
    except ReportError as exc:
        raise UsageProblem(str(exc)) from None


def _rejudge(plugins, loaded, selection, timeout):
    """Judge a report with today's checks: from its raw evidence when it has some, else its facts."""
    from gpudoctor.evidence import Evidence
    from gpudoctor.host import RecordedHost
    from gpudoctor.models import Run
    from gpudoctor.runner import run_checks

    document = loaded.document
    if loaded.evidence is None:
        results, facts, timings = run_checks(plugins, None, selection, timeout, facts=document["facts"])
    else:
        results, facts, timings = run_checks(plugins, RecordedHost(Evidence(loaded.evidence), timeout), selection, timeout)
    duration = document.get("duration_s") if isinstance(document.get("duration_s"), (int, float)) else 0.0
    return Run(results, facts, str(document.get("started_at", "")), duration, str(document.get("host", "")), timings)


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


def _emit(run, code: int, fmt: str, verbose: bool, stream, source: dict | None = None) -> None:
    from gpudoctor import render

    origin = source and {"host": source.get("host"), "started_at": source.get("started_at"),
                         "gpudoctor_version": source.get("gpudoctor_version")}
    if fmt == "json":
        stream.write(render.to_json(run, code, origin))
    else:
        lines = render.verdict_lines(run, code, verbose)
        if origin:
            lines = [[(f"Report from {origin['host']}, collected {origin['started_at']} by gpudoctor "
                       f"{origin['gpudoctor_version']}; re-judged by gpudoctor {__version__}", "bold")], []] + lines
        render.write_text(lines, stream, _colour(stream))
    stream.flush()
    if stream is not sys.stdout:
        stream.close()


@cli.command()
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default="cuda", show_default=True,
              help="Every visible GPU, or the CPU (the same code path, for machines without a GPU).")
@click.option("--framework", "frameworks", multiple=True, type=click.Choice(["torch", "jax", "tensorflow"]),
              help="Only this framework (repeatable; default: each that is installed).")
@click.option("--python", "pythons", multiple=True, type=PYTHON,
              help="Run it in this interpreter (repeatable): its path, its env folder, or a command; default as for check.")
@click.option("--steps", type=click.IntRange(5, 1000), default=30, show_default=True, help="Mixed-precision training steps.")
@click.option("--timeout", type=click.FloatRange(min=1, max=110), default=110.0, show_default=True, metavar="S",
              help="Seconds the whole smoke test may take in each interpreter.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Every figure the smoke test measured.")
def smoke(device, frameworks, pythons, steps, timeout, fmt, verbose) -> None:
    """Only the training smoke test: train a tiny model, check its numbers, measure the speed."""
    from gpudoctor.runner import Selection

    plugins, _ = _selected((), (), False)
    options = {"device": device, "steps": steps, "frameworks": list(frameworks), "timeout": timeout}
    run = _live_run(plugins, Selection(only=frozenset({"smoke"})), timeout + 10, pythons, smoke=options)[0]
    code = run.exit_code()
    trained = [r for r in run.results if r.id in ("smoke.torch", "smoke.jax", "smoke.tensorflow") and r.status.value != "skip"]
    if not trained:  # nothing tested is not a pass
        code = 1
    _emit(run, code, fmt, verbose, sys.stdout)
    if not trained:
        skipped = next((r.summary for r in run.results if r.id == "smoke.torch"), "")
        hint = ("no GPU is visible here: gpudoctor smoke --device cpu runs the same test on the CPU"
                if device == "cuda" and "GPU" in skipped else
                "no framework to train with: point --python at your training environment (its bin/python or its folder)")
        click.echo(f"gpudoctor: nothing was trained ({skipped}); {hint}", err=True)
    sys.exit(code)


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="PATH",
              help="Where to write the archive; default: gpudoctor-report-HOST-TIME.tar.gz here.")
@click.option("--anonymize", is_flag=True, help="Also replace host and user names, IP and MAC addresses, GPU serials and UUIDs.")
@click.option("--no-smoke", is_flag=True, help="Skip the on-GPU training smoke test.")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=3600), default=10.0, show_default=True, metavar="S",
              help="Seconds each collector and command may take.")
@click.option("--python", "pythons", multiple=True, type=PYTHON,
              help="Judge this interpreter, and record its packages and probes (repeatable); default as for check.")
def report(output, anonymize, no_smoke, timeout, pythons) -> None:
    """Write one archive for support: verdict, facts, raw evidence and context, secrets removed."""
    import socket

    from gpudoctor import detect
    from gpudoctor.report import ReportError, archive_stem, unsafe_target, write_report

    detect.preload()  # detect-secrets imports while the collectors wait on their commands
    plugins, selection = _selected((), (), no_smoke)
    path = output or archive_stem(socket.gethostname(), anonymize) + ".tar.gz"
    _check_writable(path)
    why = unsafe_target(path)
    if why:
        raise UsageProblem(f"cannot write {path}: {why}")
    say = _progress()

    def archive(run, host):
        try:
            return write_report(run, host, path, anonymize, dict(os.environ), timeout, plugins, selection, say)
        except ReportError as exc:
            raise UsageProblem(str(exc)) from None

    run, written = _live_run(plugins, selection, timeout, pythons, archive)
    counts = written.counts
    click.echo(f"Wrote {written.path} ({written.size / 1024:.0f} KiB): report.json, report.md, evidence.json, "
               f"{counts['commands']} command outputs, {counts['files']} files, {counts['probes']} probe answers, "
               f"{counts['context']} context outputs")
    if written.missing:
        click.echo(f"Not on this machine (noted in the archive): {', '.join(written.missing)}")
    left_out = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in written.left_out.items())
    click.echo(f"Left out by the allow-list: {left_out or 'nothing'} (environment variables keep their names)")
    redacted = ", ".join(f"{n} {kind}" for kind, n in written.redacted.items())
    click.echo(f"Redacted: {redacted or 'nothing secret found'} (values never shown; gpudoctor's patterns, then detect-secrets)")
    if written.changed:
        click.echo(f"Redaction changed the verdict of {', '.join(written.changed)}: the archive judges what it holds")
    summary = run.counts()
    click.echo(f"Verdict: {summary['fail'] + summary['error']} failed, {summary['warn']} warned "
               f"(exit {run.exit_code()} for `gpudoctor check`); re-judge with: gpudoctor check --from {written.path}")


def _check_writable(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageProblem(f"cannot write {path}: {'a folder' if os.path.isdir(path) else 'its folder is missing or not writable'}")


def _progress():
    """A line per stage on stderr when it is a terminal; silent when piped."""
    if not _colour(sys.stderr):
        return lambda message: None
    return lambda message: click.echo(f"gpudoctor: {message}", err=True)


@cli.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="List every differing fact.")
def diff(a, b, fmt, verbose) -> None:
    """Compare two reports (archives or JSON): versions, facts and statuses that differ."""
    import json

    from gpudoctor.diff import compare, text_lines

    result = compare(_load(a).document, _load(b).document)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        click.echo("\n".join(text_lines(result, verbose)))
    sys.exit(0 if result["same"] else 1)


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
