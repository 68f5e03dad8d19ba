"""The system layer: the only code that touches the machine, and its recorded twin.

`LiveHost` runs commands (no shell, C locale, capped output, in their own process group,
killed on timeout), reads files, stats paths and asks NVML through a worker subprocess
that can be abandoned when a lost GPU makes NVML hang. Everything it learns is written
into `Evidence`. `RecordedHost` answers the same questions from `Evidence` alone, so
collectors and checks run unchanged on a capture or a report from another machine.
Where evidence lacks an answer it says "not recorded", which is kept apart from
"absent": a missing file on the machine is a fact, a missing record is not.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import stat as st
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace

from gpudoctor.evidence import Evidence, command_key
from gpudoctor.gputurn import Turn

NOT_RECORDED = "not recorded"
ABSENT = "absent"
DENIED = "permission denied"
TIMED_OUT = "timed out"
NOT_FOUND = "command not found"
INTERRUPTED = "interrupted"

PROBE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probes", "framework_probe.py")
PROBE_MARK = "GPUDOCTOR-PROBE "
OUTPUT_CAP = 8 << 20
FILE_CAP = 4 << 20
READ_CHUNK = 64 << 10

# Only these variables are read and recorded: the rest of the environment may hold secrets.
RELEVANT_ENV = (
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NVIDIA_DRIVER_CAPABILITIES",
    "LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH", "HOME", "TMPDIR", "USER", "container",
    "NVIDIA_REQUIRE_CUDA", "NVIDIA_DISABLE_REQUIRES", "KUBERNETES_SERVICE_HOST", "WSL_DISTRO_NAME", "WSL_INTEROP", "CONDA_PREFIX", "VIRTUAL_ENV",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
    "CUDA_MODULE_LOADING", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_HIP_ALLOC_CONF", "PYTORCH_ALLOC_CONF",
    "CUDA_MPS_PIPE_DIRECTORY",
    "SLURM_JOB_ID", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE", "SLURM_GPUS", "SLURM_JOB_PARTITION", "PBS_JOBID", "LSB_JOBID",
)


@dataclass(frozen=True)
class CommandResult:
    """What one command did; `error` says why there is no exit code, if there is none."""

    argv: tuple[str, ...]
    rc: int | None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    error: str | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.error is None

    @property
    def output(self) -> str:
        return (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).strip()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["argv"] = list(self.argv)
        return data


@dataclass(frozen=True)
class FileRead:
    """A file's text, or why it could not be had (`absent`, `permission denied`, ...)."""

    path: str
    text: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.text is not None


@dataclass
class _Asked:
    """One question of this run (a probe's, NVML's): its answer once `done` is set."""

    done: threading.Event = field(default_factory=threading.Event)
    answer: dict = field(default_factory=lambda: {"failure": "not run", "message": "the asking thread failed", "stderr_tail": []})


class NotRecorded(LookupError):
    """Replayed evidence has no answer to this question (unlike "absent", which is an answer)."""


