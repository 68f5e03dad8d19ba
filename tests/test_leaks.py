"""Reports that leak nothing: secret shapes from public rule sets planted everywhere a report reads.

47 shapes (tests/secret_shapes.py names each one's rule: detect-secrets plugins, gitleaks rules,
trufflehog detectors, and the issue's four) go under innocent variable names, into allow-listed
variables, into files the collectors read, into fake command outputs and into probe answers; a real
`gpudoctor report` must carry none of them in any member, member name or the decompressed stream,
and its printout counts them by class without a value.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import stat
import string
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secret_shapes import SHAPES, planted
from test_cli import gpudoctor_cmd, one_line_error

from gpudoctor.allowlist import Collection, env_allowed
from gpudoctor.detect import Scanner
from gpudoctor.host import RELEVANT_ENV
from gpudoctor.redact import Redactor

SHAPED = planted(seed=13)
SECRETS = [secret for _, secret in SHAPED.values()]


def archive_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture(scope="module")
def leaky_machine(tmp_path_factory):
    """This machine with every shape in the environment, two files, two commands and the probes."""
    root = tmp_path_factory.mktemp("leaky")
    lines = [text for text, _ in SHAPED.values()]
    bin_dir = root / "bin"
    bin_dir.mkdir()
    as_echo = "\n".join(f"cat <<'EOF'\n{line}\nEOF" for line in lines)
    executable(bin_dir / "nvidia-smi", f"#!/bin/sh\n{as_echo}\nexit 9\n")  # a broken wrapper that prints its config
    nvrm = "\n".join(f"cat <<'EOF'\n[  3.1] NVRM: {line}\nEOF" for line in lines)
    executable(bin_dir / "dmesg", f"#!/bin/sh\n{nvrm}\n")
    cuda = root / ("cuda-" + SHAPED["huggingface token"][1])  # a secret in a path: it would name a member
    cuda.mkdir()
    (cuda / "version.json").write_text(json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.4.1"},
                                                   **{f"note_{i}": line for i, line in enumerate(lines)}}, indent=2))
    meta = root / "conda" / "conda-meta"
    meta.mkdir(parents=True)
    (meta / "cudatoolkit-11.8.0-h6a678d5_0.json").write_text(json.dumps(
        {"channel": "https://conda.anaconda.org/conda-forge/linux-64", **{f"n{i}": line for i, line in enumerate(lines)}}))
    site = root / "site"  # probe answers: the judged interpreter prints them on both streams
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nif sys.argv[0].endswith('framework_probe.py'):\n"
        f"    for line in {lines!r}:\n        print(line)\n        print(line, file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update({f"NOTES_{i:02d}": line for i, line in enumerate(lines)})  # innocent names: left out whole
    env.update({f"NCCL_NOTE_{i:02d}": line for i, line in enumerate(lines)})  # allow-listed names: scanned
    env.update({"PATH": f"{bin_dir}:{os.environ['PATH']}", "CUDA_HOME": str(cuda), "CONDA_PREFIX": str(root / "conda"),
                "PYTHONPATH": str(site), "PIP_EXTRA_INDEX_URL": SHAPED["basic auth url"][0]})
    out = root / "report.tar.gz"
    umask = os.umask(0o022)  # the common default, which leaves new files readable by every user
    try:
        proc = gpudoctor_cmd("report", "-o", str(out), "--no-smoke", "--python", sys.executable, env=env, timeout=300)
    finally:
        os.umask(umask)
    assert proc.returncode == 0, proc.stderr
    return {"archive": out, "proc": proc, "env": env}


def test_no_shape_leaks_into_any_member_name_or_the_stream(leaky_machine):
    members = archive_members(leaky_machine["archive"])
    stream = gzip.decompress(leaky_machine["archive"].read_bytes())
    everything = b"".join(name.encode() + data for name, data in members) + stream
    leaked = [name for name, (_, secret) in SHAPED.items() if secret.encode() in everything]
    assert leaked == []
    printed = leaky_machine["proc"].stdout + leaky_machine["proc"].stderr
    assert [name for name, (_, secret) in SHAPED.items() if secret in printed] == []


def test_the_shapes_were_there_to_be_found(leaky_machine):
    names = {name.split("/", 1)[1]: data for name, data in archive_members(leaky_machine["archive"])}
    assert "commands/dmesg.txt" in names and "commands/nvidia-smi_-q_-x.txt" in names
    assert any(n.startswith("files/") and n.endswith("version.json") for n in names)
    assert any(n.startswith("files/") and "conda-meta" in n for n in names)
    probes = json.loads(names["evidence.json"])["probes"]
    assert any("[REDACTED" in (answer.get("stderr") or "") for answer in probes.values())
    environment = names["context/environment.txt"].decode()
    assert "\nNOTES_07\n" in environment and "NOTES_07=" not in environment  # by name, its value left out
    assert "NCCL_NOTE_07=[REDACTED" in environment  # allow-listed, so kept, and scanned


def test_the_printout_counts_by_class(leaky_machine):
    out = leaky_machine["proc"].stdout
    redacted = next(line for line in out.splitlines() if line.startswith("Redacted:"))
    counts = dict((kind.strip(), int(n)) for n, kind in (part.strip().split(" ", 1) for part in
                                                         redacted[len("Redacted:"):].split("(values")[0].split(",")))
    for kind in ("aws access key", "url credentials", "webhook url", "private key", "prefixed token", "gcp api key",
                 "Secret Keyword", "Base64 High Entropy String", "Hex High Entropy String", "Mailchimp Access Key"):
        assert counts.get(kind, 0) > 0, (kind, counts)
    left_out = next(line for line in out.splitlines() if line.startswith("Left out by the allow-list:"))
    assert f"{sum(1 for name in leaky_machine['env'] if not env_allowed(name))} environment values" in left_out


def test_the_archive_and_its_members_are_private_under_umask_022(leaky_machine, tmp_path):
    assert stat.S_IMODE(leaky_machine["archive"].stat().st_mode) == 0o600
    with tarfile.open(leaky_machine["archive"], "r:gz") as tar:
        assert {m.mode for m in tar if m.isfile()} == {0o600}
    assert not [p for p in leaky_machine["archive"].parent.iterdir() if p.name.startswith(".gpudoctor-")]  # no leftovers


def test_the_archive_is_private_whatever_the_umask(tmp_path):
    umask = os.umask(0)
    try:
        proc = gpudoctor_cmd("report", "-o", str(tmp_path / "r.tar.gz"), "--no-smoke", timeout=300)
    finally:
        os.umask(umask)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((tmp_path / "r.tar.gz").stat().st_mode) == 0o600 and os.listdir(tmp_path) == ["r.tar.gz"]


def test_a_report_is_never_written_through_a_link_or_over_another_users_file(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours")
    link = tmp_path / "r.tar.gz"
    link.symlink_to(target)
    one_line_error(gpudoctor_cmd("report", "-o", str(link), "--no-smoke"), "symbolic link")
    assert target.read_text() == "not yours"
    if os.getuid() == 0:  # root can make a file that another user owns
        theirs = tmp_path / "theirs.tar.gz"
        theirs.write_text("theirs")
        os.chown(theirs, 65534, 65534)
        one_line_error(gpudoctor_cmd("report", "-o", str(theirs), "--no-smoke"), "another user")
        assert theirs.read_text() == "theirs"


# -- the allow-list -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["CUDA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "NCCL_DEBUG", "CUDNN_LOGINFO_DBG",
                                  "LD_LIBRARY_PATH", "LD_PRELOAD", "PATH", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX",
                                  "PIP_INDEX_URL", "TORCH_CUDA_ARCH_LIST", "PYTORCH_CUDA_ALLOC_CONF", "TF_FORCE_GPU_ALLOW_GROWTH",
                                  "XLA_PYTHON_CLIENT_PREALLOCATE", "JAX_PLATFORMS", "HF_HOME", "OMP_NUM_THREADS",
                                  "MKL_NUM_THREADS", "SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "KUBERNETES_SERVICE_HOST",
                                  "container", "LANG", "LC_ALL", "SHELL", "HOME"])
def test_the_issue_s_families_keep_their_values(name):
    assert env_allowed(name)


@pytest.mark.parametrize("name", ["AZURE_STORAGE_CONNECTION_STRING", "SLACK_WEBHOOK_URL", "SENTRY_DSN", "MLFLOW_TRACKING_URI",
                                  "HF_TOKEN", "NVIDIA_API_KEY", "TF_VAR_db_url", "APPTAINER_DOCKER_PASSWORD", "PWD", "OLDPWD"])
def test_other_and_secret_named_variables_are_named_only(name):
    assert not env_allowed(name)


def test_every_variable_a_check_reads_is_on_the_allow_list():
    assert [name for name in RELEVANT_ENV if not env_allowed(name)] == []


TITLED = Path(__file__).parent / "fixtures" / "h200-gpu-process-title-2026-11-27"


@pytest.mark.parametrize("form", ["nvidia-smi-q-x{}.xml", "nvidia-smi-q{}.txt"])
def test_a_gpu_process_is_named_by_its_executable_alone(form):
    """A real H200: a process titled with its command line shows it whole in nvidia-smi; the report keeps `python3`."""
    titled, plain = (TITLED / form.format("-titled")).read_text(), (TITLED / form.format("")).read_text()
    assert "acme-merger-v2" in titled
    collection = Collection()
    cut = collection.process_names(titled)
    assert "acme-merger-v2" not in cut and "9f3c2a7b1e4d8f60" not in cut and "python3 [left out]" in cut
    assert collection.left_out == {"process argument": 1}
    assert collection.process_names(plain) == plain  # an untitled process is named python3 already


def test_pythonpath_keeps_its_package_folders_only():
    collection = Collection()
    text = collection.environment({"PYTHONPATH": "/home/alice/acme-merger/src:/usr/lib/python3/dist-packages", "SENTRY_DSN": "x"})
    assert "PYTHONPATH=[left out]:/usr/lib/python3/dist-packages\n" in text and "\nSENTRY_DSN\n" in text
    assert collection.left_out == {"environment value": 1, "path entry": 1}


# -- the second pass on its own -------------------------------------------------------------------
def scrub(text: str) -> str:
    """What the report does to a collected text: the detector's pass, then the redactor with its findings."""
    return Redactor(found=Scanner().find({"context/collected.txt": text.encode()})).text(text)


