"""Verdicts that checks return and the results the runner makes of them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable


class Status(str, enum.Enum):
    """How a check came out, ordered from best to worst for summaries."""

    PASS = "pass"
    SKIP = "skip"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return list(Status).index(self)


@dataclass(frozen=True)
class Verdict:
    """What a check concluded; the runner adds id, title and timing.

    A warning or failure without a fix, or a skip without a reason, is refused here,
    so that no check can print a problem and leave the user without the next step.
    """

    status: Status
    summary: str
    fix: str = ""
    details: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.summary:
            raise ValueError(f"a {self.status.value} verdict needs a summary")
        if self.status in (Status.WARN, Status.FAIL) and not self.fix:
            raise ValueError(f"a {self.status.value} verdict needs a fix: {self.summary!r}")


def _lines(details: Iterable[str] | str) -> tuple[str, ...]:
    return (details,) if isinstance(details, str) else tuple(details)


def ok(summary: str, details: Iterable[str] | str = ()) -> Verdict:
    """The check passed."""
    return Verdict(Status.PASS, summary, "", _lines(details))


def warn(summary: str, fix: str, details: Iterable[str] | str = ()) -> Verdict:
    """Works now, but something will bite or slow the user down."""
    return Verdict(Status.WARN, summary, fix, _lines(details))


def fail(summary: str, fix: str, details: Iterable[str] | str = ()) -> Verdict:
    """Training on the GPUs will not work (or not correctly) until this is fixed."""
    return Verdict(Status.FAIL, summary, fix, _lines(details))


def skip(reason: str, details: Iterable[str] | str = ()) -> Verdict:
    """The check does not apply here, or its facts could not be had; says why."""
    return Verdict(Status.SKIP, reason, "", _lines(details))


@dataclass(frozen=True)
class Result:
    """One line of the verdict: a check's outcome with its identity and cost."""

    id: str
    title: str
    status: Status
    summary: str
    details: tuple[str, ...] = ()
    fix: str = ""
    duration_s: float = 0.0
    plugin: str = "gpudoctor"

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "area": self.area,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "details": list(self.details),
            "fix": self.fix,
            "duration_s": round(self.duration_s, 4),
            "plugin": self.plugin,
        }


@dataclass
class Run:
    """Everything one `gpudoctor check` produced: facts, results and timing."""

    results: list[Result]
    facts: dict
    started_at: str
    duration_s: float
    host: str
    collector_s: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for result in self.results:
            counts[result.status.value] += 1
        return counts

    def exit_code(self, strict: bool = False) -> int:
        """0 when nothing failed (warnings allowed unless strict), else 1."""
        bad = {Status.FAIL, Status.ERROR} | ({Status.WARN} if strict else set())
        return 1 if any(r.status in bad for r in self.results) else 0