class LiveHost:
    """This machine, as seen by an ordinary process; records all it learns."""

    def __init__(self, timeout: float = 10.0, environ: dict[str, str] | None = None, options: dict | None = None):
        self.timeout = timeout
        self.options = dict(options or {})
        self.evidence = Evidence()
        self.evidence.put("options", dict(self.options))
        source = os.environ if environ is None else environ
        self.environ = {k: source[k] for k in RELEVANT_ENV if k in source}
        self.evidence.put("env", dict(self.environ))
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Condition()
        self._closed = False
        self._spawning = 0
        self._workers: dict = {}  # (python, framework) -> ProbeWorker kept for its next question
        self._turns: dict = {}  # (python, framework) -> the lock that makes its questions take turns
        self._answered: dict = {}  # ("probe", python, question) or ("nvml",) -> its answer: each is asked once per run
        self.gpu_turn = Turn()  # gpudoctor's own processes that work on the GPUs take turns (gpudoctor/gputurn.py)

    # -- commands -------------------------------------------------------------------
    def run(self, argv: list[str] | tuple[str, ...], timeout: float | None = None) -> CommandResult:
        """Run argv without a shell; never raises, never outlives `timeout` seconds."""
        result = self._execute(tuple(argv), timeout)
        self.evidence.record("commands", command_key(argv), result.to_dict())
        return result

    def _execute(self, argv: tuple[str, ...], timeout: float | None) -> CommandResult:
        limit = self.timeout if timeout is None else timeout
        start = time.monotonic()
        proc = self._start(argv)
        if isinstance(proc, str):
            return CommandResult(argv, None, error=proc)
        try:
            out, err = proc.communicate(timeout=limit)
            error = None
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            error = TIMED_OUT
        finally:
            with self._lock:
                self._children.discard(proc)
        truncated = len(out) > OUTPUT_CAP or len(err) > OUTPUT_CAP
        return CommandResult(
            argv, None if error else proc.returncode,
            out[:OUTPUT_CAP].decode(errors="replace"), err[:OUTPUT_CAP].decode(errors="replace"),
            round(time.monotonic() - start, 4), error, truncated,
        )

    def _start(self, argv: tuple[str, ...], stdin=subprocess.DEVNULL) -> subprocess.Popen | str:
        """The started process, or why it could not start (as CommandResult.error says it)."""
        try:
            proc = self._spawn(argv, stdin)
        except FileNotFoundError:
            return NOT_FOUND
        except PermissionError:  # also execvp's answer for a command on no PATH folder when one could not be searched
            return DENIED if _on_path(argv[0]) else NOT_FOUND
        except OSError as exc:
            return str(exc)
        return INTERRUPTED if proc is None else proc

    def _spawn(self, argv: tuple[str, ...], stdin=subprocess.DEVNULL) -> subprocess.Popen | None:
        """Start argv in its own session, registered for killing; None once the host is closed."""
        with self._lock:
            if self._closed:
                return None
            self._spawning += 1
        proc = None
        try:
            proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=dict(os.environ, LC_ALL="C", LANG="C"), start_new_session=True)
        finally:
            with self._lock:
                self._spawning -= 1
                if proc is not None:
                    self._children.add(proc)
                self._lock.notify_all()
        return proc

    def kill_children(self) -> None:
        """Kill every command still running (abandoning a hung collector)."""
        with self._lock:
            children = list(self._children)
        for proc in children:
            _kill_group(proc)

    def close(self) -> None:
        """Kill every command still running and refuse new ones (Ctrl-C, or the run is over).

        Waits for commands being started right now: their threads are daemons, frozen once
        gpudoctor exits, so a child they start after this would otherwise outlive it.
        """
        with self._lock:
            self._closed = True
            self._lock.wait_for(lambda: self._spawning == 0, timeout=2.0)
        self.kill_children()
        with self._lock:
            kept = list(self._workers.values())
        for worker in kept:  # kept for a question that never came: reaped, not left as zombies
            try:
                worker.proc.wait(1.0)
            except subprocess.TimeoutExpired:
                pass

    # -- files ----------------------------------------------------------------------
    def read(self, path: str, limit: int = FILE_CAP) -> FileRead:
        """A file's text, up to `limit` bytes, read in small chunks: a sysctl file asked for
        megabytes at once answers ENOMEM to ordinary users."""
        try:
            with open(path, "rb") as handle:
                chunks, size = [], 0
                while size < limit:
                    chunk = handle.read(min(READ_CHUNK, limit - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                result = FileRead(path, b"".join(chunks).decode(errors="replace"))
        except FileNotFoundError:
            result = FileRead(path, error=ABSENT)
        except PermissionError:
            result = FileRead(path, error=DENIED)
        except OSError as exc:
            result = FileRead(path, error=exc.strerror or str(exc))
        self.evidence.record("files", path, {"text": result.text} if result.ok else {"error": result.error})
        return result

    def listdir(self, path: str) -> list[str] | None:
        """Sorted entry names, or None where the folder is absent or unreadable."""
        try:
            entries: list[str] | None = sorted(os.listdir(path))
        except OSError:
            entries = None
        self.evidence.record("listdirs", path, entries)
        return entries

    def stat(self, path: str) -> dict | None:
        """Mode, owner, device numbers and this user's access to `path`; None if absent."""
        try:
            st = os.stat(path)
        except OSError:
            info = None
        else:
            info = {
                "mode": oct(st.st_mode & 0o7777), "kind": _kind(st.st_mode),
                "uid": st.st_uid, "gid": st.st_gid, "group": _group_name(st.st_gid),
                "major": os.major(st.st_rdev) if st.st_rdev else None,
                "minor": os.minor(st.st_rdev) if st.st_rdev else None,
                "readable": os.access(path, os.R_OK), "writable": os.access(path, os.W_OK),
            }
        self.evidence.record("stats", path, info)
        return info

    def disk_usage(self, path: str) -> dict | None:
        """Total, used and free bytes of the file system holding `path`."""
        try:
            st = os.statvfs(path)
        except OSError:
            info = None
        else:
            info = {"total": st.f_blocks * st.f_frsize, "free": st.f_bavail * st.f_frsize}
        self.evidence.record("disk_usage", path, info)
        return info

    # -- the machine and the user -----------------------------------------------------
    def machine(self) -> dict:
        """Today's date, CPU and memory sizes (psutil): the date makes lifecycle checks replayable."""
        import psutil

        memory = psutil.virtual_memory()
        info = {
            "date": time.strftime("%Y-%m-%d"),
            "cpu_logical": psutil.cpu_count(logical=True),
            "cpu_physical": psutil.cpu_count(logical=False),
            "memory_total": memory.total,
            "memory_available": memory.available,
        }
        self.evidence.put("machine", info)
        return info

    def user(self) -> dict:
        """Who gpudoctor runs as, and in which groups (device access depends on them)."""
        uid = os.getuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        info = {"uid": uid, "name": name, "groups": sorted({_group_name(g) for g in os.getgroups()})}
        self.evidence.put("user", info)
        return info

    def realpath(self, path: str) -> str:
        """The file a path (a library's soname link) finally names."""
        real = os.path.realpath(path)
        self.evidence.record("realpaths", path, real)
        return real

    def which(self, name: str) -> str | None:
        """Where `name` is found on this process's PATH."""
        path = shutil.which(name)
        self.evidence.record("which", name, path)
        return path

    # -- probes in other interpreters -------------------------------------------------
    def probe(self, python: str, what: str, timeout: float | None = None, keep=False) -> dict:
        """Ask gpudoctor's probe (`env`, `torch`, `smoke torch cuda 30`) inside `python`; its facts, or why there are none.

        Questions about one framework in one interpreter go to one worker process, one at a time, and each is
        answered once per run: a second asker waits for the first one's answer, never behind other questions.
        `keep` (or keep(), asked once the answer is in) leaves the worker running for the next question (the smoke
        test after the facts), so the framework is imported once; a worker whose framework did not import is never
        kept (a half-done import poisons the next). Otherwise it ends after answering, and frees what it held, and
        how it ended is part of the record. A question left no time (`timeout` <= 0) is not asked."""
        words = tuple(what.split())
        key = (python, words[1] if words[0] == "smoke" and len(words) > 1 else words[0])
        limit = self.timeout if timeout is None else timeout

        def ask() -> dict:
            with self._lock:
                turn = self._turns.setdefault(key, threading.Lock())
            with turn:
                result, answer = self._ask(python, key, words, limit, keep)
            self.evidence.record("probes", f"{python} {what}", result.to_dict())
            return answer
        return self.once(("probe", python, what), ask)

    def once(self, key: tuple, find):
        """find()'s answer, found once per run: a second asker waits for the first one's."""
        with self._lock:
            asked = self._answered.get(key)
            first = asked is None
            if first:
                asked = self._answered[key] = _Asked()
        if not first:
            asked.done.wait()
            return asked.answer
        try:
            asked.answer = find()
        finally:
            asked.done.set()
        return asked.answer

    def _ask(self, python: str, key: tuple, words: tuple, timeout: float, keep) -> tuple[CommandResult, dict]:
        """The question's run as recorded, and its answer."""
        if timeout <= 0:
            worker = "not asked: its share of the run's limit was spent waiting"
        else:
            with self._lock:
                worker = self._workers.pop(key, None)
            if worker is not None and not worker.alive:  # killed since (an abandoned run): never blame it on the probe
                self._end_worker(worker)
                worker = None
            worker = worker or self._start_worker(python)
        if isinstance(worker, str):  # not asked, or it could not be started
            result = CommandResult((python, PROBE_SCRIPT, *words), None, error=worker)
            return result, probe_answer(result)
        result = worker.ask(words, timeout)
        answer = probe_answer(result)
        if worker.alive and not answer.get("failure") and not answer.get("failed") and (keep() if callable(keep) else keep):
            with self._lock:
                self._workers[key] = worker
            return result, answer
        rc, stderr = self._end_worker(worker)  # as a one-off command would: how it exited, and what it said on the way
        if not stderr and (rc is None or result.rc != 0 or rc == 0):
            return result, answer
        ended = replace(result, rc=rc if rc is not None and result.rc == 0 else result.rc, stderr=result.stderr + stderr)
        return ended, probe_answer(ended)

    def _start_worker(self, python: str):
        """A probe worker in `python`, or why none could start."""
        from gpudoctor.probeworker import ProbeWorker

        argv = (python, PROBE_SCRIPT, "--serve")
        proc = self._start(argv, stdin=subprocess.PIPE)
        return proc if isinstance(proc, str) else ProbeWorker(proc, argv)

    def _end_worker(self, worker) -> tuple[int | None, str]:
        ended = worker.close()
        with self._lock:
            self._children.discard(worker.proc)
        return ended

    # -- NVML -------------------------------------------------------------------------
    def nvml(self, timeout: float | None = None) -> dict:
        """NVML's answers from a worker process, so a hung NVML costs only `timeout`; asked once per run (the
        collectors that start probes read the GPUs' compute modes from it too)."""
        def ask() -> dict:
            info = nvml_answer(self._execute((sys.executable, "-m", "gpudoctor.nvml_probe"), timeout))
            self.evidence.put("nvml", info)
            return info
        return self.once(("nvml",), ask)


def nvml_answer(result: CommandResult) -> dict:
    """Turn the NVML worker's run into facts, or into an error that says what happened."""
    if result.error == TIMED_OUT:
        return {"error": {"name": "timeout", "message": f"NVML did not answer within {result.duration_s:.0f} s"}}
    if result.error:
        return {"error": {"name": "worker", "message": result.error}}
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        tail = (result.stderr.strip().splitlines() or [f"exit code {result.rc}"])[-1]
        return {"error": {"name": "worker", "message": f"NVML worker failed: {tail}"}}
    return answer if isinstance(answer, dict) else {"error": {"name": "worker", "message": "bad NVML answer"}}


def why_no_answer(error: str, duration_s: float) -> str:
    """A command's error in words; a timeout names the limit it hit (the seconds it was given)."""
    return f"timed out at its {round(duration_s, 1):g} s limit" if error == TIMED_OUT else error


def probe_answer(result: CommandResult) -> dict:
    """A probe run as facts, or as a `failure` (crashed, hung, garbage, not run) that checks report."""
    tail = result.stderr.strip().splitlines()[-15:]
    if result.error:
        kind = {TIMED_OUT: "hung", NOT_RECORDED: "not recorded"}.get(result.error, "not run")
        message = why_no_answer(result.error, result.duration_s)
        return {"failure": kind, "message": message, "duration_s": result.duration_s, "stderr_tail": tail}
    if result.rc is not None and result.rc < 0:
        try:
            name = signal.Signals(-result.rc).name
        except ValueError:
            name = f"signal {-result.rc}"
        return {"failure": "crashed", "signal": name, "message": f"killed by {name}", "stderr_tail": tail}
    facts = _marked_json(result.stdout)
    if not isinstance(facts, dict):
        first = (result.stdout.strip() or result.stderr.strip() or f"exit code {result.rc}").splitlines()[0][:200]
        return {"failure": "garbage", "message": f"no answer, exit code {result.rc}: {first}", "stderr_tail": tail}
    return {**facts, "duration_s": result.duration_s, "stderr_tail": tail}


def _marked_json(stdout: str):
    """The probe's marked line; a recorded answer without the mark (older captures) is plain JSON."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(PROBE_MARK):
            try:
                return json.loads(line[len(PROBE_MARK):])
            except ValueError:
                return None
    try:
        return json.loads(stdout)
    except ValueError:
        return None


def _on_path(name: str) -> bool:
    """Whether `name` is a path, or a file (executable or not) in a PATH folder this process can search."""
    folders = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return os.sep in name or any(os.path.lexists(os.path.join(folder, name)) for folder in folders if folder)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kind(mode: int) -> str:
    for test, name in ((st.S_ISCHR, "char"), (st.S_ISDIR, "dir"), (st.S_ISREG, "file"), (st.S_ISBLK, "block"),
                       (st.S_ISSOCK, "socket"), (st.S_ISFIFO, "fifo")):
        if test(mode):
            return name
    return "other"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class RecordedHost:
    """Answers from evidence recorded elsewhere; the same questions as `LiveHost`.

    A question the evidence has no answer to gets "not recorded" (`run`, `read`) or raises NotRecorded (`listdir`,
    `stat`, `which`, ...). Either way, a collector that then fails is not a bug: the runner asks `unanswered()`
    and marks its facts "not recorded", so a plugin's collector needs no replay-specific code."""

    def __init__(self, evidence: Evidence, timeout: float = 10.0):
        self.evidence = evidence
        self.timeout = timeout
        self.environ = dict(evidence.data.get("env") or {})
        self.options = dict(evidence.data.get("options") or {})
        self._asked = threading.local()
        self.gpu_turn = Turn()  # replayed answers take turns as the live run did

    def unanswered(self) -> list[str]:
        """The questions this thread asked that the evidence could not answer, since the last call."""
        missing, self._asked.missing = getattr(self._asked, "missing", []), []
        return missing

    def _miss(self, question: str) -> None:
        self._asked.missing = [*getattr(self._asked, "missing", []), question]

    def run(self, argv, timeout: float | None = None) -> CommandResult:
        data = self.evidence.get("commands", command_key(argv))
        if data is None:
            self._miss(" ".join(argv))
            return CommandResult(tuple(argv), None, error=NOT_RECORDED)
        fields = {k: data[k] for k in ("rc", "stdout", "stderr", "duration_s", "error", "truncated") if k in data}
        return CommandResult(tuple(argv), **{"rc": None, **fields})

    def kill_children(self) -> None:
        """Nothing runs in replay."""

    def close(self) -> None:
        """Nothing runs in replay."""

    def read(self, path: str, limit: int = FILE_CAP) -> FileRead:
        data = self.evidence.get("files", path)
        if data is None:
            self._miss(path)
            return FileRead(path, error=NOT_RECORDED)
        if data.get("text") is not None:
            return FileRead(path, data["text"][:limit])
        return FileRead(path, error=data.get("error") or NOT_RECORDED)

    def listdir(self, path: str) -> list[str] | None:
        return self._lookup("listdirs", path)

    def stat(self, path: str) -> dict | None:
        return self._lookup("stats", path)

    def disk_usage(self, path: str) -> dict | None:
        return self._lookup("disk_usage", path)

    def _lookup(self, section: str, key: str):
        recorded = self.evidence.data.get(section, {})
        if key not in recorded:
            self._miss(f"{section} of {key}")
            raise NotRecorded(f"{section} of {key}")
        return recorded[key]

    def machine(self) -> dict:
        return dict(self.evidence.data.get("machine") or {})

    def user(self) -> dict:
        return dict(self.evidence.data.get("user") or {})

    def nvml(self, timeout: float | None = None) -> dict:
        return self.evidence.data.get("nvml") or {"error": {"name": "not_recorded", "message": NOT_RECORDED}}

    def which(self, name: str) -> str | None:
        return self._lookup("which", name)

    def realpath(self, path: str) -> str:
        return self._lookup("realpaths", path)

    def once(self, key: tuple, find):
        """Replayed answers do not change: each found again."""
        return find()

    def probe(self, python: str, what: str, timeout: float | None = None, keep=False) -> dict:
        data = self.evidence.get("probes", f"{python} {what}")
        if data is not None and "answer" in data:  # a capture that recorded the answer, not the run
            tail = (data.get("stderr") or "").strip().splitlines()[-15:]
            return {**data["answer"], "duration_s": data.get("duration_s", 0.0), "stderr_tail": tail}
        if data is None:
            return probe_answer(CommandResult((python, what), None, error=NOT_RECORDED))
        fields = {k: data[k] for k in ("rc", "stdout", "stderr", "duration_s", "error", "truncated") if k in data}
        return probe_answer(CommandResult((python, what), **{"rc": None, **fields}))