SEPARATORS = st.sampled_from([" ", "\n", "\t", "\"", "'", "=", ": ", ",", ";", "(", ")", "[", "]", "<", ">", "|"])
NOISE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SHAPES)), st.integers(0, 2**32), NOISE, SEPARATORS, SEPARATORS, NOISE)
def test_a_secret_hidden_anywhere_in_collected_text_never_leaks(shape, seed, before, left, right, after):
    text, secret = SHAPES[shape][1](random.Random(seed))
    assert secret not in scrub(before + left + text + right + after)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(SHAPES)), st.integers(0, 2**32)), min_size=1, max_size=6),
       st.lists(st.text(string.ascii_letters + string.digits + " /:._-", max_size=40), max_size=20), st.data())
def test_secrets_among_lines_of_command_output_never_leak(picks, filler, data):
    made = [SHAPES[shape][1](random.Random(seed)) for shape, seed in picks]
    lines = list(filler)
    for text, _ in made:
        lines.insert(data.draw(st.integers(0, len(lines))), text)
    scrubbed = scrub("\n".join(lines))
    assert [secret for _, secret in made if secret in scrubbed] == []


def test_the_detector_names_its_classes():
    found = Scanner().find({"context/x.txt": f"{SHAPED['mailchimp key'][0]}\npassword = {SHAPED['keyword'][1]}\n".encode()})
    assert set(found.values()) == {"Mailchimp Access Key", "Secret Keyword"}


