"""The command line: `gpudoctor check`, `report`, `diff`, `list`, `--version`.

Exit codes: 0 nothing failed (warnings allowed unless --strict); 1 a check failed or
errored (or warned, with --strict); 2 usage error, unreadable report or unwritable
output; 3 gpudoctor itself broke; 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (each kills what
gpudoctor started); 141 its output pipe closed (`| head`). `report` exits 0 once the
archive is written; `diff` as diff(1): 0 same, 1 different, 2 trouble.

Heavy modules (rich, the engine, the checks) are imported only by the command that needs
them, so `--version` and `--help` stay fast.
"""

from __future__ import annotations

import os
import sys

import click

from gpudoctor import __version__, signals, streams

EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 2, 3, 130
FORMATS = ["text", "json", "markdown", "junit", "prometheus"]
QUICK_S, QUICK_TIMEOUT_S = 5, 3.0
QUICK_LEAVES_OUT = (("python_envs", "left out by --quick: judging an interpreter imports its frameworks (run gpudoctor check without --quick)"),
                    ("smoke", "left out by --quick: the smoke test trains on the GPUs (run gpudoctor check without --quick)"))
SMOKE_LIMIT = "110 s, see `gpudoctor smoke --timeout`"


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


class Seconds(click.FloatRange):
    """A time limit: a number of seconds in range; `nan`, which FloatRange lets through, is refused too."""

    def convert(self, value, param, ctx):
        seconds = super().convert(value, param, ctx)
        if seconds != seconds:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


class Commands(click.Group):
    """gpudoctor's commands; a write into a closed pipe becomes `ClosedOutput`, which click would
    otherwise turn into exit 1, a failed check's code."""

    def make_context(self, *args, **kwargs):
        with streams.closed_pipe_is_quiet():  # --help and --version print while parsing
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with streams.closed_pipe_is_quiet():
            return super().invoke(ctx)


def _names(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(n.strip() for v in values for n in v.split(",") if n.strip())


def _colour(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]}, epilog=__doc__.split("\n\n")[1],
             invoke_without_command=True)
@click.version_option(__version__, "-V", "--version", prog_name="gpudoctor", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx) -> None:
    """Can this Linux server train models on its GPUs right now? If not, what fixes it."""
    if ctx.invoked_subcommand is None:  # bare `gpudoctor` asks what it can do: the help, not an error
        click.echo(ctx.get_help())


@cli.command()
@click.option("-v", "--verbose", is_flag=True, help="Show every check, its details and the key facts.")
@click.option("--only", multiple=True, metavar="IDS", help="Run only these check ids or areas (comma-separated, repeatable).")
@click.option("--skip", "skip_", multiple=True, metavar="IDS", help="Leave out these check ids or areas.")
@click.option("--timeout", type=Seconds(min=0.1, max=3600), default=None, show_default="10, 3 with --quick", metavar="S",
              help=f"Seconds any one collector, command, probe or NVML query may run before it is killed "
                   f"(the smoke test's training run has its own limit: {SMOKE_LIMIT}).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the result here (prometheus: written whole, through a temporary file and a rename).")
@click.option("--anonymize", is_flag=True, help="Remove secrets and replace host and user names, IP and MAC addresses, "
                                                  "GPU serials and UUIDs in the output, as `report --anonymize` does.")
@click.option("--no-smoke", is_flag=True, help="Skip the on-GPU training smoke test.")
@click.option("--quick", is_flag=True, help=f"A scheduler's health check: no framework imports, no smoke test, under {QUICK_S} s.")
@click.option("--policy", "policy_file", metavar="FILE", help="Also judge this node against a policy (TOML): see examples/policies/.")
@click.option("--python", "pythons", multiple=True, type=PYTHON,
              help="Judge this interpreter (repeatable): its path, its env folder, or a command; default: the active venv or conda env, else python3 on PATH.")
