"""One interpreter asked several probe questions in turn, so a framework is imported once per run.

Importing torch and starting CUDA takes seconds (4.9 s on the H200), and both the facts probe and
the smoke test need them. A worker is `python framework_probe.py --serve` in its own process group:
it reads one question a line on stdin and answers each with one marked line on stdout, then an end
mark on stderr, so each answer keeps the stderr written while it was asked. Every answer comes back
as the `CommandResult` the same question would give as its own command (exit code 0 once answered),
so it is recorded under the same evidence key and a report replays alike with or without workers.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time

from gpudoctor.host import OUTPUT_CAP, PROBE_MARK, TIMED_OUT, CommandResult, _kill_group

END_MARK = b"GPUDOCTOR-PROBE-END"
STDERR_WAIT_S = 5.0  # after an answer, for the stderr written before it (two pipes, two reader threads)
EXIT_WAIT_S = 5.0  # after the last question, for the interpreter to end by itself (CUDA's teardown) before it is killed


class ProbeWorker:
    """A running `framework_probe.py --serve`; ask() never raises and never outlives its timeout."""

    def __init__(self, proc: subprocess.Popen, argv: tuple[str, ...]):
        self.proc, self.argv = proc, argv
        self.started = time.monotonic()
        self.asked = 0
        self._ended = False  # its end was seen by ask(): exit code and last stderr are in that answer
        self._answers: queue.Queue = queue.Queue()  # stdout lines; None at end of file
        self._stderr: queue.Queue = queue.Queue()  # one (bytes, truncated) per answer; None at end of file
        threading.Thread(target=self._read_stdout, daemon=True, name="probe-stdout").start()
        threading.Thread(target=self._read_stderr, daemon=True, name="probe-stderr").start()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, words: tuple[str, ...], timeout: float) -> CommandResult:
        """One question's answer, shaped as the command `python framework_probe.py WORDS` would have answered."""
        start = self.started if self.asked == 0 else time.monotonic()  # the first answer includes start-up and import
        self.asked += 1
        argv = (*self.argv[:2], *words)
        try:
            self.proc.stdin.write((" ".join(words) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:  # it died before the question: its end says how
            pass
        deadline = start + timeout
        out = []
        while True:
            try:
                line = self._answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                _kill_group(self.proc)
                self.proc.wait()
                err, truncated = self._end_seen()
                return self._result(argv, None, out, err, start, TIMED_OUT, truncated)
            if line is None:  # it ended without answering: crashed, killed or exited
                rc = self.proc.wait()
                err, truncated = self._end_seen()
                return self._result(argv, rc, out, err, start, None, truncated)
            out.append(line)
            if line.startswith(PROBE_MARK.encode()):
                err, truncated = self._next_stderr(STDERR_WAIT_S)
                return self._result(argv, 0, out, err, start, None, truncated)

    def close(self) -> tuple[int | None, str]:
        """End the interpreter: end of input first, so it exits by itself (freeing GPU memory), then a kill.

        Returns its exit code if it ended by itself (a crash on the way out is a finding, as it was for a one-off
        command), else None, and what it wrote to stderr after its last answer."""
        if self._ended:
            return None, ""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            self.proc.wait()
            rc = None  # ended by us, not by itself
        err, _ = self._end_seen()
        return rc, err.decode(errors="replace")

    def _end_seen(self) -> tuple[bytes, bool]:
        self._ended = True
        return self._stderr_until_end(STDERR_WAIT_S)

    def _result(self, argv, rc, out, err, start, error, truncated) -> CommandResult:
        stdout = b"".join(out)
        return CommandResult(argv, rc, stdout[:OUTPUT_CAP].decode(errors="replace"), err.decode(errors="replace"),
                             round(time.monotonic() - start, 4), error, truncated or len(stdout) > OUTPUT_CAP)

    def _next_stderr(self, wait: float) -> tuple[bytes, bool]:
        try:
            chunk = self._stderr.get(timeout=wait)
        except queue.Empty:
            return b"", False
        return chunk if chunk is not None else (b"", False)

    def _stderr_until_end(self, wait: float) -> tuple[bytes, bool]:
        """Everything left on stderr once the process has ended (it has no more answers to mark)."""
        parts, truncated, deadline = [], False, time.monotonic() + wait
        while True:
            try:
                chunk = self._stderr.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if chunk is None:
                break
            parts.append(chunk[0])
            truncated = truncated or chunk[1]
        return b"".join(parts)[-OUTPUT_CAP:], truncated

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self._answers.put(line)
        self._answers.put(None)

    def _read_stderr(self) -> None:
        chunk, size, truncated = [], 0, False
        for line in self.proc.stderr:
            if line.rstrip(b"\r\n") == END_MARK:
                if chunk and chunk[-1] == b"\n":  # the newline the worker wrote before its mark
                    chunk.pop()
                self._stderr.put((b"".join(chunk), truncated))
                chunk, size, truncated = [], 0, False
            elif size < OUTPUT_CAP:
                chunk.append(line)
                size += len(line)
            else:
                truncated = True
        self._stderr.put((b"".join(chunk), truncated))
        self._stderr.put(None)

