"""Support reports: one .tar.gz with the verdict, the facts and the raw evidence, secrets removed.

`write_report` turns a finished run and its host's evidence into the archive, with the
context support always asks for; every byte passes through the allow-list, one `Redactor` and the
detector's pass. The archive's format (writing, reading back, validating) is gpudoctor.archive.
"""

from __future__ import annotations

import io
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from gpudoctor import formats, render
from gpudoctor.archive import write_tar
from gpudoctor.allowlist import Collection
from gpudoctor.detect import Scanner, json_lines
from gpudoctor.evidence import Evidence
from gpudoctor.host import NOT_FOUND, TIMED_OUT, RecordedHost
from gpudoctor.models import Run
from gpudoctor.redact import REDACTED, Redactor
from gpudoctor.runner import run_checks

CUDA_LIBRARY = re.compile(r"cuda|cudnn|cublas|cufft|curand|cusolver|cusparse|nvrtc|nvjitlink|nccl|libnv|nvidia|nvinfer", re.I)
NVIDIA_KERNEL_LINE = re.compile(r"NVRM|Xid|nvidia|nvlink|NVSwitch|nv_peer|fabric", re.I)
PASSES = 3  # members built again after a detector's finding; the second build normally flags nothing new
# Identities in the allow-listed environment that --anonymize replaces, by kind (Slurm, PBS, LSF, SGE,
# Kubernetes' downward API, Apptainer/Singularity).
IDENTITY_ENV = {
    "host list": ("SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_STEP_NODELIST", "LSB_HOSTS", "LSB_MCPU_HOSTS"),
    "container name": ("CONTAINER_NAME", "POD_NAME", "POD_NAMESPACE", "SINGULARITY_NAME", "APPTAINER_NAME"),
    "job name": ("SLURM_JOB_NAME", "SLURM_JOB_ACCOUNT", "SLURM_CLUSTER_NAME", "PBS_JOBNAME", "LSB_JOBNAME"),
    "host name": ("SLURMD_NODENAME", "SLURM_SUBMIT_HOST", "PBS_O_HOST", "SGE_O_HOST", "LSB_SUB_HOST"),
    "user name": ("SLURM_JOB_USER", "PBS_O_LOGNAME", "SGE_O_LOGNAME", "LSFUSER"),
}


@dataclass(frozen=True)
class Context:
    """One thing support always asks for: a command (its lines filtered), tried in order."""

    name: str
    commands: tuple[tuple[str, ...], ...]
    keep: re.Pattern | None = None


@dataclass
class Written:
    path: str
    size: int
    counts: dict[str, int]
    missing: list[str]
    redacted: dict[str, int] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)  # checks whose verdict redaction changed
    left_out: dict[str, int] = field(default_factory=dict)  # what the allow-list kept out, by class


def context_items(facts: dict, environ: dict) -> list[Context]:
    """The context for this machine: its interpreters' pip lists, its conda, its tools."""
    items = [
        Context("nvidia-smi-q.txt", (("nvidia-smi", "-q"),)),
        Context("nvidia-smi-topo.txt", (("nvidia-smi", "topo", "-m"),)),
        Context("kernel-log-nvidia.txt", (("dmesg", "-T"), ("journalctl", "-k", "-b", "--no-pager", "-q")), NVIDIA_KERNEL_LINE),
        Context("ldconfig-cuda.txt", (("ldconfig", "-p"), ("/sbin/ldconfig", "-p")), CUDA_LIBRARY),
        Context("lspci-nvidia.txt", (("lspci", "-vnn", "-d", "10de:"),)),
        Context("uname.txt", (("uname", "-a"),)),
        Context("disks.txt", (("df", "-h"),)),
        Context("memory.txt", (("free", "-m"),)),
    ]
    for index, interpreter in enumerate(((facts.get("python_envs") or {}).get("interpreters") or []), 1):
        items.append(Context(f"pip-list-{index}.txt", ((interpreter["path"], "-m", "pip", "list"),)))
    conda = environ.get("CONDA_EXE") or "conda"
    prefix = environ.get("CONDA_PREFIX")
    items.append(Context("conda-list.txt", ((conda, "list", "-p", prefix) if prefix else (conda, "list"),)))
    return items


