"""Support reports: what the archive holds, that no planted secret survives, re-judging and diff."""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import stat
import string
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from evidence_helpers import fixture, recorded_report, this_machine
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_cli import SCHEMA, gpudoctor_cmd, one_line_error

from gpudoctor import archive as archive_module
from gpudoctor.host import RecordedHost
from gpudoctor.models import Run, Status
from gpudoctor.loader import load_plugins
from gpudoctor.redact import Redactor
from gpudoctor.archive import ReportError, load_report
from gpudoctor.report import write_report
from gpudoctor.runner import Selection, run_checks

# One secret of every class the issue names, each where a real one turns up.
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OX0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
ENV_SECRETS = {
    "HF_TOKEN": "hf_QmVyeVNlY3JldEh1Z2dpbmdGYWNlVG9rZW4x",
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
    "DB_PASSWORD": "correct-horse-battery",
    "MY_PASSWD": "tr0ub4dor3",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "SERVICE_CREDENTIALS": "svc-cred-value-77",
    "PROXY_AUTH": "basic-auth-value-88",
    "BROWSER_COOKIE": "cookie-value-99",
    "JUPYTER_SESSION": "session-value-66",
    "SIGNING_SECRET": "signing-secret-55",
}
SHAPED = {  # under innocent names: only their shape gives them away
    "NOTES_A": "ghp_R2l0SHViUGVyc29uYWxBY2Nlc3NUb2tlbjEyMw",
    "NOTES_B": "glpat-R2l0TGFiVG9rZW4xMjM0NTY3",
    "NOTES_C": "xoxb-1234567890-abcdefghijklmnop",
    "NOTES_D": "AKIAIOSFODNN7EXAMPLE",
    "NOTES_E": "sk-proj-T3BlbkFJU2VjcmV0S2V5MTIzNDU2Nzg5",
    "NOTES_F": JWT,
    "DEPLOY_PEM": PRIVATE_KEY,
    "PIP_INDEX_URL": "https://alice:pipPassw0rd@pypi.acme.example/simple",
}
SMI_SECRETS = ["hf_U21pT3V0cHV0VG9rZW5JbkFDb21tYW5kT3V0", "https://bob:smiPassw0rd@mirror.example/x",
               "ghp_U21pR2l0SHViVG9rZW5Jbk91dHB1dDEyMzQ1"]
CONDA_SECRETS = ["https://carol:condaPassw0rd@conda.acme.example/main/linux-64", "xoxp-9876543210-condaslacktoken"]
PYTHONPATH_SECRET = "hf_UHl0aG9uUGF0aFRva2VuSW5BUHJvYmVBbnN3ZXI"