def test_check_and_list_never_import_the_detector():
    code = ("import sys; from gpudoctor.cli import main; main(['list']); main(['check', '--only', 'system.os']);"
            "print('detect_secrets' in sys.modules, file=sys.stderr)")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "False"


# -- --anonymize: jobs, host lists, containers, pods ----------------------------------------------
# Qard/container-info test/fixtures/cgroup (5de922c): /proc/1/cgroup of a Kubernetes pod's container.
POD_CGROUP = "".join(f"{n}:{c}:/kubepods/besteffort/pod74c13223-5a00-11e9-b385-42010a80018d/"
                     "34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376\n"
                     for n, c in ((11, "devices"), (4, "cpu,cpuacct"), (1, "name=systemd")))
# Slurm's job variables (https://slurm.schedmd.com/sbatch.html#SECTION_OUTPUT-ENVIRONMENT-VARIABLES), host
# lists in its bracket notation (`scontrol show hostnames tux[0-3]`); a pod name as a Deployment makes it.
SCHEDULED = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "tux[0-3]", "SLURM_NODELIST": "tux[0-3]",
             "SLURM_JOB_NAME": "llm-pretrain-7", "SLURM_JOB_USER": "mallory", "SLURM_JOB_ACCOUNT": "acme-research",
             "SLURMD_NODENAME": "tux2", "SLURM_SUBMIT_HOST": "login-3", "POD_NAME": "trainer-7f9c4d9b8-xk2lp",
             "POD_NAMESPACE": "team-merger", "CONTAINER_NAME": "sharp-phase-bgxgqd"}