def gather(host, item: Context, timeout: float) -> tuple[str, bool]:
    """The item's text, headed by the command that made it; False when no command could run."""
    notes = []
    for argv in item.commands:
        result = host.run(list(argv), timeout)
        if result.error == NOT_FOUND:
            notes.append(f"# {argv[0]}: not installed here")
            continue
        text = result.stdout if result.ok else result.output
        if item.keep is not None and result.ok:  # a failure's message is kept whole: it says why
            text = "\n".join(line for line in text.splitlines() if item.keep.search(line))
        head = [f"$ {' '.join(argv)}"]
        if result.error:
            head.append(f"# {result.error}" + (f" after {result.duration_s:.0f} s" if result.error == TIMED_OUT else ""))
        elif result.rc:
            head.append(f"# exit status {result.rc}")
        if result.ok or argv == item.commands[-1]:
            return "\n".join(notes + head + [text]) + "\n", True
        notes += head + [text.strip()[:2000]]
    return "\n".join(notes) + "\n", False


def write_report(run, host, path: str, anonymize: bool, environ: dict, timeout: float, plugins, selection,
                 progress=lambda message: None) -> Written:
    """Gather the context, keep what the allow-list keeps, redact, scan, and write the archive privately to `path`.

    The facts and verdict in the archive are re-derived from the redacted evidence, so no fact
    (an error message cut short mid-token, say) can carry what redaction removed, and
    `check --from` the archive agrees with it by construction. The detector's pass runs over
    every member; what it flags is redacted everywhere and the members are built again, until
    it flags nothing new.
    """
    collection = Collection()
    raw_evidence = collection.evidence(host.evidence.to_dict())  # before the context, which is archived on its own
    scanner = Scanner()
    progress("gathering what support asks for…")
    items = context_items(run.facts, environ)
    with ThreadPoolExecutor(max_workers=8) as pool:
        early = pool.submit(scanner.scan, json_lines(raw_evidence))  # while the context's commands run
        gathered = list(pool.map(lambda item: gather(host, item, timeout), items))
        early.result()
    context = {f"context/{item.name}": collection.process_names(text) for item, (text, _) in zip(items, gathered)}
    os_release = host.read("/etc/os-release")
    context["context/os-release.txt"] = os_release.text or f"# /etc/os-release: {os_release.error}\n"
    context["context/environment.txt"] = collection.environment(environ)
    progress("redacting, scanning and writing the archive…")
    identities = _identities(run, host, environ)
    members, results, redactor = _scanned(scanner, lambda found: _members(
        run, raw_evidence, context, Redactor(anonymize, names=identities, found=found), plugins, selection, timeout))
    size = write_tar(path, archive_stem(run.host, anonymize), members)
    missing = [item.name for item, (_, ran) in zip(items, gathered) if not ran]
    files = sum(1 for f in (raw_evidence.get("files") or {}).values() if f.get("text") is not None)
    counts = {"commands": len(raw_evidence.get("commands") or {}), "files": files,
              "probes": len(raw_evidence.get("probes") or {}), "context": len(items) + 2}
    live = {r.id: r.status for r in run.results}
    changed = [r.id for r in results if live.get(r.id) != r.status]
    return Written(path, size, counts, missing, redactor.summary(), changed, dict(sorted(collection.left_out.items())))


def _scanned(scanner: Scanner, build) -> tuple[dict, list, Redactor]:
    """`build(found)` again while the detector flags something new in its members; the last build's members."""
    found = dict(scanner.found)
    for _ in range(PASSES):
        members, results, redactor = build(found)
        flagged = scanner.find(members)
        if flagged.keys() <= found.keys():
            return members, results, redactor
        found = flagged
    # redaction kept making new findings (never seen): cut them out where they stand
    return {name: _cut(data, flagged) for name, data in members.items()}, results, redactor


def _members(run, raw_evidence: dict, context: dict[str, str], redactor: Redactor, plugins, selection, timeout):
    """Every member of the archive, through `redactor`, with facts and verdict judged from the redacted evidence."""
    redacted_run, evidence = _rejudged(run, raw_evidence, redactor, timeout, plugins, selection)
    code = redacted_run.exit_code()
    # Derived from redacted evidence already; this pass guards anything a check adds from elsewhere, and
    # the redactor is idempotent, so it never re-maps a placeholder or re-counts a secret.
    document = redactor.value(json.loads(render.to_json(redacted_run, code)))
    members = {"report.json": _json(document), "evidence.json": _json(evidence)}
    members["report.md"] = formats.report_markdown(document, redactor.text(_plain_verdict(redacted_run, code))).encode()
    members.update({name: redactor.text(text).encode() for name, text in context.items()})
    members.update(_raw(evidence))
    return members, redacted_run.results, redactor


