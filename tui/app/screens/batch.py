"""Batch progress: a line per participant with a bar per stage, throughput, ETA and a log."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, RichLog

from tui.app.screens.confirm import ConfirmScreen
from tui.core.events import Event, StepFailed, StepFinished, StepNote, StepProgress, StepStarted
from tui.core.run_settings import STAGES

if TYPE_CHECKING:
    from textual import getters

    from tui.app.app import TuiApp

BAR = 6
"""Cells per stage bar."""

LOG_LINES = 2000
"""Log lines kept (also while the screen has never been shown)."""

HEADINGS = {"deidentify": "De-id", "convert": "Conv", "deface": "Deface", "pack": "Pack", "upload": "Upload"}


@dataclass
class Stage:
    """Where one participant's stage is: pending, running, done or failed."""

    state: str = "pending"
    done: int = 0
    total: int | None = None
    unit: str = "files"

    @property
    def fraction(self) -> float:
        """0..1 of this stage finished."""
        if self.state == "done":
            return 1.0
        if self.state == "running" and self.total:
            return min(1.0, self.done / self.total)
        return 0.0


@dataclass
class Line:
    """One participant's progress through every stage."""

    key: str
    stages: dict[str, Stage] = field(default_factory=lambda: {s: Stage() for s in STAGES})
    reason: str = ""
    partial: str = ""
    """Why the package holds only part of the participant (a withheld series), if it does."""

    @property
    def state(self) -> str:
        """failed, partly (shared, something withheld), done, running or waiting."""
        states = [s.state for s in self.stages.values()]
        if "failed" in states:
            return "failed"
        if all(s == "done" for s in states):
            return "partly" if self.partial else "done"
        return "running" if any(s != "pending" for s in states) else "waiting"


class BatchTable(DataTable[Any]):
    """The progress grid; component classes colour the bars from the theme."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "batch-table--done",
        "batch-table--running",
        "batch-table--failed",
        "batch-table--pending",
    }


def human_duration(seconds: float) -> str:
    """Seconds as `42 s`, `3 min`, `1 h 05`."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d}"


