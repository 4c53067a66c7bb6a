"""Shared CLI output: a rich progress display for core event streams."""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tui.core.events import Event, StepFailed, StepFinished, StepNote, StepProgress, StepStarted, drain

T = TypeVar("T")

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


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
    tasks: dict[tuple[str, str], int] = {}

    def on_event(event: Event) -> None:
        key = (event.subject, event.step)
        if isinstance(event, StepStarted):
            tasks[key] = progress.add_task(f"{event.subject} {event.step}", total=event.total)
        elif isinstance(event, StepProgress) and key in tasks:
            progress.update(tasks[key], completed=event.done, total=event.total)
        elif isinstance(event, StepFinished) and key in tasks:
            progress.remove_task(tasks.pop(key))
            if event.summary and not quiet:
                stderr.print(f"{event.subject} {event.step}: {event.summary}", markup=False)
        elif isinstance(event, StepFailed):
            if key in tasks:
                progress.remove_task(tasks.pop(key))
            stderr.print(f"{event.subject} {event.step} failed: {event.reason}", style="red", markup=False)
        elif isinstance(event, StepNote) and not quiet and event.level != "debug":
            stderr.print(f"{event.subject} {event.step}: {event.message}", markup=False)

    with progress:
        return drain(stream, on_event)