@click.option("--from", "source", metavar="REPORT", help="Re-judge a report (archive, report.json or an extracted archive's folder) instead of this machine.")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(["fp16", "bf16", "fp8"]),
              help="A training precision you will use (repeatable): warn where a GPU cannot run it.")
def check(verbose, only, skip_, timeout, strict, fmt, output, anonymize, no_smoke, quick, policy_file, pythons, source, precisions) -> None:
    """Check this machine and print the verdict with a fix under every problem."""
    if source and (pythons or precisions):
        raise UsageProblem("--python and --precision describe this machine's run; they cannot be used with --from")
    if source and anonymize:
        raise UsageProblem("--anonymize applies to this machine's run; a report is anonymized when it is written (gpudoctor report --anonymize)")
    loaded = _load(source) if source else None
    policy = _policy(policy_file, loaded) if policy_file else None
    plugins, selection = _selected(only, skip_, no_smoke, policy, quick)
    timeout = timeout or (QUICK_TIMEOUT_S if quick else 10.0)
    if policy and not pythons and not loaded:
        pythons = tuple(p for p in policy.interpreter_paths() if os.path.exists(p))
    stream = _open_output(output, fmt)
    if loaded and policy:  # judged from facts alone, the policy's own fact comes from today's file
        loaded.document["facts"]["policy"] = policy.to_dict()
    precision = list(precisions)
    if loaded:
        run = _rejudge(plugins, loaded, selection, timeout)
    elif anonymize:
        run = _live_run(plugins, selection, timeout, pythons, _anonymized(plugins, selection, timeout), precision=precision)[1]
    else:
        run = _live_run(plugins, selection, timeout, pythons, precision=precision)[0]
    if policy:
        from gpudoctor.policy_checks import apply

        run.results = apply(run.results, policy)
    code = run.exit_code(strict)
    with streams.writing(output):
        _emit(run, code, fmt, verbose, stream, loaded.document if loaded else None)
    _wrote(output, f"{fmt}, exit code {code}")
    sys.exit(code)


def _policy(path: str, loaded):
    """The policy for this host (or the report's), or a one-line usage error naming file, line and key."""
    import socket

    from gpudoctor.policy import PolicyError, load_policy, resolve

    try:
        return resolve(load_policy(path), str(loaded.document.get("host") or "") if loaded else socket.gethostname())
    except PolicyError as exc:
        raise UsageProblem(str(exc)) from None


def _anonymized(plugins, selection, timeout):
    """The run re-judged from its evidence after the report's redaction and anonymization (report.anonymized)."""
    from gpudoctor.report import anonymized

    return lambda run, host: anonymized(run, host, dict(os.environ), timeout, plugins, selection)


def _wrote(output: str | None, what: str) -> None:
    """Where the output went, on stderr so that stdout stays clean, as `report` says where its archive is."""
    if output not in (None, "-"):
        click.echo(f"gpudoctor: wrote {output} ({what})", err=True)


def _selected(only, skip_, no_smoke, policy=None, quick=False):
    from gpudoctor.loader import load_plugins
    from gpudoctor.runner import Selection, unknown_names

    plugins = load_plugins()
    if policy:
        from gpudoctor.policy_checks import policy_plugin

        plugins.append(policy_plugin(policy))
    selection = Selection(_names(only), _names(skip_) | ({"smoke"} if no_smoke else set()), QUICK_LEAVES_OUT if quick else ())
    unknown = unknown_names(plugins, (selection.only | selection.skip) - {"smoke"})
    if unknown:
        raise UsageProblem(f"unknown check id or area: {', '.join(unknown)} (see `gpudoctor list`)")
    if not any(selection.wants(chk) for plugin in plugins for chk in plugin.checks):
        raise UsageProblem("--only and --skip leave no check to run")
    return plugins, selection