def _cut(data: bytes, flagged: dict[str, str]) -> bytes:
    for value, kind in sorted(flagged.items(), key=lambda item: -len(item[0])):
        data = data.replace(value.encode(), f"{REDACTED}{kind}]".encode())
    return data


def _rejudged(run, raw_evidence: dict, redactor: Redactor, timeout: float, plugins, selection) -> tuple[Run, dict]:
    """The run judged again from its redacted evidence, and that evidence."""
    evidence = redactor.value(raw_evidence)
    results, facts, _ = run_checks(plugins, RecordedHost(Evidence(evidence), timeout), selection, timeout)
    return Run(results, facts, run.started_at, run.duration_s, redactor.text(run.host), run.collector_s), evidence


def anonymized(run, host, environ: dict, timeout: float, plugins, selection) -> Run:
    """A live run as an anonymized report would hold it (`check --anonymize`): judged again from
    its redacted, anonymized evidence, then every result and fact passed through the redactor once
    more, as report.json is, so that any output format carries nothing it removed."""
    redactor = Redactor(True, names=_identities(run, host, environ))
    clean, _ = _rejudged(run, host.evidence.to_dict(), redactor, timeout, plugins, selection)
    results = [replace(r, title=redactor.text(r.title), summary=redactor.text(r.summary), fix=redactor.text(r.fix),
                       details=tuple(redactor.text(line) for line in r.details)) for r in clean.results]
    return Run(results, redactor.value(clean.facts), clean.started_at, clean.duration_s, clean.host, clean.collector_s)


def archive_stem(host: str, anonymize: bool) -> str:
    """gpudoctor-report-HOST-TIME: the archive's default name and its top folder."""
    return f"gpudoctor-report-{'anonymized' if anonymize else _safe(host.split('.')[0])}-{time.strftime('%Y%m%dT%H%M%S')}"


def _identities(run, host, environ: dict) -> dict[str, set[str]]:
    """What --anonymize replaces by name: hosts, users, host lists, containers and pods, jobs."""
    named = {kind: {environ.get(name, "") for name in names} for kind, names in IDENTITY_ENV.items()}
    named["host name"] |= _hostnames(run, environ)
    named["user name"] |= _users(host, environ)
    return named


def _hostnames(run, environ: dict) -> set[str]:
    import socket

    names = {run.host, socket.gethostname(), environ.get("HOSTNAME", "")}
    return names | {n.split(".")[0] for n in names if n}


def _users(host, environ: dict) -> set[str]:
    names = {(host.user() or {}).get("name", ""), environ.get("USER", ""), environ.get("LOGNAME", ""), environ.get("SUDO_USER", "")}
    home = environ.get("HOME", "")
    if home.startswith("/home/"):
        names.add(home.split("/")[2])
    return names


def _raw(evidence: dict) -> dict[str, bytes]:
    """The evidence as files a person can open: each command's output, each file, each probe."""
    members = {}
    for key, result in (evidence.get("commands") or {}).items():
        members[f"commands/{_safe(key)}.txt"] = _command_text(key, result).encode()
    for key, result in (evidence.get("probes") or {}).items():
        members[f"probes/{_safe(key)}.txt"] = _command_text(key, result).encode()
    for file, read in (evidence.get("files") or {}).items():
        if read.get("text") is not None:
            members["files/" + _safe_path(file)] = read["text"].encode()
    if evidence.get("nvml"):
        members["nvml.json"] = _json(evidence["nvml"])
    return members


def _command_text(key: str, result: dict) -> str:
    status = result.get("error") or f"exit status {result.get('rc')}"
    return f"$ {key}\n# {status}, {result.get('duration_s', 0):.2f} s\n{result.get('stdout', '')}" + (
        f"\n# stderr\n{result['stderr']}" if result.get("stderr") else "")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:120] or "unnamed"


def _safe_path(path: str) -> str:
    return "/".join(_safe(part) for part in path.split("/") if part not in ("", ".", ".."))


def _json(data) -> bytes:
    return (json.dumps(data, indent=2, default=str) + "\n").encode()


def _plain_verdict(run, exit_code: int) -> str:
    stream = io.StringIO()
    render.write_text(render.verdict_lines(run, exit_code, verbose=True), stream, colour=False)
    return stream.getvalue()
