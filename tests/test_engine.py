"""The engine: plugins by entry point, failures as data, deadlines, and the live command runner."""

from __future__ import annotations

import os
import sys
import textwrap
import time
import types

import psutil
import pytest
from evidence_helpers import fixture, this_machine

from gpudoctor.evidence import Evidence
from gpudoctor.host import DENIED, NOT_FOUND, TIMED_OUT, LiveHost, RecordedHost
from gpudoctor.models import Status, Verdict, fail, ok, warn
from gpudoctor.loader import BUILTIN, from_module, load_plugins
from gpudoctor.runner import Selection, run_checks, unknown_names

PLUGIN = '''
import time
from gpudoctor.plugin import Skip, check, collector, fail, ok, warn

def _needs_gpus():
    raise Skip("no GPUs in this rack")

@check("acme.raises_skip", "A helper that skips")
def raises_skip():
    _needs_gpus()

@collector("acme_site")
def site(host):
    return {"scratch": host.read("/proc/self/status").ok}

@collector("acme_broken")
def broken(host):
    raise RuntimeError("disk on fire")

@collector("acme_slow", timeout=0.3)
def slow(host):
    return {"result": host.run(["sleep", "30.017"], timeout=60).rc}

@check("acme.scratch", "Scratch mounted", needs=("acme_site",))
def scratch(acme_site):
    return ok("scratch is there") if acme_site["scratch"] else fail("no scratch", fix="mount it")

@check("acme.crash", "A check with a bug", needs=("acme_site",))
def crash(acme_site):
    return acme_site["missing"]

@check("acme.needs_broken", "Depends on a broken collector", needs=("acme_broken",))
def needs_broken(acme_broken):
    return ok("never")

@check("acme.slow", "Depends on a hung collector", needs=("acme_slow",))
def slow_check(acme_slow):
    return ok("never")

@check("acme.wrong_type", "Returns the wrong thing", uses=("os",))
def wrong_type(os):
    return "fine"
'''


def install_fake_distribution(tmp_path, monkeypatch, name, module, source):
    """A plugin distribution as pip leaves it: the module and a dist-info with entry_points.txt."""
    (tmp_path / f"{module}.py").write_text(source)
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[gpudoctor.checks]\n{module} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


