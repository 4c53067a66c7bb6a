"""TuiApp: the keyboard-driven shell; workers relay core events as messages, screens show them."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from threading import Event as CancelEvent
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.app.commands import ParticipantCommands
from tui.app.messages import (
    BatchEnded,
    BatchEventArrived,
    JobsRefreshed,
    LedgerLoaded,
    LinksChecked,
    LinksChecking,
    RowActionDone,
    ScanEventArrived,
    ScanFinished,
)
from tui.app.paths import stylesheets
from tui.app.screens.batch import BatchScreen
from tui.app.screens.confirm import ConfirmScreen
from tui.app.screens.help import HelpScreen
from tui.app.screens.ledger import LedgerScreen
from tui.app.screens.settings import SettingsScreen
from tui.app.services import Services
from tui.core.config import data_dir
from tui.core.errors import MrishareError
from tui.core.events import Event, StepProgress, drain

LEDGER_POLL_SECONDS = 2.0
"""How often the app looks whether another mrishare changed the ledger file."""
JOBS_POLL_SECONDS = 15.0
"""How often the app asks the server about queued and running processing jobs."""


def ledger_stamp(path: Path) -> tuple[int, int] | None:
    """(mtime in ns, size) of the ledger file, None if it does not exist: changes when anyone saves it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def start_process_helpers() -> None:
    """Start multiprocessing's forkserver with the real stderr (Textual's stand-in has no file descriptor)."""
    from multiprocessing import forkserver

    with contextlib.redirect_stderr(sys.__stderr__):
        forkserver.ensure_running()