def test_anonymize_hides_jobs_host_lists_containers_and_pods(tmp_path):
    from evidence_helpers import fixture

    from gpudoctor.host import RecordedHost
    from gpudoctor.models import Run
    from gpudoctor.loader import load_plugins
    from gpudoctor.report import write_report
    from gpudoctor.runner import Selection, run_checks

    host = RecordedHost(fixture("h200-2026-11-26"))
    host.evidence.data["files"]["/proc/1/cgroup"] = {"text": POD_CGROUP}
    plugins = load_plugins(external=False)
    results, facts, timings = run_checks(plugins, host)
    run = Run(results, facts, "2026-11-26T06:00:00+00:00", 1.2, "h200-node", timings)
    written = write_report(run, host, str(tmp_path / "r.tar.gz"), True, {**host.environ, **SCHEDULED}, 5.0, plugins, Selection())
    data = b"".join(name.encode() + d for name, d in archive_members(tmp_path / "r.tar.gz"))
    for identity in (*SCHEDULED.values(), "74c13223-5a00-11e9", "34dc0b5e626f2c5c"):
        if identity != "4242":  # a job id identifies nothing outside its cluster
            assert identity.encode() not in data, identity
    assert b"SLURM_JOB_NODELIST=hosts-1" in data and b"/pod00000000-0000-0000-0000-000000000001/" in data
    for kind in ("host list", "job name", "container name", "user name", "host name", "pod uid"):
        assert written.redacted.get(kind), kind
    assert written.redacted.get("Hex High Entropy String")  # the container id: a 64-hex run goes, always


def test_a_build_that_keeps_making_new_findings_is_cut_where_they_stand():
    from gpudoctor.report import _scanned

    keys = [SHAPES["mailchimp key"][1](random.Random(seed))[1] for seed in range(10)]
    calls = []

    def build(found):  # a redaction that, impossibly, brings a new secret each time
        calls.append(dict(found))
        return {"context/x.txt": f"key {keys[len(calls)]}\n".encode()}, [], Redactor(found=found)

    members, _, _ = _scanned(Scanner(), build)
    assert len(calls) == 3 and not any(key.encode() in members["context/x.txt"] for key in keys)
    assert members["context/x.txt"] == b"key [REDACTED Mailchimp Access Key]\n"