class BatchScreen(Screen[None]):
    """Live progress of a pipeline run; the run goes on when you leave this screen."""

    if TYPE_CHECKING:
        app = getters.app(TuiApp)  # the screens run only in TuiApp: its attributes, typed

    BINDINGS = [
        Binding("escape", "back", "Back", id="batch.back"),
        Binding("c", "cancel", "Cancel run", id="batch.cancel"),
        Binding("r", "retry", "Retry failed", id="batch.retry"),
        Binding("l", "toggle_log", "Full log", id="batch.log"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, Line] = {}
        self.started: datetime | None = None
        self.now: datetime | None = None
        self.files_done = 0
        self.ended = ""
        self._progress: dict[tuple[str, str], int] = {}
        self._log_lines: deque[Text] = deque(maxlen=LOG_LINES)
        self.warnings: dict[str, list[str]] = {}
        """Warning notes per participant key (the failure view groups them)."""

    def compose(self) -> ComposeResult:
        yield Label("No batch has run yet: select participants in the ledger and press r.", id="batch-summary")
        yield BatchTable(id="batch-table", cursor_type="row")
        yield Label("", id="batch-reason", markup=False)
        yield RichLog(id="batch-log", max_lines=LOG_LINES, wrap=True, markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(BatchTable)
        table.add_column("Participant", key="participant", width=12)
        for stage in STAGES:
            table.add_column(HEADINGS.get(stage, stage.title()), key=stage, width=BAR)
        table.add_column("State", key="state", width=12)
        log = self.query_one(RichLog)
        for line in self._log_lines:
            log.write(line)
        self._redraw()

    # -- fed by the app -------------------------------------------------------------------------

    def start(self, keys: list[str], now: datetime) -> None:
        """Begin a new run for participants `keys` (failed lines of an earlier run are replaced)."""
        for key in keys:
            self.lines[key] = Line(key)
        self.started = self.now = now
        self.files_done = 0
        self.ended = ""
        self._progress.clear()
        if self.is_mounted:
            self._redraw()

    def apply(self, event: Event, now: datetime) -> None:
        """Fold one pipeline event into the lines, the log and the summary."""
        self.now = now
        line = self.lines.get(event.subject)
        stage = line.stages.get(event.step) if line is not None else None
        if stage is not None and line is not None:
            if isinstance(event, StepStarted):
                stage.state, stage.total, stage.done = "running", event.total, 0
            elif isinstance(event, StepProgress):
                stage.state, stage.done, stage.total, stage.unit = "running", event.done, event.total, event.unit
                if event.unit == "files":
                    key = (event.subject, event.step)
                    self.files_done += max(0, event.done - self._progress.get(key, 0))
                    self._progress[key] = event.done
            elif isinstance(event, StepFinished):
                stage.state = "done"
            elif isinstance(event, StepFailed):
                stage.state, line.reason = "failed", event.reason
            elif isinstance(event, StepNote) and event.message.startswith("partly shared"):
                line.partial = event.message
        elif isinstance(event, StepFailed) and line is not None:  # before any stage (ledger, old remote file)
            line.stages[STAGES[0]].state, line.reason = "failed", f"{event.step}: {event.reason}"
        if isinstance(event, StepNote) and event.level == "warning":
            self.warnings.setdefault(event.subject, []).append(event.message)
        self._log(event, now)
        if self.is_mounted and line is not None:
            self._draw_line(line)
            self._draw_summary()

    def finish(self, cancelled: bool, error: str = "") -> None:
        """The run ended; say how."""
        self.ended = "cancelled" if cancelled else ("stopped: " + error if error else "finished")
        line = Text(f"run {self.ended}", style="bold")
        self._log_lines.append(line)
        if self.is_mounted:
            self.query_one(RichLog).write(line)
            self._redraw()

    # -- drawing --------------------------------------------------------------------------------

    def _log(self, event: Event, now: datetime) -> None:
        stamp = now.strftime("%H:%M:%S")
        text = None
        if isinstance(event, StepFinished):
            text = Text(f"{stamp} {event.subject} {event.step}: {event.summary or 'done'}")
        elif isinstance(event, StepFailed):
            text = Text(f"{stamp} {event.subject} {event.step} FAILED: {event.reason}", style="bold")
        elif isinstance(event, StepNote) and event.level != "debug":
            text = Text(f"{stamp} {event.subject} {event.step}: {event.message}")
        if text is not None:
            self._log_lines.append(text)
            if self.is_mounted:
                self.query_one(RichLog).write(text)

    def _redraw(self) -> None:
        table = self.query_one(BatchTable)
        table.clear()
        for line in self.lines.values():
            table.add_row(*self._cells(table, line), key=line.key)
        self._draw_summary()
        self._show_reason()

    def _draw_line(self, line: Line) -> None:
        table = self.query_one(BatchTable)
        for column, cell in zip(("participant", *STAGES, "state"), self._cells(table, line), strict=True):
            table.update_cell(line.key, column, cell)
        self._show_reason()

    def _cells(self, table: BatchTable, line: Line) -> list[Text]:
        def style(name: str) -> Any:
            return table.get_component_rich_style(f"batch-table--{name}", partial=True)

        cells = [Text(line.key)]
        for stage in line.stages.values():
            if stage.state == "done":
                cells.append(Text("█" * BAR, style=style("done")))
            elif stage.state == "failed":
                cells.append(Text("✗ fail", style=style("failed")))
            elif stage.state == "running":
                eighths = int(stage.fraction * BAR * 8)
                bar = "█" * (eighths // 8) + (" ▏▎▍▌▋▊▉"[eighths % 8] if eighths < BAR * 8 else "")
                cells.append(Text(bar.ljust(BAR, "░")[:BAR], style=style("running")))
            else:
                cells.append(Text("░" * BAR, style=style("pending")))
        state = line.state
        cells.append(Text(state, style=style(
            {"failed": "failed", "partly": "failed", "done": "done"}.get(
                state, "running" if state == "running" else "pending")
        )))
        return cells

    def _draw_summary(self) -> None:
        if not self.lines:
            return
        states = [line.state for line in self.lines.values()]
        parts = [f"{states.count('done')}/{len(states)} done"]
        if states.count("failed"):
            parts.append(f"{states.count('failed')} failed")
        if states.count("partly"):
            parts.append(f"{states.count('partly')} partly shared")
        elapsed = (self.now - self.started).total_seconds() if self.now and self.started else 0.0
        if elapsed > 0:
            parts.append(f"{self.files_done / elapsed:.1f} files/s")
            fraction = self.fraction
            if 0 < fraction < 1 and not self.ended:
                parts.append(f"ETA {human_duration(elapsed * (1 - fraction) / fraction)}")
            parts.append(f"elapsed {human_duration(elapsed)}")
        if self.ended:
            parts.append(f"run {self.ended}")
        self.query_one("#batch-summary", Label).update(" · ".join(parts))

    @property
    def fraction(self) -> float:
        """0..1 of all stages of all participants finished."""
        stages = [s for line in self.lines.values() for s in line.stages.values()]
        return sum(s.fraction for s in stages) / len(stages) if stages else 0.0

    def _show_reason(self) -> None:
        failed = [line for line in self.lines.values() if line.state in ("failed", "partly")]
        label = self.query_one("#batch-reason", Label)
        label.update("\n".join(f"✗ {line.key}: {line.reason or line.partial}" for line in failed))
        label.display = bool(failed)

    # -- actions --------------------------------------------------------------------------------

    def action_back(self) -> None:
        """Go back to the ledger; the run goes on."""
        self.dismiss()

    def action_cancel(self) -> None:
        """Stop the run after the current file (asks first)."""
        if not self.app.batch_running:
            self.notify("No run is going on.")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.cancel_batch()
                self.notify("Cancelling after the current file…")

        self.app.push_screen(
            ConfirmScreen("Cancel the run?", "Finished steps stay done and are not redone next time.", yes="Stop run"),
            answered,
        )

    def action_retry(self) -> None:
        """Run the failed participants again (finished steps are skipped by the pipeline)."""
        failed = [key for key, line in self.lines.items() if line.state == "failed"]
        scanned = {p.key: p for p in getattr(self.app.scan_result, "participants", [])}
        again = [scanned[key] for key in failed if key in scanned]
        if not again:
            self.notify("No failed participant to retry.")
            return
        self.app.start_batch(again)

    def action_toggle_log(self) -> None:
        """Show the log over the whole screen (lines wrap, nothing is cut), or go back to the bars."""
        self.toggle_class("-log-full")
        if self.has_class("-log-full"):
            self.query_one(RichLog).focus()
