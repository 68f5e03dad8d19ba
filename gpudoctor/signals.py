"""SIGTERM and SIGHUP end gpudoctor the way Ctrl-C does: every command it started is killed.

Their default action ends the process on the spot, leaving the probes and commands it started
(each in its own process group, so that a timeout can kill it) running as orphans. Here they
raise `Stopped` in the main thread instead, which unwinds through the same `finally` that closes
the host on Ctrl-C; `main` then says so in one line and exits 128 + the signal's number, as a
shell reports a process that signal ended. A signal that was ignored when gpudoctor started
(`nohup`) stays ignored.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A signal asked gpudoctor to stop; a BaseException, so that no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _stop(signum, frame) -> None:
    for handled in HANDLED:  # a second signal must not interrupt the clean-up the first one started
        signal.signal(handled, signal.SIG_IGN)
    raise Stopped(signum)


@contextmanager
def handled():
    """SIGTERM and SIGHUP raise `Stopped` inside, each unless it was ignored on entry; as they were, after."""
    before = {signum: signal.getsignal(signum) for signum in HANDLED}
    main = threading.current_thread() is threading.main_thread()
    for signum, handler in before.items():
        if main and handler == signal.SIG_DFL:
            signal.signal(signum, _stop)
    try:
        yield
    finally:
        for signum, handler in before.items():
            if main and handler is not None:
                signal.signal(signum, handler)
