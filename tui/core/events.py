"""Progress events that long core jobs yield (frozen dataclasses, no UI here).

A long job is a generator: it yields events and *returns* its result.
`drain()` runs one to completion, passing each event to a callback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class StepStarted:
    """A step began for a subject (a participant key or a job name, never PHI)."""

    subject: str
    step: str
    total: int | None = None


@dataclass(frozen=True)
class StepProgress:
    """`done` of `total` units of a step are finished (`unit` says what is counted)."""

    subject: str
    step: str
    done: int
    total: int | None
    unit: str = "files"


@dataclass(frozen=True)
class StepFinished:
    """A step ended well; `summary` is one short, non-identifying line."""

    subject: str
    step: str
    summary: str = ""


@dataclass(frozen=True)
class StepFailed:
    """A step ended with an error; `reason` is one non-identifying line."""

    subject: str
    step: str
    reason: str


@dataclass(frozen=True)
class StepNote:
    """A remark worth logging (a skipped file, a warning) while a step runs."""

    subject: str
    step: str
    message: str
    level: str = "info"


Event = StepStarted | StepProgress | StepFinished | StepFailed | StepNote

_QUARANTINED = re.compile(r"^quarantined (?P<file>\S+): (?P<reason>.+)$")


def quarantine_reason(message: str) -> tuple[str, str] | None:
    """('IM1.dcm', 'burned-in annotation') for a note 'quarantined IM1.dcm: burned-in annotation', else None.

    Many files of a series share one reason; the CLI and the app group them on it.
    """
    match = _QUARANTINED.match(message)
    return (match.group("file"), match.group("reason")) if match else None
EventStream = Generator[Event, None, T]


def drain(stream: Generator[Event, None, T], on_event: Callable[[Event], None] | None = None) -> T:
    """Run an event stream to its end and return its result."""
    while True:
        try:
            event = next(stream)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


class Throttle:
    """Lets a progress event through at most `per_second` times a second (the last one always)."""

    def __init__(self, per_second: float = 4.0) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0

    def ready(self, done: int, total: int | None) -> bool:
        """True if an event for `done`/`total` should be emitted now."""
        now = time.monotonic()
        if (total is not None and done >= total) or now >= self._next:
            self._next = now + self._interval
            return True
        return False


def relabel(stream: Generator[Event, None, T], subject: str, step: str) -> Generator[Event, None, T]:
    """Re-emit an inner job's events as one pipeline stage of `subject`; return the job's result.

    Progress keeps flowing under (`subject`, `step`); the inner job's own start/finish
    markers become notes, so a stage shows one bar however many sub-steps it has.
    """
    while True:
        try:
            event = next(stream)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, StepProgress):
            yield StepProgress(subject, step, event.done, event.total, event.unit)
        elif isinstance(event, StepFinished) and event.summary:
            yield StepNote(subject, step, event.summary if event.step == step else f"{event.step}: {event.summary}")
        elif isinstance(event, StepFailed):
            yield StepNote(subject, step, f"{'' if event.step == step else event.step + ' '}failed: {event.reason}",
                           "warning")
        elif isinstance(event, StepNote):
            yield StepNote(subject, step, event.message, event.level)