def _live_run(plugins, selection, timeout, pythons, after=None, smoke=None, precision=None):
    """Check this machine; `after(run, host)` runs before the host is closed (report's context)."""
    from gpudoctor.host import LiveHost

    options = {"python": list(pythons), **({"smoke": smoke} if smoke else {}), **({"precision": precision} if precision else {})}
    host = LiveHost(timeout=timeout, options=options)
    try:
        run = _run(plugins, host, selection, timeout)
        return run, (after(run, host) if after else None)
    finally:  # Ctrl-C, or a collector abandoned still running: nothing may outlive gpudoctor
        host.close()


def _load(source: str):
    from gpudoctor.archive import ReportError, load_report

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


def _open_output(output: str | None, fmt: str = "text"):
    if fmt == "prometheus" and output not in (None, "-"):  # a collector must never read half a file: write beside it, rename when whole
        from gpudoctor.formats import AtomicFile

        try:
            return AtomicFile(output)
        except OSError as exc:
            raise UsageProblem(f"cannot write {output}: {exc.strerror or exc}") from None
    return streams.open_output(output)


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
    elif fmt != "text":
        from gpudoctor import formats

        stream.write(formats.RENDERERS[fmt](run, code))
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
@click.option("--timeout", type=Seconds(min=1, max=110), default=110.0, show_default=True, metavar="S",
              help="Seconds each framework's training run may take in each interpreter before it is killed.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), help="Write the result here.")
@click.option("-v", "--verbose", is_flag=True, help="Every figure the smoke test measured.")
def smoke(device, frameworks, pythons, steps, timeout, fmt, output, verbose) -> None:
    """Only the training smoke test: train a tiny model, check its numbers, measure the speed."""
    from gpudoctor.runner import Selection

    plugins, _ = _selected((), (), False)
    stream = _open_output(output)
    options = {"device": device, "steps": steps, "frameworks": list(frameworks), "timeout": timeout}
    run = _live_run(plugins, Selection(only=frozenset({"smoke"})), timeout + 10, pythons, smoke=options)[0]
    code = run.exit_code()
    trained = [r for r in run.results if r.id in ("smoke.torch", "smoke.jax", "smoke.tensorflow") and r.status.value != "skip"]
    if not trained:  # nothing tested is not a pass
        code = 1
    with streams.writing(output):
        _emit(run, code, fmt, verbose, stream)
    _wrote(output, f"{fmt}, exit code {code}")
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
@click.option("--only", multiple=True, metavar="IDS", help="Judge only these check ids or areas (comma-separated, repeatable).")
@click.option("--skip", "skip_", multiple=True, metavar="IDS", help="Leave out these check ids or areas.")
@click.option("--no-smoke", is_flag=True, help="Skip the on-GPU training smoke test.")
@click.option("--timeout", type=Seconds(min=0.1, max=3600), default=10.0, show_default=True, metavar="S",
              help=f"Seconds any one collector, command, probe or NVML query may run before it is killed "
                   f"(the smoke test's training run has its own limit: {SMOKE_LIMIT}).")
@click.option("--python", "pythons", multiple=True, type=PYTHON,
              help="Judge this interpreter and put its probe answers and `pip list` in the archive (repeatable): its path, "
                   "its env folder, or a command; default: the active venv or conda env, else python3 on PATH.")
def report(output, anonymize, only, skip_, no_smoke, timeout, pythons) -> None:
    """Write one archive for support: verdict, facts, raw evidence and context, secrets removed."""
    import socket

    from gpudoctor import detect
    from gpudoctor.archive import ReportError, unsafe_target
    from gpudoctor.report import archive_stem, write_report

    detect.preload()  # detect-secrets imports while the collectors wait on their commands
    plugins, selection = _selected(only, skip_, no_smoke)
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
    """The archive is written beside `path`, then renamed onto it: its folder must take a new file, and
    `path` may not be a device or a pipe (/dev/full would be replaced by the archive)."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder):
        raise UsageProblem(f"cannot write {path}: {'a folder' if os.path.isdir(path) else 'its folder is missing'}")
    if not os.access(folder, os.W_OK):  # root passes this test everywhere; the temporary file below then speaks
        raise UsageProblem(f"cannot write {path}: its folder takes no new file (no write permission)")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UsageProblem(f"cannot write {path}: not a regular file, and the archive would replace it")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageProblem(f"cannot write {path}: its folder takes no new file ({exc.strerror or exc})") from None


def _progress():
    """A line per stage on stderr when it is a terminal; silent when piped."""
    if not _colour(sys.stderr):
        return lambda message: None
    return lambda message: click.echo(f"gpudoctor: {message}", err=True)


@cli.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), help="Write the result here.")
@click.option("-v", "--verbose", is_flag=True, help="List every differing fact.")
def diff(a, b, fmt, output, verbose) -> None:
    """Compare two reports (archives, JSON or extracted folders): versions, facts and statuses that differ."""
    import json

    from gpudoctor.diff import compare, text_lines

    documents = _load(a).document, _load(b).document
    stream = _open_output(output)
    result = compare(*documents)
    _write(json.dumps(result, indent=2, default=str) if fmt == "json" else "\n".join(text_lines(result, verbose)), stream, output)
    _wrote(output, f"{fmt}, {'same' if result['same'] else 'different'}")
    sys.exit(0 if result["same"] else 1)


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="REPORTS|DIRS...")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
def summarize(paths, fmt) -> None:
    """A fleet's reports side by side: failing checks by cause, software stacks, speed outliers (exit 1 if a node fails)."""
    import json

    from gpudoctor.summarize import gather, summarize as summarize_fleet, text_lines

    fleet = gather(list(paths))
    if not fleet.nodes:
        why = "; ".join(f"{p}: {w}" for p, w in fleet.unreadable[:3]) or "no *.json or *.tar.gz report there"
        raise UsageProblem(f"no readable report in {' '.join(paths)} ({why})")
    result = summarize_fleet(fleet)
    click.echo(json.dumps(result, indent=2) if fmt == "json" else "\n".join(text_lines(result, fmt == "markdown")))
    sys.exit(1 if result["failing_nodes"] else 0)


def _write(text: str, stream, output: str | None) -> None:
    """One command's whole output, a line at its end; the file closed after."""
    with streams.writing(output):
        stream.write(text + "\n")
        stream.flush()
        if stream is not sys.stdout:
            stream.close()


@cli.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), help="Write the list here.")
def list_checks(fmt, output) -> None:
    """List every check: id, area, title and the distribution it comes from."""
    import json

    from gpudoctor.loader import load_plugins

    stream = _open_output(output)
    rows = []
    for plugin in load_plugins():
        if plugin.load_error:
            click.echo(f"gpudoctor: plugin {plugin.name} from {plugin.distribution} failed to load: {plugin.load_error}", err=True)
        rows += [{"id": c.id, "area": c.area, "title": c.title, "distribution": plugin.distribution} for c in plugin.checks]
    width = max((len(r["id"]) for r in rows), default=10)
    lines = [f"{row['id']:<{width}}  {row['area']:<7}  {row['title']}  [{row['distribution']}]" for row in rows]
    _write(json.dumps(rows, indent=2) if fmt == "json" else "\n".join(lines), stream, output)
    _wrote(output, f"{fmt}, {len(rows)} checks")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line usage errors, exit 3 on our own bugs, 130 on Ctrl-C, 128+N on SIGTERM and SIGHUP."""
    streams.fit_to_locale()
    try:
        with signals.handled():
            return _main(argv)
    except signals.Stopped as exc:  # the host was closed on the way out: nothing gpudoctor started runs on
        _say(f"gpudoctor: stopped by {exc.name}")
        return exc.exit_code


def _main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="gpudoctor", standalone_mode=False)
    except streams.ClosedOutput:
        streams.silence_stdout()
        return streams.EXIT_PIPE
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


def _say(message: str) -> None:
    """A last line on stderr, which a closed terminal (the SIGHUP case) may no longer take."""
    try:
        click.echo(message, err=True)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