def secret_values() -> list[str]:
    values = [*ENV_SECRETS.values(), *SHAPED.values(), *SMI_SECRETS, *CONDA_SECRETS, PYTHONPATH_SECRET]
    # a credential is secret by its password; a key block by its body
    return [v.split("://")[1].split("@")[0].split(":")[1] if "://" in v else v for v in values] + [
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"]


def archive_bytes(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """This machine with secrets in the environment, in a command's output, in a file and in a probe."""
    root = tmp_path_factory.mktemp("planted")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"  # a command whose output carries tokens, as a mis-set-up wrapper's would
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed; mirror " + " ".join(SMI_SECRETS) + "'\n"
                   "echo 'GPU 0: NVIDIA H200 (UUID: GPU-33497751-baba-a7bf-3038-8645175b5bde) at 10.20.30.40 aa:bb:cc:dd:ee:01'\n"
                   "exit 9\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    meta = root / "conda" / "conda-meta"  # a file the conda collector reads
    meta.mkdir(parents=True)
    (meta / "cudatoolkit-11.8.0-h6a678d5_0.json").write_text(json.dumps(
        {"channel": CONDA_SECRETS[0], "url": CONDA_SECRETS[0] + "/cudatoolkit.conda", "note": CONDA_SECRETS[1]}))
    # the fake nvidia-smi first; no conda (a GPU server's own would answer `conda list`): the archive must say it is absent
    path = [str(bin_dir)] + [d for d in os.environ["PATH"].split(os.pathsep) if d and not os.path.exists(os.path.join(d, "conda"))]
    env = {**os.environ, **ENV_SECRETS, **SHAPED, "PATH": os.pathsep.join(path),
           "CONDA_PREFIX": str(root / "conda"), "PYTHONPATH": f"/opt/{PYTHONPATH_SECRET}", "HOSTNAME": "gpu-node-17"}
    for name in ("NO_COLOR", "CONDA_EXE", "MAMBA_EXE"):
        env.pop(name, None)
    out = root / "report.tar.gz"
    proc = gpudoctor_cmd("report", "-o", str(out), "--python", sys.executable, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    live = gpudoctor_cmd("check", "--format", "json", "--python", sys.executable, env=env, timeout=120)
    return {"root": root, "env": env, "archive": out, "proc": proc, "live": json.loads(live.stdout)}


@pytest.mark.live
def test_no_planted_secret_appears_anywhere_in_the_archive(planted):
    members = archive_bytes(planted["archive"])
    everything = b"".join(name.encode() + data for name, data in members) + gzip.decompress(planted["archive"].read_bytes())
    for secret in secret_values():
        assert secret.encode() not in everything, f"leaked: {secret[:12]}…"
    for secret in secret_values():
        assert secret not in planted["proc"].stdout + planted["proc"].stderr
    # and they were really there to be found: the command, the file and the probe answer made it in
    names = [name.split("/", 1)[1] for name, _ in members]
    assert "commands/nvidia-smi_-q_-x.txt" in names and "context/environment.txt" in names
    assert any(n.startswith("files/") and "conda-meta" in n for n in names)
    text = dict((name.split("/", 1)[1], data.decode()) for name, data in members)
    assert "[REDACTED huggingface token]" in text["commands/nvidia-smi_-q_-x.txt"]
    assert "[REDACTED url credentials]@conda.acme.example" in text[next(n for n in text if "conda-meta" in n and n.startswith("files/"))]
    # the PYTHONPATH folder is not the interpreter's own: the probe names it no more (allowlist.py)
    assert "[left out]" in json.dumps(json.loads(text["evidence.json"])["probes"])
    assert "\nDB_PASSWORD\n" in text["context/environment.txt"] and "DB_PASSWORD=" not in text["context/environment.txt"]


@pytest.mark.live
def test_the_report_says_what_it_redacted_by_class_never_by_value(planted):
    out = planted["proc"].stdout
    redacted = next(line for line in out.splitlines() if line.startswith("Redacted:"))
    for kind in ("url credentials", "huggingface token", "github token", "slack token"):  # the command's, file's and probe's
        assert kind in redacted, kind
    left_out = next(line for line in out.splitlines() if line.startswith("Left out by the allow-list:"))
    assert " environment values" in left_out  # the environment's secrets, each under a name off the allow-list
    assert f"Wrote {planted['archive']}" in out and "re-judge with: gpudoctor check --from" in out


@pytest.mark.live
def test_the_archive_holds_the_verdict_the_facts_and_what_support_asks_for(planted):
    members = {name.split("/", 1)[1]: data for name, data in archive_bytes(planted["archive"])}
    document = json.loads(members["report.json"])
    jsonschema.validate(document, SCHEMA)
    for name in ("report.md", "evidence.json", "nvml.json", "context/nvidia-smi-q.txt", "context/nvidia-smi-topo.txt",
                 "context/kernel-log-nvidia.txt", "context/ldconfig-cuda.txt", "context/lspci-nvidia.txt",
                 "context/uname.txt", "context/disks.txt", "context/memory.txt", "context/os-release.txt",
                 "context/pip-list-1.txt", "context/conda-list.txt", "context/environment.txt"):
        assert name in members, name
    assert b"$ nvidia-smi -q\n# exit status 9" in members["context/nvidia-smi-q.txt"]
    assert b"not installed here" in members["context/conda-list.txt"]  # no conda on PATH: said, not hidden
    assert b"gpudoctor" in members["context/pip-list-1.txt"] and b"pytest" in members["context/pip-list-1.txt"]
    # the linker cache's entries (tab-indented) under the command that listed them (`/sbin/ldconfig` where ldconfig is not on PATH)
    entries = [line for line in members["context/ldconfig-cuda.txt"].decode().splitlines() if line.startswith("\t")]
    assert all("cuda" in line.lower() or "nv" in line.lower() for line in entries)
    markdown = members["report.md"].decode()
    assert "## Verdict" in markdown and "driver.loaded" in markdown and "| fact | value |" in markdown
    assert "Fix:" in markdown  # the fixes travel with the verdict


@pytest.mark.live
def test_check_from_the_archive_gives_the_live_ids_and_statuses(planted):
    # against the verdict the archive holds, from the same collection: a second live run may judge differently on a
    # GPU server (a speed measured again, a temperature read again)
    written = json.loads(dict((name.split("/", 1)[1], data) for name, data in archive_bytes(planted["archive"]))["report.json"])
    proc = gpudoctor_cmd("check", "--from", str(planted["archive"]), "--format", "json", env=planted["env"])
    rejudged = json.loads(proc.stdout)
    jsonschema.validate(rejudged, SCHEMA)
    pairs = lambda doc: [(r["id"], r["status"]) for r in doc["results"]]  # noqa: E731
    assert pairs(rejudged) == pairs(written) and [i for i, _ in pairs(rejudged)] == [i for i, _ in pairs(planted["live"])]
    assert proc.returncode == written["exit_code"]
    assert rejudged["source"]["gpudoctor_version"] and rejudged["source"]["host"] == written["host"] == socket.gethostname()


@pytest.mark.live
def test_check_from_names_the_original_host_time_and_version(planted):
    proc = gpudoctor_cmd("check", "--from", str(planted["archive"]), env=planted["env"])
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"Report from {socket.gethostname()}, collected 20") and "re-judged by gpudoctor" in first


@pytest.mark.live
def test_check_from_a_bare_report_json_judges_its_facts(planted, tmp_path):
    document = tmp_path / "node.json"
    document.write_text(json.dumps(planted["live"]))
    proc = gpudoctor_cmd("check", "--from", str(document), "--format", "json")
    assert [(r["id"], r["status"]) for r in json.loads(proc.stdout)["results"]] == \
           [(r["id"], r["status"]) for r in planted["live"]["results"]]


@pytest.mark.live
def test_diff_of_a_report_with_itself_agrees(planted):
    proc = gpudoctor_cmd("diff", str(planted["archive"]), str(planted["archive"]))
    assert proc.returncode == 0 and "The reports agree" in proc.stdout


def h200_report(path: Path, anonymize: bool = False) -> Path:
    """A report of the H200 server, made from its capture the way `gpudoctor report` makes one live."""
    return recorded_report(fixture("h200-2026-11-26"), path, "h200-node", "2026-11-26T06:00:00+00:00", anonymize)


def test_diff_with_a_working_h200_names_the_differences(tmp_path):
    # this development machine (no GPU, no driver: driver.loaded skips) against the H200, both as recorded
    here = recorded_report(this_machine(), tmp_path / "here.tar.gz", "vm", "2026-11-27T06:00:00+00:00")
    h200 = h200_report(tmp_path / "h200.tar.gz")
    proc = gpudoctor_cmd("diff", str(here), str(h200))
    assert proc.returncode == 1
    assert "driver.version" in proc.stdout and "(none) → 580.159.04" in proc.stdout
    assert "driver.loaded" in proc.stdout and "skip → pass" in proc.stdout
    as_json = json.loads(gpudoctor_cmd("diff", str(here), str(h200), "--format", "json").stdout)
    assert as_json["same"] is False and (as_json["a"]["host"], as_json["b"]["host"]) == ("vm", "h200-node")
    assert {"id": "driver.loaded", "a": "skip", "b": "pass"} in as_json["results"]
    assert {"id": "gpu.present", "a": "fail", "b": "skip"} in as_json["results"]
    assert any(v["path"] == "nvml.driver_version" and v["b"] == "580.159.04" for v in as_json["versions"])


def test_an_h200_report_rejudged_matches_its_replay(tmp_path):
    h200 = h200_report(tmp_path / "h200.tar.gz")
    rejudged = json.loads(gpudoctor_cmd("check", "--from", str(h200), "--format", "json").stdout)
    replay, _, _ = run_checks(load_plugins(external=False), RecordedHost(fixture("h200-2026-11-26")))
    assert [(r["id"], r["status"]) for r in rejudged["results"]] == [(r.id, r.status.value) for r in replay]


def test_anonymized_report_hides_identities_consistently_and_still_judges_the_same(tmp_path):
    plain = h200_report(tmp_path / "plain.tar.gz")
    anonymous = h200_report(tmp_path / "anon.tar.gz", anonymize=True)
    data = b"".join(d for _, d in archive_bytes(anonymous))
    for identity in (b"33497751-baba-a7bf-3038-8645175b5bde", b"1653924185446", b"h200-node"):
        assert identity not in data
    assert data.count(b"GPU-00000000-0000-0000-0000-000000000001") >= 3  # NVML, nvidia-smi XML, facts: one placeholder
    proc = gpudoctor_cmd("diff", str(plain), str(anonymous), "--format", "json")
    assert json.loads(proc.stdout)["results"] == []  # the same statuses after anonymizing
    members = {name.split("/", 1)[1]: data for name, data in archive_bytes(anonymous)}
    for name in ("report.json", "evidence.json", "report.md"):  # one GPU, one placeholder, in every file
        assert b"GPU-00000000-0000-0000-0000-000000000001" in members[name] and b"-000000000002" not in members[name], name
        assert b"serial-2" not in members[name], name


@pytest.mark.live
def test_anonymize_live_replaces_host_user_ip_and_mac(planted, tmp_path):
    out = tmp_path / "anon.tar.gz"
    proc = gpudoctor_cmd("report", "--anonymize", "-o", str(out), "--no-smoke", env={**planted["env"], "USER": "mallory-q"})
    assert proc.returncode == 0, proc.stderr
    data = b"".join(name.encode() + d for name, d in archive_bytes(out))
    for identity in (b"gpu-node-17", b"mallory-q", b"10.20.30.40", b"aa:bb:cc:dd:ee:01", b"33497751-baba"):
        assert identity not in data, identity
    assert b"192.0.2.1" in data and b"02:00:00:00:00:01" in data
    for kind in ("host name", "user name", "ip address", "mac address", "gpu uuid"):
        assert kind in proc.stdout


# -- bad input: one line, exit 2 ------------------------------------------------------------------
def tar_with(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"{}" if info.isfile() else None
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, kind=tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("make, words", [
    (lambda p: (p.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(400)), p)[1], "corrupt or truncated archive"),
    (lambda p: (p.write_bytes(h200_report(p.with_name("whole.tar.gz")).read_bytes()[:9000]), p)[1], "corrupt or truncated archive"),
    (lambda p: (p.write_text(json.dumps({"schema_version": 99, "results": [], "facts": {}})), p)[1], "unknown schema version 99"),
    (lambda p: (p.write_text("not json at all"), p)[1], "not a gpudoctor report"),
    (lambda p: (p.write_text("[1, 2]"), p)[1], "not a gpudoctor report"),
    (lambda p: (p.write_text(json.dumps({"schema_version": 1, "results": [1], "facts": {}})), p)[1], "without an id or status"),
    (lambda p: tar_with(p, member("/etc/cron.d/evil")), "would land outside the report"),
    (lambda p: tar_with(p, member("report/../../evil")), "would land outside the report"),
    (lambda p: tar_with(p, member("report/link", tarfile.SYMTYPE, "/etc/passwd")), "link or device"),
    (lambda p: tar_with(p, member("report/other.txt")), "no report.json"),
])
def test_bad_reports_are_refused_in_one_line(tmp_path, make, words):
    path = make(tmp_path / "report.tar.gz")
    one_line_error(gpudoctor_cmd("check", "--from", str(path)), words)
    one_line_error(gpudoctor_cmd("diff", str(path), str(path)), words)


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory) -> bytes:
    return h200_report(tmp_path_factory.mktemp("small") / "h200.tar.gz").read_bytes()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_damage_to_an_archive_is_refused_or_read_never_a_crash(small_archive, tmp_path_factory, data):
    damaged = bytearray(small_archive)
    cut = data.draw(st.integers(0, len(damaged)))
    for _ in range(data.draw(st.integers(0, 4))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("damaged") / "report.tar.gz"
    path.write_bytes(bytes(damaged[:cut]) if data.draw(st.booleans()) else bytes(damaged))
    try:
        loaded = load_report(str(path))
    except ReportError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(loaded.document["results"], list)


def test_a_report_far_larger_than_any_is_refused(tmp_path, monkeypatch):
    path = tar_with(tmp_path / "big.tar.gz", member("r/report.json"), member("r/evidence.json"))
    monkeypatch.setattr(archive_module, "MEMBER_CAP", 1)
    with pytest.raises(ReportError, match="far larger than a report can be"):
        load_report(str(path))
    monkeypatch.setattr(archive_module, "ARCHIVE_CAP", 10)
    with pytest.raises(ReportError, match="far larger than a report can be"):
        load_report(str(path))


def test_missing_report_and_unwritable_archive_are_one_line(tmp_path):
    one_line_error(gpudoctor_cmd("check", "--from", str(tmp_path / "nope.tar.gz")), "no such report file")
    one_line_error(gpudoctor_cmd("report", "-o", str(tmp_path / "missing" / "r.tar.gz")), "cannot write")
    one_line_error(gpudoctor_cmd("check", "--from", str(tmp_path), "--python", sys.executable), "cannot be used with --from")


# -- the redactor on its own ----------------------------------------------------------------------
SEPARATORS = st.sampled_from([" ", "\n", "\t", "\"", "'", "=", ": ", ",", ";", "(", ")", "[", "]", "<", ">", "/"])
ALNUM = string.ascii_letters + string.digits
SECRET_SHAPES = st.one_of(
    st.text(ALNUM, min_size=34, max_size=40).map(lambda s: "hf_" + s),
    st.text(ALNUM, min_size=36, max_size=40).map(lambda s: "ghp_" + s),
    st.text(ALNUM + "_", min_size=30, max_size=60).map(lambda s: "github_pat_" + s),
    st.text(ALNUM + "-_", min_size=20, max_size=30).map(lambda s: "glpat-" + s),
    st.text(ALNUM + "-", min_size=10, max_size=40).map(lambda s: "xoxb-" + s),
    st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    st.text(ALNUM, min_size=40, max_size=52).map(lambda s: "sk-" + s),
    st.tuples(*[st.text(ALNUM + "-_", min_size=10, max_size=30)] * 3).map(lambda t: f"eyJ{t[0]}.eyJ{t[1]}.{t[2]}"),
)
NOISE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(NOISE, SEPARATORS, SECRET_SHAPES, SEPARATORS, NOISE)
@example("", " ", "xoxb-000000000-", " ", "")  # found by this test in CI: a token that ends in '-' had no word boundary after it
def test_a_token_anywhere_in_text_is_removed(before, left, secret, right, after):
    text = before + left + secret + right + after
    assert secret not in Redactor().text(text)


@settings(max_examples=200, deadline=None)
@given(st.text(ALNUM + "._-", min_size=1, max_size=12), st.text(ALNUM + "!$%*+-_~", min_size=6, max_size=24), NOISE)
def test_url_credentials_are_removed_whatever_they_hold(user, password, noise):
    scrubbed = Redactor().text(f"{noise} pip install --index-url https://{user}:{password}@pypi.example/simple {noise}")
    assert f"{user}:{password}@" not in scrubbed and "@pypi.example/simple" in scrubbed


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[A-Z_]{0,6}(TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH|COOKIE|SESSION)[A-Z_]{0,6}", fullmatch=True),
       st.text(ALNUM + "/+=-", min_size=1, max_size=40))
def test_secret_named_variables_lose_their_values_in_text_and_json(name, value):
    redactor = Redactor()
    assert redactor.text(f"PATH=/usr/bin\n{name}={value}\n") == f"PATH=/usr/bin\n{name}=[REDACTED secret environment variable]\n"
    assert redactor.value({"env": {name: value}})["env"][name].startswith("[REDACTED")


def test_anonymizing_is_consistent_and_keeps_shapes():
    redactor = Redactor(anonymize=True, hostnames=["dgx-a100-03"], users=["alice", "root"])
    text = ("dgx-a100-03 alice /home/alice/run.sh 10.1.2.3 10.1.2.3 10.1.2.4 aa:bb:cc:dd:ee:ff "
            "GPU-33497751-baba-a7bf-3038-8645175b5bde <serial>1653924185446</serial> /root/x")
    assert redactor.text(text) == ("host-1 user-1 /home/user-1/run.sh 192.0.2.1 192.0.2.1 192.0.2.2 02:00:00:00:00:01 "
                                   "GPU-00000000-0000-0000-0000-000000000001 <serial>serial-1</serial> /root/x")
    assert redactor.value({"serial": "1653924185446", "cudnn_version": "9.1.0.70"}) == {"serial": "serial-1", "cudnn_version": "9.1.0.70"}
    assert redactor.summary() == {"gpu serial": 1, "gpu uuid": 1, "host name": 1, "ip address": 2, "mac address": 1, "user name": 1}


def test_a_key_block_cut_short_goes_to_the_end():
    scrubbed = Redactor().text("log\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx0cut")
    assert scrubbed == "log\n[REDACTED private key]"


def test_a_verdict_that_redaction_changes_is_named(tmp_path):
    host = RecordedHost(fixture("h200-2026-11-26"))
    plugins = load_plugins(external=False)
    results, facts, timings = run_checks(plugins, host)
    flipped = [replace(r, status=Status.FAIL) if r.id == "gpu.ecc" else r for r in results]
    run = Run(flipped, facts, "2026-11-26T06:00:00+00:00", 1.2, "h200-node", timings)
    written = write_report(run, host, str(tmp_path / "r.tar.gz"), False, {}, 5.0, plugins, Selection())
    assert written.changed == ["gpu.ecc"]


def test_redacting_twice_changes_and_counts_nothing_more():
    redactor = Redactor(anonymize=True, hostnames=["dgx-a100-03"])
    once = redactor.text("HF_TOKEN=hf_QmVyeVNlY3JldEh1Z2dpbmdGYWNlVG9rZW4x\ndgx-a100-03 10.1.2.3 aa:bb:cc:dd:ee:ff "
                         "GPU-33497751-baba-a7bf-3038-8645175b5bde Serial Number : 1653924185446")
    counts = redactor.summary()
    assert redactor.text(once) == once and redactor.value({"serial": "serial-1", "API_KEY": "[REDACTED secret environment variable]"}) == \
        {"serial": "serial-1", "API_KEY": "[REDACTED secret environment variable]"}
    assert redactor.summary() == counts


def test_without_anonymize_identities_stay():
    text = "dgx-a100-03 10.1.2.3 GPU-33497751-baba-a7bf-3038-8645175b5bde"
    assert Redactor(hostnames=["dgx-a100-03"]).text(text) == text