class TuiApp(App[None]):
    """mrishare: scan a study, inspect it, run the pipeline, reveal passphrases, keep the ledger."""

    TITLE = "mrishare"
    CSS_PATH = [*stylesheets()]  # a list[str | PurePath] for App's type
    COMMANDS = App.COMMANDS | {ParticipantCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", id="help"),
        Binding("f2", "settings", "Settings", show=False, id="settings"),
        Binding("b", "show_batch", "Batch progress", show=False, id="show-batch"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, id="quit-ctrl-c", priority=True),
    ]

    def __init__(self, services: Services | None = None, study_dir: Path | None = None) -> None:
        super().__init__()
        self.services = services or Services()
        self.study_dir = study_dir
        self.settings: Any = self.services.settings
        self.user_settings: Any = None
        self.ledger_rows: list[Any] | None = None
        """The ledger's rows as last read; None until the first read worked."""
        self._ledger_stamp: Any = None
        self._ledger_lock = threading.Lock()
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._jobs_busy = False
        """A jobs refresh is under way (the next one waits for it: one look at the server at a time)."""
        self._links_checked = False
        """True once the check of the links with their servers was started (once per start)."""
        self.scan_result: Any = None
        self.ledger_screen = LedgerScreen()
        self.batch_screen = BatchScreen()
        self._cancel = CancelEvent()

    # -- start-up -------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        """The ledger is the start screen (and stays at the bottom of the stack)."""
        return self.ledger_screen

    def on_mount(self) -> None:
        """Open the ledger and scan the study folder in the background."""
        # A full garbage collection walks every object and holds the GIL meanwhile; with the
        # app's widgets (and later a 10,000-row ledger) in the heap that froze the UI ~100 ms.
        # Frozen objects are skipped by the collector (they live as long as the app anyway).
        gc.freeze()
        self.load_settings()
        self.install_screen(self.batch_screen, "batch")
        self.open_ledger_worker(self.services.ledger_path)
        # Another mrishare (the CLI, a second app) may change the file: read it again when it does.
        self.set_interval(LEDGER_POLL_SECONDS, self._ledger_changed_on_disk)
        self.set_interval(JOBS_POLL_SECONDS, self._jobs_pending)
        if self.study_dir is not None:
            self.open_folder(self.study_dir)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every key of the current screen is also a palette command, plus the app's own."""
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.action in seen or binding.action == "command_palette":
                continue
            seen.add(binding.action)
            node = active.node
            yield SystemCommand(
                binding.description,
                f"key: {self.get_key_display(binding)}",
                lambda node=node, action=binding.action: self.call_later(node.run_action, action),
            )
        yield from super().get_system_commands(screen)

    # -- app actions ----------------------------------------------------------------------------

    def action_help(self) -> None:
        """Show the keys of the screen in front."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_settings(self) -> None:
        """Open the settings form."""
        if not isinstance(self.screen, SettingsScreen):
            self.push_screen(SettingsScreen(self.settings), self._settings_saved)

    def load_settings(self) -> None:
        """Read the saved defaults; they make the run settings unless the command line gave them."""
        from tui.core.settings import UserSettings, load_settings

        try:
            self.user_settings = load_settings()
            if self.settings is None:
                self.settings = self.user_settings.pipeline_settings()
        except MrishareError as error:
            self.notify(f"{error} (saving in Settings, f2, replaces it)", title="Settings not loaded",
                        severity="error", timeout=30)
            self.user_settings = self.user_settings or UserSettings()
            if self.settings is None:
                self.settings = UserSettings(destination=f"folder:{data_dir() / 'outbox'}").pipeline_settings()

    def _settings_saved(self, settings: Any) -> None:
        if settings is not None:
            self.settings = settings
            self.save_settings_worker(settings)

    @work(thread=True, exclusive=True, group="settings", exit_on_error=False)
    def save_settings_worker(self, settings: Any) -> None:
        """Keep the new settings as the defaults of later runs and starts (settings.json)."""
        from tui.core.settings import UserSettings, save_settings

        try:
            self.user_settings = UserSettings.from_pipeline(settings, ledger=self.user_settings.ledger)
            path = save_settings(self.user_settings)
        except MrishareError as error:
            self.notify(str(error), title="Settings used for this session only", severity="error")
            return
        self.notify(f"Settings saved to {path}.")

    def action_show_batch(self) -> None:
        """Bring the batch progress screen to the front (a run survives leaving it)."""
        if self.batch_screen not in self.screen_stack:
            self.push_screen("batch")

    async def action_quit(self) -> None:
        """Quit, asking first when a batch is still running."""
        if not self.batch_running:
            self.exit()
            return
        question = ConfirmScreen(
            "A batch is still running.",
            "Quit now? The current step is cancelled; finished steps stay in the ledger "
            "and the next start resumes from there.",
            yes="Quit",
        )
        self.push_screen(question, self._quit_confirmed)

    def _quit_confirmed(self, yes: bool | None) -> None:
        if yes:
            self._cancel.set()
            self.exit()

    # -- ledger ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing_ledger(self) -> Iterator[Any]:
        """The ledger opened and locked for one change; the lock is released at once after it.

        Holding it only while writing lets `mrishare mail`, `shares extend` or a second app work
        while this one is open; a real conflict (someone writing right now) is a one-line error.
        """
        with self._ledger_lock, self._open_ledger(self.services.ledger_path) as ledger:
            yield ledger

    def _open_ledger(self, path: Path) -> Any:
        """Lock and read the ledger; a stale lock taken over is said here as the CLI says it (notify is
        thread-safe: workers open the ledger)."""
        from tui.core.delivery.ledger import Ledger

        ledger = Ledger.open(path)
        for note in ledger.notes:
            self.notify(note, title="Ledger lock", severity="warning", timeout=15)
        return ledger

    @work(thread=True, exclusive=True, group="ledger", exit_on_error=False)
    def open_ledger_worker(self, path: Path) -> None:
        """Read the ledger's rows (locking it only while reading)."""
        stamp = ledger_stamp(path)
        try:
            with self._open_ledger(path) as ledger:
                rows = ledger.rows()
        except MrishareError as error:
            self.post_message(LedgerLoaded(None, error=f"{error} (it is read again when it changes)", stamp=stamp))
            return
        self.post_message(LedgerLoaded(rows, stamp=stamp))

    @on(LedgerLoaded)
    def _ledger_loaded(self, message: LedgerLoaded) -> None:
        self._ledger_stamp = message.stamp
        if message.error:
            self.notify(message.error, title="Ledger not read", severity="error", timeout=30)
            return
        assert message.rows is not None  # a message without an error carries the rows
        self.ledger_rows = message.rows
        self.ledger_screen.show_rows(message.rows)
        if self.services.check_links and not self._links_checked:
            self._links_checked = True
            self.check_links_worker(message.rows)

    @work(thread=True, exclusive=True, group="link-check", exit_on_error=False)
    def check_links_worker(self, rows: list[Any]) -> None:
        """Ask each destination whether the shared rows' links still live (as `shares list --check` does); write
        the rows whose link is gone, holding the ledger only for that write. A destination that cannot be
        asked is one line and leaves its rows as they are."""
        from tui.core.delivery import shares

        groups = shares.rows_to_check(rows)
        total, done = sum(len(group) for group in groups.values()), 0
        if not total:
            return
        self.post_message(LinksChecking(0, total))
        changed: list[Any] = []
        problems = []
        for group in groups.values():
            try:
                changed += self._link_states(group, done, total)
            except MrishareError as error:
                problems.append(str(error))
            done += len(group)
        if changed:
            try:
                with self.writing_ledger() as ledger:
                    changed = shares.follow_server(ledger, changed)
                    ledger.save()
            except MrishareError as error:
                problems.append(f"{error}; the rows are checked again at the next start")
                changed = []
        self.post_message(LinksChecked(changed, problems))

    def _link_states(self, group: list[Any], before: int, total: int) -> list[Any]:
        """The rows of one destination whose link changed on its server, posting progress meanwhile."""
        from tui.core.delivery import shares

        def progress(event: Event) -> None:
            if isinstance(event, StepProgress):
                self.post_message(LinksChecking(before + event.done, total))

        destination = shares.row_destination(group[0], getattr(self.settings, "credentials", None))
        try:
            return drain(shares.link_states(group, destination), progress)
        finally:
            destination.close()

    @on(LinksChecking)
    def _links_checking(self, message: LinksChecking) -> None:
        self.ledger_screen.links_checking(message.done, message.total)

    @on(LinksChecked)
    def _links_checked_now(self, message: LinksChecked) -> None:
        self.ledger_screen.links_checked(len(message.changed), message.problems)
        for problem in message.problems:
            self.notify(problem, title="Links not checked", severity="warning", timeout=15)
        if message.changed:
            self.reload_ledger()

    def reload_ledger(self) -> None:
        """Read the ledger again and show its rows."""
        self.open_ledger_worker(self.services.ledger_path)

    def _ledger_changed_on_disk(self) -> None:
        if not self.batch_running and ledger_stamp(self.services.ledger_path) != self._ledger_stamp:
            self.reload_ledger()

    def update_row(self, row_id: str, **changes: Any) -> None:
        """Change fields of one ledger row and save; waits for a running batch, which owns the file."""
        self._pending.append((row_id, changes))
        if not self.batch_running:
            self.write_rows_worker()

    @work(thread=True, group="ledger-write", exit_on_error=False)
    def write_rows_worker(self) -> None:
        """Write every pending row change into the ledger file."""
        error = ""
        try:
            with self.writing_ledger() as ledger:
                while self._pending:
                    row_id, changes = self._pending[0]
                    row = ledger.get(row_id)
                    if row is not None:
                        ledger.upsert(dataclasses.replace(row, **changes))
                    self._pending.pop(0)
                ledger.save()
        except MrishareError as failure:  # kept pending: the next change or batch end tries again
            error = f"{failure}; the change is kept and saved with the next one"
        self.post_message(RowActionDone("record", "", error))

    def share_action(self, verb: str, row_id: str, days: int = 0) -> None:
        """Revoke, extend or share again one row (not while a batch writes the ledger)."""
        if self.batch_running:
            self.notify("Wait for the batch to finish (or cancel it) first.", severity="warning")
            return
        self.share_action_worker(verb, row_id, days)

    @work(thread=True, group="row-action", exit_on_error=False)
    def share_action_worker(self, verb: str, row_id: str, days: int) -> None:
        """Revoke, extend or share again through the core, at the row's own destination."""
        from tui.core.delivery import shares

        error = ""
        try:
            with self.writing_ledger() as ledger:
                row = ledger.get(row_id)
                if row is None:
                    raise MrishareError("no such row in the ledger (another mrishare may have deleted it)", row_id)
                destination = shares.row_destination(row, getattr(self.settings, "credentials", None))
                if verb == "revoke":
                    shares.revoke(ledger, row_id, destination)
                elif verb == "extend":
                    shares.extend(ledger, row_id, days, destination)
                else:
                    shares.share_again(ledger, row_id, destination)
        except MrishareError as failure:
            error = str(failure)
        self.post_message(RowActionDone(verb, row_id, error))

    def jobs_action(self, quiet: bool = False) -> None:
        """Ask the server about every processing job and fetch finished results (not while a batch writes)."""
        if self.batch_running:
            if not quiet:
                self.notify("Wait for the batch to finish (or cancel it) first.", severity="warning")
            return
        if not self._jobs_busy:
            self._jobs_busy = True
            self.jobs_worker(quiet)

    def _jobs_pending(self) -> None:
        """Live status: look again while a job of the ledger is queued or running."""
        if any(str(row.job).split(":")[0] in ("queued", "running") for row in self.ledger_rows or []):
            self.jobs_action(quiet=True)

    @work(thread=True, group="jobs", exit_on_error=False)
    def jobs_worker(self, quiet: bool) -> None:
        """Refresh the ledger's Job column; results go to `<data folder>/results/<participant>/<job-id>/`."""
        from tui.core.config import data_dir
        from tui.core.delivery.processing import jobs_summary, track_jobs

        summary, changed, error = "", False, ""
        try:
            credentials = getattr(self.settings, "credentials", None)
            if credentials is None:
                raise MrishareError("processing jobs need a credentials file (see f2)")
            with self.writing_ledger() as ledger:
                before = {row.id: row.job for row in ledger.rows()}
                found = track_jobs(ledger, credentials, data_dir() / "results")
            summary = jobs_summary(found)
            changed = any(before.get(status.row.id) != status.row.job for status in found)
        except MrishareError as failure:
            error = str(failure)
        self.post_message(JobsRefreshed(summary, changed, quiet, error))

    @on(JobsRefreshed)
    def _jobs_refreshed(self, message: JobsRefreshed) -> None:
        self._jobs_busy = False
        if message.error:
            self.notify(message.error, title="Jobs not refreshed", severity="error")
        elif message.changed or not message.quiet:
            self.notify(message.summary, title="Processing jobs")
        if message.changed:
            self.reload_ledger()

    @on(RowActionDone)
    def _row_action_done(self, message: RowActionDone) -> None:
        if message.error:
            self.notify(message.error, title=f"{message.verb} failed", severity="error")
        elif message.verb == "share again":
            self.notify("Row deleted: the next run (r) makes a new package, passphrase and link.")
        elif message.verb != "record":
            self.notify(f"{message.verb}: done.")
        self.reload_ledger()

    # -- scanning -------------------------------------------------------------------------------

    def open_folder(self, root: Path) -> None:
        """Scan a study folder in a worker; its participants join the ledger screen."""
        self.study_dir = root
        self.ledger_screen.scan_started(root)
        start_process_helpers()
        self.scan_worker(root)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def scan_worker(self, root: Path) -> None:
        """Relay the scanner's events, then its result."""
        stream = self.services.scan(root, cancel=self._cancel)
        try:
            while True:
                try:
                    self.post_message(ScanEventArrived(next(stream)))
                except StopIteration as stop:
                    self.post_message(ScanFinished(root, stop.value))
                    return
        except MrishareError as error:
            self.post_message(ScanFinished(root, None, str(error)))

    @on(ScanEventArrived)
    def _scan_event(self, message: ScanEventArrived) -> None:
        self.ledger_screen.scan_progress(message.event)

    @on(ScanFinished)
    def _scan_finished(self, message: ScanFinished) -> None:
        if message.error:
            self.notify(message.error, title="Scan failed", severity="error")
        else:
            self.scan_result = message.result
        self.ledger_screen.show_scan(message.result)

    # -- batch ----------------------------------------------------------------------------------

    @property
    def batch_running(self) -> bool:
        """True while a pipeline worker is busy."""
        return any(w.group == "batch" and w.is_running for w in self.workers)

    def start_batch(self, participants: list[Any]) -> None:
        """Run the pipeline for `participants` and show its progress."""
        if self.batch_running:
            self.notify("A batch is already running; wait for it or cancel it first.", severity="warning")
            return
        if self.ledger_rows is None or self.settings is None:
            self.notify("No ledger or no settings: see the error above, or press f2.", severity="error")
            return
        self._cancel = CancelEvent()
        self.batch_screen.start([p.key for p in participants], self.services.clock())
        self.action_show_batch()
        self.run_batch_worker(participants, self._cancel)

    def cancel_batch(self) -> None:
        """Ask the running batch to stop after its current file."""
        self._cancel.set()

    @work(thread=True, exclusive=True, group="batch", exit_on_error=False)
    def run_batch_worker(self, participants: list[Any], cancel: CancelEvent) -> None:
        """Relay every pipeline event; the stream's return value ends the run."""
        try:
            with self.writing_ledger() as ledger:  # a run writes the ledger at every step: held for the run
                stream = self.services.run_batch(participants, self.settings, ledger, cancel)
                while True:
                    try:
                        self.post_message(BatchEventArrived(next(stream)))
                    except StopIteration as stop:
                        self.post_message(BatchEnded(stop.value, cancel.is_set()))
                        return
        except MrishareError as error:
            self.post_message(BatchEnded(None, cancel.is_set(), str(error)))

    @on(BatchEventArrived)
    def _batch_event(self, message: BatchEventArrived) -> None:
        self.batch_screen.apply(message.event, self.services.clock())

    @on(BatchEnded)
    def _batch_ended(self, message: BatchEnded) -> None:
        self.batch_screen.finish(message.cancelled, message.error)
        if self._pending:
            self.write_rows_worker()
        if message.error:
            self.notify(message.error, title="Batch stopped", severity="error")
        self.reload_ledger()