def wait_gone(match, seconds: float = 3.0) -> bool:
    """True once no live (non-zombie) process matches; PID 1 here may never reap zombies."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for proc in psutil.process_iter():
            try:
                if match(proc) and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                continue
        if not alive:
            return True
        time.sleep(0.05)
    return False


def test_builtins_are_listed_once_and_load_as_plugins():
    plugins = load_plugins(external=False)
    assert [p.name for p in plugins] == [b.rsplit(".", 1)[1] for b in BUILTIN] == ["gpus", "system", "driver", "gpu", "fitness", "cuda", "python", "torch", "cudnn", "tensorflow", "jax", "onnxruntime", "conda", "smoke"]
    ids = [c.id for p in plugins for c in p.checks]
    assert len(ids) == len(set(ids)) and all(p.distribution == "gpudoctor" for p in plugins)


@pytest.mark.live
def test_third_party_plugin_runs_like_a_builtin_and_its_failures_are_results(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "acme-gpudoctor-checks", "acme_checks", PLUGIN)
    plugins = load_plugins()
    acme = [p for p in plugins if p.name == "acme_checks"][0]
    assert acme.distribution == "acme-gpudoctor-checks" and len(acme.checks) == 6
    start = time.monotonic()
    host = LiveHost(timeout=5)
    results, facts, _ = run_checks(plugins, host, Selection(only=frozenset({"acme"})), timeout=5)
    took = time.monotonic() - start
    by_id = {r.id: r for r in results}
    assert by_id["acme.scratch"].status == Status.PASS and by_id["acme.scratch"].plugin == "acme-gpudoctor-checks"
    assert (by_id["acme.raises_skip"].status, by_id["acme.raises_skip"].summary) == (Status.SKIP, "no GPUs in this rack")
    assert by_id["acme.crash"].status == Status.ERROR and "KeyError" in by_id["acme.crash"].summary
    assert by_id["acme.collect_acme_broken"].status == Status.ERROR and "disk on fire" in by_id["acme.collect_acme_broken"].summary
    assert by_id["acme.needs_broken"].status == Status.SKIP
    assert "did not finish within 0.3 s" in by_id["acme.collect_acme_slow"].summary
    assert by_id["acme.wrong_type"].status == Status.ERROR and "not a Verdict" in by_id["acme.wrong_type"].summary
    assert took < 3, "a hung collector must cost only its deadline"
    # an unusual duration: another process's `sleep 30` on this machine must not look like ours
    assert wait_gone(lambda p: p.cmdline() == ["sleep", "30.017"]), "the hung command was killed"


def test_plugin_that_fails_to_import_names_its_distribution(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "broken-gpudoctor-plugin", "broken_plugin", "import no_such_module\n")
    results, _, _ = run_checks(load_plugins(), RecordedHost(Evidence()), Selection(only=frozenset({"system.glibc"})))
    error = [r for r in results if r.id == "plugin.broken_plugin"][0]
    assert error.status == Status.ERROR and "broken-gpudoctor-plugin" in error.summary and "no_such_module" in error.summary


def test_duplicate_ids_and_unknown_names(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "dup-plugin", "dup_plugin", textwrap.dedent('''
        from gpudoctor.plugin import check, ok
        @check("system.os", "Shadowing a built-in")
        def again():
            return ok("mine")
        '''))
    plugins = load_plugins()
    results, _, _ = run_checks(plugins, RecordedHost(Evidence()), Selection(only=frozenset({"system.os"})))
    clash = [r for r in results if r.id == "system.os" and r.status == Status.ERROR]
    assert len(clash) == 1 and "defined by both system (gpudoctor) and dup_plugin (dup-plugin)" in clash[0].summary
    assert unknown_names(plugins, ["gpu", "system.os", "no.such.check", "nope"]) == ["no.such.check", "nope"]


def test_verdicts_refuse_a_problem_without_a_fix():
    with pytest.raises(ValueError):
        warn("something is off", fix="")
    with pytest.raises(ValueError):
        fail("", fix="x")
    assert ok("fine").status == Status.PASS and isinstance(ok("fine"), Verdict)


@pytest.mark.live
def test_live_host_runs_without_shell_under_c_locale_and_kills_on_timeout():
    host = LiveHost(timeout=5)
    result = host.run(["sh", "-c", "echo $LC_ALL; echo oops >&2; exit 3"])
    assert (result.rc, result.stdout, result.stderr) == (3, "C\n", "oops\n")
    start = time.monotonic()
    hung = host.run(["sh", "-c", "sleep 30 & echo $!; wait"], timeout=0.5)
    assert hung.error == TIMED_OUT and hung.rc is None and time.monotonic() - start < 3
    grandchild = int(hung.stdout.split()[0])
    assert wait_gone(lambda p: p.pid == grandchild), "its whole process group was killed, grandchildren too"
    assert host.run(["no-such-command-anywhere"]).error == NOT_FOUND
    assert [c["rc"] for c in host.evidence.data["commands"].values()] == [3, None, None]


@pytest.mark.live
def test_live_host_records_files_and_nvml_and_replays_them(tmp_path):
    (tmp_path / "version").write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04\n")
    host = LiveHost()
    assert host.read(str(tmp_path / "version")).ok and host.read("/no/such/file").error == "absent"
    nvml = host.nvml(timeout=20)
    assert "error" in nvml or "devices" in nvml
    replay = RecordedHost(Evidence(host.evidence.to_dict()))
    assert replay.read(str(tmp_path / "version")).text.startswith("NVRM version")
    assert replay.read("/no/such/file").error == "absent" and replay.read("/never/asked").error == "not recorded"
    assert replay.nvml() == nvml


@pytest.mark.live
def test_a_command_on_no_folder_of_path_is_not_found_even_past_one_this_user_cannot_search(tmp_path, monkeypatch):
    """execvp answers EACCES, not ENOENT, when a PATH folder could not be searched (a group-only software tree on a
    cluster; root's PATH kept by runuser): "not installed" must not turn into "permission denied". A file there
    that cannot be executed is denied, for root too."""
    closed, tools = tmp_path / "closed", tmp_path / "tools"
    closed.mkdir()
    tools.mkdir()
    (tools / "not-executable").write_text("#!/bin/sh\n")
    closed.chmod(0)
    try:
        monkeypatch.setenv("PATH", f"{closed}{os.pathsep}{tools}{os.pathsep}{os.environ['PATH']}")
        host = LiveHost(timeout=5)
        assert host.run(["no-such-command-anywhere"]).error == NOT_FOUND
        assert host.run(["not-executable"]).error == DENIED
    finally:
        closed.chmod(0o755)


@pytest.mark.live
def test_closed_host_refuses_new_commands():
    host = LiveHost()
    host.close()
    assert host.run(["true"]).error == "interrupted"


@pytest.mark.live
def test_reads_are_chunked_and_capped(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * (200 << 10))
    host = LiveHost()
    assert len(host.read(str(big)).text) == 200 << 10
    assert len(host.read(str(big), limit=70 << 10).text) == 70 << 10
    assert host.read("/proc/sys/kernel/osrelease").ok  # a sysctl: ENOMEM for large reads by ordinary users


def test_a_collector_name_taken_twice_is_an_error(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "twin-plugin", "twin_plugin", textwrap.dedent('''
        from gpudoctor.plugin import collector
        @collector("os")
        def os_again(host):
            return {"id": "mine"}
        '''))
    results, facts, _ = run_checks(load_plugins(), RecordedHost(fixture("h200-2026-11-26")), Selection(only=frozenset({"system.os"})))
    assert any(r.status == Status.ERROR and "'os' of plugin twin_plugin is already defined by plugin system" in r.summary
               for r in results)
    assert facts["os"]["id"] == "ubuntu"


# -- the plugin API as a third party meets it ----------------------------------------------------------
def test_a_decorated_check_stays_a_plain_function_with_its_declaration_attached():
    from gpudoctor.plugin import Check, check, ok, spec_of

    @check("site.scratch", "Scratch mounted", needs=("site_mounts",))
    def scratch(site_mounts):
        return ok("mounted") if site_mounts["scratch"] else ok("not needed")

    assert scratch({"scratch": True}).summary == "mounted"  # callable as written, as pluggy's hooks are
    assert isinstance(spec_of(scratch), Check) and spec_of(scratch).needs == ("site_mounts",)


@pytest.mark.parametrize("declared, signature, words", [
    ('needs=("nvml",)', "def f(nvml, driver)", "not declared: ['driver']"),
    ('needs=("nvml",), uses=("driver",)', "def f(nvml)", "no parameter for ['driver']"),
])
def test_needs_and_parameters_that_differ_fail_when_the_plugin_loads(tmp_path, monkeypatch, declared, signature, words):
    install_fake_distribution(tmp_path, monkeypatch, "sloppy-plugin", "sloppy_plugin", textwrap.dedent(f'''
        from gpudoctor.plugin import check, ok
        @check("sloppy.one", "One", {declared})
        {signature}:
            return ok("fine")
        '''))
    [sloppy] = [p for p in load_plugins() if p.name == "sloppy_plugin"]
    assert "sloppy-plugin" == sloppy.distribution and words in sloppy.load_error


def test_a_typo_in_needs_is_named_with_the_fact_meant_instead_of_skipping_forever(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "typo-plugin", "typo_plugin", textwrap.dedent('''
        from gpudoctor.plugin import check, ok
        @check("typo.ecc", "ECC", needs=("nvmll",))
        def ecc(nvmll):
            return ok("fine")
        '''))
    results, _, _ = run_checks(load_plugins(), RecordedHost(fixture("h200-2026-11-26")), Selection(only=frozenset({"typo"})))
    [result] = results
    assert result.status == Status.ERROR and "'nvmll' (did you mean 'nvml'?)" in result.summary and "typo-plugin" in result.summary


def test_a_builtin_collector_imported_into_a_plugin_is_not_registered_twice(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "reuse-plugin", "reuse_plugin", textwrap.dedent('''
        from gpudoctor.checks.driver import collect_nvidia_smi
        from gpudoctor.plugin import check, ok
        @check("reuse.smi", "nvidia-smi answers", needs=("nvidia_smi",))
        def smi(nvidia_smi):
            return ok(f"rc {nvidia_smi['rc']}")
        '''))
    [reuse] = [p for p in load_plugins() if p.name == "reuse_plugin"]
    assert reuse.collectors == () and [c.id for c in reuse.checks] == ["reuse.smi"]
    results, _, _ = run_checks(load_plugins(), RecordedHost(fixture("h200-2026-11-26")), Selection(only=frozenset({"reuse"})))
    assert [(r.id, r.status, r.summary) for r in results] == [("reuse.smi", Status.PASS, "rc 0")]


def test_two_distributions_claiming_one_plugin_name_are_refused_naming_both(tmp_path, monkeypatch):
    for dist, folder in (("first-dist", "a"), ("second-dist", "b")):
        (tmp_path / folder).mkdir()
        install_fake_distribution(tmp_path / folder, monkeypatch, dist, "same_name", "")
    [clash] = [p for p in load_plugins() if p.name == "same_name"]
    assert clash.load_error.startswith("the plugin name 'same_name' is registered by both first-dist and second-dist")


def test_the_docstring_example_replays_without_replay_code():
    """plugin.py's own example reads /proc/mounts; replayed from evidence that lacks it, its check skips, saying so."""
    from gpudoctor import plugin as api

    module = types.ModuleType("example")
    exec(textwrap.dedent(api.__doc__.split("::", 1)[1]), module.__dict__)
    results, _, _ = run_checks([from_module(module, "example", "example-dist")], RecordedHost(fixture("h200-2026-11-26")))
    [result] = results
    assert result.status == Status.SKIP and "/proc/mounts not recorded" in result.summary


def test_a_combiner_skips_its_checks_once_with_its_reason():
    """No driver: every check that needs the GPUs skips with the one reason the gpus combiner gives."""
    results, _, _ = run_checks(load_plugins(external=False), RecordedHost(this_machine()), Selection(only=frozenset({"gpu"})))
    by_id = {r.id: r for r in results}
    for id in ("gpu.inventory", "gpu.ecc", "gpu.thermal", "gpu.pcie_link", "gpu.mig"):
        assert (by_id[id].status, by_id[id].summary) == (Status.SKIP, "no NVIDIA kernel module is loaded (see driver.loaded)")
