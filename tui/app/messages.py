"""Messages that thread workers post to the UI (the only way they talk to it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.message import Message

from tui.core.events import Event, StepProgress


class ScanEventArrived(Message):
    """A progress event from scanning a study folder."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class ScanFinished(Message):
    """A folder scan ended; `result` is a ScanResult, or None with `error` set."""

    def __init__(self, root: Path, result: Any | None, error: str = "") -> None:
        super().__init__()
        self.root = root
        self.result = result
        self.error = error


class LedgerLoaded(Message):
    """The ledger's rows were read (or `error` says why not); `stamp` identifies the file version read."""

    def __init__(self, rows: list[Any] | None, error: str = "", stamp: Any = None) -> None:
        super().__init__()
        self.rows = rows
        self.error = error
        self.stamp = stamp


class BatchEventArrived(Message):
    """A pipeline event (per participant key and stage)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        """Let a newer progress event for the same participant and stage replace an unhandled older one."""
        return (
            isinstance(message, BatchEventArrived)
            and isinstance(self.event, StepProgress)
            and isinstance(message.event, StepProgress)
            and (message.event.subject, message.event.step) == (self.event.subject, self.event.step)
        )


class BatchEnded(Message):
    """A batch run ended (finished, cancelled or crashed with `error`)."""

    def __init__(self, result: Any | None, cancelled: bool, error: str = "") -> None:
        super().__init__()
        self.result = result
        self.cancelled = cancelled
        self.error = error


class JobsRefreshed(Message):
    """The processing jobs were asked about (and finished results fetched); `error` is empty on success."""

    def __init__(self, summary: str, changed: bool, quiet: bool, error: str = "") -> None:
        super().__init__()
        self.summary = summary
        self.changed = changed
        """A job's state changed since the last look."""
        self.quiet = quiet
        """A timed look: say something only when a job changed or the look failed."""
        self.error = error


class RowActionDone(Message):
    """A ledger row action (revoke, extend, reset) finished; `error` is empty on success."""

    def __init__(self, verb: str, row_id: str, error: str = "") -> None:
        super().__init__()
        self.verb = verb
        self.row_id = row_id
        self.error = error


class LinksChecking(Message):
    """The check of the ledger's links with their servers got `done` of `total` links."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done = done
        self.total = total


class LinksChecked(Message):
    """The link check ended: `changed` rows now follow their server; `problems` are one line per destination
    that could not be asked."""

    def __init__(self, changed: list[Any], problems: list[str]) -> None:
        super().__init__()
        self.changed = changed
        self.problems = problems
