"""Shared CLI output: a rich progress display for core event streams."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from tui.core.events import (
    Event,
    StepFailed,
    StepFinished,
    StepNote,
    StepProgress,
    StepStarted,
    drain,
    quarantine_reason,
)

T = TypeVar("T")

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


def label(subject: str, step: str) -> str:
    """'p-1 deface', or just 'scan' when a job's subject is its step (not 'scan scan')."""
    return step if subject == step else f"{subject} {step}"


def run_with_progress(stream: Generator[Event, None, T], quiet: bool = False) -> T:
    """Drain `stream`, showing a bar per (subject, step) and notes on stderr; return its result."""
    show = not quiet and sys.stderr.isatty()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not show,
    )
    tasks: dict[tuple[str, str], TaskID] = {}
    held: dict[tuple[str, str], dict[str, list[str]]] = {}
    """Quarantine notes per (subject, step), by reason: printed once per reason when the step ends."""

    def flush(key: tuple[str, str]) -> None:
        for reason, files in held.pop(key, {}).items():
            more = f"{len(files)} files" if len(files) > 1 else files[0]
            stderr.print(f"{label(*key)}: quarantined {more}: {reason}" + (f" (first: {files[0]})" if len(files) > 1
                         else ""), markup=False)

    def on_event(event: Event) -> None:
        key = (event.subject, event.step)
        where = label(event.subject, event.step)
        if isinstance(event, (StepFinished, StepFailed)):
            flush(key)
        if isinstance(event, StepStarted):
            tasks[key] = progress.add_task(where, total=event.total)
            if not show and not quiet:  # a log (no bars): say when each step begins
                stderr.print(f"{where}: started", markup=False)
        elif isinstance(event, StepProgress) and key in tasks:
            progress.update(tasks[key], completed=event.done, total=event.total)
        elif isinstance(event, StepFinished) and key in tasks:
            progress.remove_task(tasks.pop(key))
            if event.summary and not quiet:
                stderr.print(f"{where}: {event.summary}", markup=False)
        elif isinstance(event, StepFailed):
            if key in tasks:
                progress.remove_task(tasks.pop(key))
            stderr.print(f"{where} failed: {event.reason}", style="red", markup=False)
        elif isinstance(event, StepNote) and not quiet and event.level != "debug":
            quarantined = quarantine_reason(event.message)
            if quarantined:
                held.setdefault(key, {}).setdefault(quarantined[1], []).append(quarantined[0])
            else:
                stderr.print(f"{where}: {event.message}", markup=False)

    with progress:
        try:
            return drain(stream, on_event)
        finally:
            for key in list(held):
                flush(key)


@contextmanager
def stop_on_ctrl_c() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C into a cancel request that the core honours at its next safe point.

    The event stream keeps being drained meanwhile, so the stop is shown as it happens; a second
    Ctrl-C interrupts at once (the core still stops before any upload or link).
    """
    cancel = threading.Event()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        stderr.print("mrishare: stopping at the next safe point; nothing more is uploaded or shared "
                      "(Ctrl-C again to quit at once)", style="yellow", markup=False)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)
