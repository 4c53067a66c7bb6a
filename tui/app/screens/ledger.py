"""The start screen: one line per participant from the ledger plus freshly scanned folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label

from tui.app.format import human_size, works_until
from tui.app.screens.confirm import ConfirmScreen
from tui.app.screens.failure import FailureScreen
from tui.app.screens.folder_picker import FolderPickerScreen
from tui.app.screens.participant import ParticipantScreen
from tui.app.screens.reveal import RevealScreen
from tui.app.screens.save_path import SavePathScreen
from tui.app.widgets.virtual_table import VirtualTable
from tui.core.config import site_secret
from tui.core.dicom.keys import participant_key
from tui.core.errors import MrishareError
from tui.core.events import Event, StepNote, StepProgress

if TYPE_CHECKING:
    from textual import getters

    from tui.app.app import TuiApp

SORTS = ("participant", "status", "expires", "last_action")


@dataclass
class Entry:
    """One line of the ledger screen: a ledger row, a scanned participant, or both."""

    id: str
    participant: str
    """What the Participant column shows: the key, or the name once names are shown."""
    name: str
    """The folder name (identifying): shown only after `N`."""
    status: str
    series: int | str
    size: int | None
    link: str = ""
    expires: str = ""
    told: str = ""
    """✓ once the passphrase was told to the participant (the ledger's Communicated column)."""
    last_action: str = ""
    row: Any = None
    scanned: Any = None

    def matches(self, needle: str) -> bool:
        """True if `needle` occurs in any visible column (case-insensitive)."""
        hay = f"{self.participant} {self.status} {self.expires} {self.last_action} {self.link}".lower()
        return needle.lower() in hay


def run_summary(settings: Any) -> str:
    """What a run will do, said before it starts: destination, preset with its options and defacing, link days."""
    profile = settings.profile
    options = ", ".join(sorted(profile.options)) or "none"
    return (f"Destination: {settings.destination or 'from the credentials file'}. "
            f"Preset: {settings.preset} (Annex E options: {options}; defacing: {profile.deface}). "
            f"Links work {settings.expiry_days} full days. Settings (f2) change these.")


def in_study(entry: Entry, study: Path) -> bool:
    """True if the entry's ledger row came from a folder inside `study`."""
    folder = getattr(entry.row, "source_folder", "") if entry.row is not None else ""
    return bool(folder) and Path(folder).is_relative_to(study)


def series_count(participant: Any) -> int:
    """How many series a scanned participant holds over all patients and studies."""
    return sum(1 for _ in participant.series())


def entry_from_row(row: Any, key: str) -> Entry:
    """An Entry for a ledger row, labelled with its participant key."""
    return Entry(
        id=str(row.id),
        participant=key,
        name=str(row.participant),
        status=f"job {str(row.job).split(':')[0]}" if row.job else str(row.status),
        series=row.series if row.series not in (None, "") else "",
        size=row.size if isinstance(row.size, int) else None,
        link=row.link or "",
        expires=works_until(row.expires),
        told="✓" if row.communicated else "",
        last_action=str(row.last_action or ""),
        row=row,
    )


def entry_from_scan(participant: Any) -> Entry:
    """An Entry for a scanned participant that the ledger does not know yet."""
    return Entry(
        id=f"scan:{participant.key}",
        participant=participant.key,
        name=participant.folder.name,
        status="scanned",
        series=series_count(participant),
        size=participant.bytes,
        scanned=participant,
    )


COLUMNS = [
    ("mark", " ", 1),
    ("participant", "Participant", 12),
    ("status", "Status", 12),
    ("series", "Series", 6),
    ("size", "Size", 5),
    ("expires", "Works until", 11),
    ("told", "Told", 4),
    ("last_action", "Last action", 12),
]


class LedgerTable(VirtualTable):
    """The ledger grid (draws only visible rows); its component classes colour statuses from the theme."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "ledger-table--shared",
        "ledger-table--failed",
        "ledger-table--ended",
        "ledger-table--busy",
        "ledger-table--mark",
    }

    BINDINGS = [Binding("enter", "screen.inspect", "Open", id="ledger.inspect")]

    def status_style(self, status: str) -> str:
        """The component class for a status (a processing job's as its done/failed counterpart)."""
        status = {"job done": "shared", "job failed": "failed", "job missing": "failed"}.get(status, status)
        if status == "shared":
            return "ledger-table--shared"
        if status == "failed":
            return "ledger-table--failed"
        if status in ("expired", "revoked"):
            return "ledger-table--ended"
        return "ledger-table--busy" if status not in ("new", "scanned") else ""


class LedgerScreen(Screen[None]):
    """Participants and their shares: filter, sort, select, run, reveal, copy, revoke."""

    if TYPE_CHECKING:
        app = getters.app(TuiApp)  # the screens run only in TuiApp: its attributes, typed

    BINDINGS = [
        Binding("space", "toggle_mark", "Select", id="ledger.select"),
        Binding("slash", "filter", "Filter", id="ledger.filter"),
        Binding("r", "run", "Run", id="ledger.run"),
        Binding("p", "reveal", "Reveal", id="ledger.reveal"),
        Binding("c", "copy_mail", "Copy e-mail text", show=False, id="ledger.copy-mail"),
        Binding("o", "open_folder", "Open folder", show=False, id="ledger.open"),
        Binding("s", "sort", "Sort by next column", show=False, id="ledger.sort"),
        Binding("S", "reverse", "Reverse sort order", show=False, id="ledger.reverse"),
        Binding("a", "mark_all", "Select all shown / none", show=False, id="ledger.select-all"),
        Binding("x", "revoke", "Revoke share", show=False, id="ledger.revoke"),
        Binding("e", "extend", "Extend expiry", show=False, id="ledger.extend"),
        Binding("d", "share_again", "Delete row to share again", show=False, id="ledger.share-again"),
        Binding("f", "fetch_pacs", "Fetch from PACS", show=False, id="ledger.fetch-pacs"),
        Binding("J", "jobs", "Jobs: refresh and fetch", show=False, id="ledger.jobs"),
        Binding("R", "reload", "Reload ledger", show=False, id="ledger.reload"),
        Binding("L", "save_pseudonym_list", "Save pseudonym list…", show=False, id="ledger.pseudonym-list"),
        Binding("N", "toggle_names", "Show/hide folder names", show=False, id="ledger.names"),
        Binding("t", "toggle_study", "This study / every study", show=False, id="ledger.study"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="ledger.clear-filter"),
    ]

    class EntriesBuilt(Message):
        """The lines of the ledger screen are ready."""

        def __init__(self, entries: list[Entry]) -> None:
            super().__init__()
            self.entries = entries

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[Entry] = []
        self.rows: list[Any] = []
        self.scanned: list[Any] = []
        self.marked: set[str] = set()
        self.sort_by = "participant"
        self.reverse = False
        self.show_names = False
        self.all_studies = False
        """False: once a study folder is scanned, show only its participants (t shows every study)."""
        self._shown: list[Entry] = []
        self._scan_note = ""
        self._links_note = ""
        """How the background check of the links with their servers is going (empty before it starts)."""
        self._ready = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="ledger-top"):
            yield Label("mrishare", id="ledger-title")
            yield Label("", id="ledger-status", markup=False)
        yield LedgerTable(COLUMNS, self._cells_at, id="ledger-table")
        yield Label("", id="ledger-detail", markup=False)
        yield Input(placeholder="filter: participant, status, date…", id="ledger-filter")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#ledger-filter").display = False
        self._ready = True
        self._refill()

    # -- data in --------------------------------------------------------------------------------

    def show_rows(self, rows: list[Any]) -> None:
        """Replace the ledger rows (after a load or a change)."""
        self.rows = rows
        self._rebuild()

    def show_scan(self, result: Any) -> None:
        """Add the scanned participants of a finished folder scan."""
        self._scan_note = ""
        if result is not None:
            self.scanned = list(result.participants)
            skipped = len(result.skipped)
            found = len(self.scanned)
            self._scan_note = f"{found} participant{'' if found == 1 else 's'} found" + (
                f", {skipped} skipped" if skipped else "")
        self._rebuild()

    def scan_started(self, root: Path) -> None:
        """Say that a folder is being scanned."""
        self._scan_note = f"scanning {root.name}…"
        self._refresh_status()

    def scan_progress(self, event: Event) -> None:
        """Show how far the scan got."""
        if isinstance(event, StepProgress):
            self._scan_note = f"scanning: {event.done} {event.unit}"
        elif isinstance(event, StepNote) and event.level == "warning":
            self._scan_note = event.message
        self._refresh_status()

    def links_checking(self, done: int, total: int) -> None:
        """Say that the links are being asked about, and how far that got."""
        self._links_note = f"checking links… {done}/{total}"
        self._refresh_status()

    def links_checked(self, changed: int, problems: list[str]) -> None:
        """Say how the link check ended (the changed rows arrive with the next ledger read)."""
        ended = f", {changed} ended" if changed else ""
        self._links_note = ("links checked" + ended) if not problems else f"links not all checked{ended}"
        self._refresh_status()

    def _rebuild(self) -> None:
        """Rebuild the entries off the UI thread (10,000 rows take tens of milliseconds)."""
        self.build_entries_worker(list(self.rows), list(self.scanned), self.show_names)

    @work(thread=True, exclusive=True, group="ledger-entries", exit_on_error=False)
    def build_entries_worker(self, rows: list[Any], scanned: list[Any], show_names: bool) -> None:
        """Join ledger rows and scanned participants on the source folder; label them by key or name."""
        secret = site_secret() if any(row.source_folder for row in rows) else b""
        by_folder = {str(p.folder): p for p in scanned}
        entries = []
        for row in rows:
            key = participant_key(Path(row.source_folder), secret) if row.source_folder else str(row.participant)
            entry = entry_from_row(row, key)
            entry.scanned = by_folder.get(row.source_folder)
            entries.append(entry)
        known = {row.source_folder for row in rows}
        entries += [entry_from_scan(p) for p in scanned if str(p.folder) not in known]
        if show_names:
            for entry in entries:
                entry.participant = entry.name
        self.post_message(self.EntriesBuilt(entries))

    @on(EntriesBuilt)
    def _entries_built(self, message: EntriesBuilt) -> None:
        self.entries = message.entries
        self.marked &= {e.id for e in self.entries}
        self._refill()

    # -- table ----------------------------------------------------------------------------------

    def _refill(self) -> None:
        """Filter and sort the entries; the table draws them as they scroll into view."""
        if not self._ready:
            return
        needle = self.query_one("#ledger-filter", Input).value.strip()
        shown = [e for e in self.entries if e.matches(needle)] if needle else list(self.entries)
        study = self._study()
        if study is not None:
            shown = [e for e in shown if e.scanned is not None or in_study(e, study)]
        shown.sort(key=lambda e: (str(getattr(e, self.sort_by)), e.participant), reverse=self.reverse)
        self._shown = shown
        self.query_one(LedgerTable).set_row_count(len(shown))
        self._show_detail()
        self._refresh_status()

    def _cells_at(self, index: int) -> list[Text]:
        """The cells of shown row `index` (asked for only while it is on screen)."""
        table = self.query_one(LedgerTable)
        entry = self._shown[index]
        status_style = table.status_style(entry.status)
        style = table.get_component_rich_style(status_style, partial=True) if status_style else ""
        mark = Text("●", style=table.get_component_rich_style("ledger-table--mark", partial=True))
        return [
            mark if entry.id in self.marked else Text(" "),
            Text(entry.participant),
            Text(entry.status, style=style),
            Text(str(entry.series), justify="right"),
            Text(human_size(entry.size), justify="right"),
            Text(entry.expires),
            Text(entry.told, justify="center"),
            Text(entry.last_action),
        ]

    def _refresh_status(self) -> None:
        if not self._ready:
            return
        total = len(self.entries)
        shown = len(self._shown)
        parts = [f"{shown}/{total} shown" if shown != total else f"{total} rows"]
        if self.scanned:  # first, so 80 columns never cut it: which rows these are
            parts[0] += " of every study (t)" if self._study() is None else " of this study (t: all)"
        if self.marked:
            parts.append(f"{len(self.marked)} selected")
        if self.sort_by != SORTS[0] or self.reverse:  # the default order goes unsaid: 80 columns are few
            parts.append(f"sort: {self.sort_by.replace('_', ' ')}{' ↑' if self.reverse else ''}")
        if self._scan_note:
            parts.append(self._scan_note)
        if self._links_note:
            parts.append(self._links_note)
        if self.show_names:
            parts.append("NAMES SHOWN")
        self.query_one("#ledger-status", Label).update(" · ".join(parts))

    @property
    def current(self) -> Entry | None:
        """The entry under the cursor."""
        table = self.query_one(LedgerTable)
        if not self._shown or table.cursor_row >= len(self._shown):
            return None
        return self._shown[table.cursor_row]

    @on(VirtualTable.Highlighted)
    def _show_detail(self) -> None:
        entry = self.current
        detail = "" if self.entries else "No participants yet: press o to open a study folder."
        if entry is not None:
            if entry.link:
                detail = f"link: {entry.link}"
            elif entry.row is not None and entry.row.note:
                detail = f"note: {entry.row.note}"
            elif entry.row is not None and entry.row.job:
                detail = f"job {entry.row.job}"
            elif entry.row is not None and entry.last_action:  # e.g. when the server's link went (whole, dated)
                detail = f"{entry.status}: {entry.last_action}"
            elif entry.scanned is not None:
                patients = len(entry.scanned.patients)
                detail = f"{entry.participant}: {patients} patient(s), {entry.scanned.files} files"
        self.query_one("#ledger-detail", Label).update(detail)

    def selection(self) -> list[Entry]:
        """The marked entries, or the one under the cursor when none is marked."""
        if self.marked:
            return [e for e in self.entries if e.id in self.marked]
        return [self.current] if self.current is not None else []

    # -- actions --------------------------------------------------------------------------------

    def action_toggle_mark(self) -> None:
        """Select or unselect the row under the cursor, then move down."""
        entry = self.current
        if entry is None:
            return
        self.marked ^= {entry.id}
        table = self.query_one(LedgerTable)
        table.refresh()
        table.action_move(1)
        self._refresh_status()

    def action_mark_all(self) -> None:
        """Select every shown row, or none if all are selected."""
        ids = {e.id for e in self._shown}
        self.marked = set() if ids <= self.marked else self.marked | ids
        self._refill()

    def action_filter(self) -> None:
        """Show the filter box."""
        box = self.query_one("#ledger-filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """Empty and hide the filter box."""
        box = self.query_one("#ledger-filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.query_one(LedgerTable).focus()
            self._refill()

    @on(Input.Changed, "#ledger-filter")
    def _filter_changed(self) -> None:
        self._refill()

    @on(Input.Submitted, "#ledger-filter")
    def _filter_done(self) -> None:
        self.query_one(LedgerTable).focus()

    def action_sort(self) -> None:
        """Sort by the next column."""
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self._refill()

    def action_reverse(self) -> None:
        """Reverse the sort order."""
        self.reverse = not self.reverse
        self._refill()

    def _study(self) -> Path | None:
        """The scanned study folder whose rows alone are shown, or None when every row is shown."""
        study = getattr(self.app, "study_dir", None)
        return None if self.all_studies or not self.scanned or study is None else Path(study)

    def action_toggle_study(self) -> None:
        """Show only the scanned study's participants, or every row of the ledger."""
        self.all_studies = not self.all_studies
        self._refill()

    def action_toggle_names(self) -> None:
        """Show the (identifying) folder names instead of the participant keys, or hide them again."""
        self.show_names = not self.show_names
        self._rebuild()

    def action_reload(self) -> None:
        """Show the ledger rows again."""
        self.app.reload_ledger()

    def action_open_folder(self) -> None:
        """Pick a study folder with the keyboard and scan it."""
        start = self.app.study_dir or Path.cwd()
        self.app.push_screen(FolderPickerScreen(start), self._folder_picked)

    def _folder_picked(self, folder: Path | None) -> None:
        if folder is not None:
            self.app.open_folder(folder)

    def action_inspect(self) -> None:
        """Open why a row failed or was cancelled, else the participant's series and tags."""
        entry = self.current
        if entry is None:
            return
        if entry.row is not None and (entry.status == "failed" or entry.last_action.startswith("cancelled")):
            notes = self.app.batch_screen.warnings.get(entry.participant, [])
            self.app.push_screen(FailureScreen(entry.participant, entry.row, notes, entry.scanned))
            return
        if entry.scanned is None:
            self.notify("Not scanned in this session: open its study folder first (o).", severity="warning")
            return
        self.app.push_screen(ParticipantScreen(entry.scanned))

    def action_run(self) -> None:
        """Run the pipeline for the selected participants."""
        chosen = [e for e in self.selection() if e.scanned is not None]
        if not chosen:
            self.notify("Nothing to run: select scanned participants (open a folder with o).", severity="warning")
            return
        settings = self.app.settings
        if settings is None:
            self.notify("No settings: press f2.", severity="error")
            return
        count = f"{len(chosen)} participant{'' if len(chosen) == 1 else 's'}"
        self._confirm_then(f"Share {count}?", run_summary(settings), "Share",
                           lambda: self.app.start_batch([e.scanned for e in chosen]))

    def action_save_pseudonym_list(self) -> None:
        """Write PatientID,Pseudonym of the selected (else all) scanned participants to a local 0600 file."""
        from tui.core.deid.pseudonym_list import default_list_path

        chosen = [e for e in (self.selection() if self.marked else self.entries) if e.scanned is not None]
        if not chosen or self.app.settings is None:
            self.notify("No scanned participants: open a study folder first (o).", severity="warning")
            return
        note = (f"{len(chosen)} participants. The list re-identifies them: it stays on this machine (mode 0600), "
                "never in a package or on a server.")
        self.app.push_screen(SavePathScreen("Save pseudonym list", note, default_list_path()),
                             lambda path: self._save_pseudonym_list(path, chosen))

    def _save_pseudonym_list(self, path: Path | None, chosen: list[Entry]) -> None:
        from tui.core.deid.pseudonym_list import entries_for, released_folders, write_pseudonym_list

        if path is None:
            return
        settings = self.app.settings
        failures = {e.scanned.key: e.row.note or "failed" for e in chosen if e.row is not None and e.status == "failed"}
        used = {e.scanned.key: e.row.pseudonym for e in chosen if e.row is not None and e.row.pseudonym}
        try:
            written = write_pseudonym_list(path, entries_for([e.scanned for e in chosen], settings.pseudonym,
                                                             failures, used),
                                           released_folders(settings), settings.pseudonym)
        except MrishareError as error:
            self.notify(str(error), title="Pseudonym list not saved", severity="error")
            return
        self.notify(f"{len(chosen)} participants ({len(failures)} failed) → {written}", title="Pseudonym list saved")

    def _entry_with_row(self, need_passphrase: bool = False) -> Entry | None:
        entry = self.current
        if entry is None or entry.row is None:
            self.notify("This participant has no share yet: run the pipeline first (r).", severity="warning")
            return None
        if need_passphrase and not entry.row.passphrase:
            self.notify("This row has no passphrase (not packed yet).", severity="warning")
            return None
        return entry

    def action_reveal(self) -> None:
        """Show the passphrase of the highlighted share in big letters."""
        entry = self._entry_with_row(need_passphrase=True)
        if entry is not None:
            self.app.push_screen(RevealScreen(entry.row, entry.participant))

    def action_copy_mail(self) -> None:
        """Copy the e-mail text (link, expiry, instructions; never the passphrase) via OSC 52."""
        from tui.core.delivery.mailtext import mail_text

        entry = self._entry_with_row()
        if entry is None:
            return
        if not entry.row.link:
            self.notify(f"No link yet (status {entry.status}).", severity="warning")
            return
        lab = getattr(self.app.settings, "lab_name", "")  # signs the e-mail, as the README names the lab
        subject, body = mail_text(entry.row, self.app.services.mail_language, lab)
        self.app.copy_to_clipboard(f"Subject: {subject}\n\n{body}")
        self.notify(f"E-mail text for {entry.participant} copied (without the passphrase).")

    def action_revoke(self) -> None:
        """Revoke the share after saying what happens remotely."""
        entry = self._entry_with_row()
        if entry is not None:
            row = entry.row
            self._confirm_then(
                "Revoke this share?",
                f"The share link for {entry.participant} is deleted on the server together with the "
                "uploaded package; the link stops working at once. The row stays, marked revoked; "
                "the next run for this participant makes a new package, passphrase and link.",
                "Revoke",
                lambda: self.app.share_action("revoke", row.id),
            )

    def action_extend(self) -> None:
        """Ask for the days the link keeps working (showing the last day), then push the expiry out."""
        from tui.app.screens.extend import ExtendScreen

        entry = self._entry_with_row()
        if entry is None:
            return
        row = entry.row
        days = int(getattr(self.app.settings, "expiry_days", 14) or 14)

        def chosen(days: int | None) -> None:
            if days:
                self.app.share_action("extend", row.id, days)

        self.app.push_screen(ExtendScreen(entry.participant, self.app.services.clock().date(), days,
                                          works_until(row.expires)), chosen)

    def action_share_again(self) -> None:
        """Delete the row after saying what happens remotely; the participant can then be shared again."""
        from tui.core.delivery.shares import where

        entry = self._entry_with_row()
        if entry is None:
            return
        row = entry.row
        remote = (f"Its current link stops working now and the package is deleted from {where(row)}. "
                  if row.remote_path else "Nothing of it was uploaded. ")
        self._confirm_then(
            "Delete this row and share again?",
            f"The row of {entry.participant} is deleted from the share list. {remote}"
            "The next run for this participant makes a new package with a new passphrase and a new link.",
            "Delete row",
            lambda: self.app.share_action("share again", row.id),
        )

    def action_jobs(self) -> None:
        """Ask the server about every processing job now and fetch finished results (the app also looks every
        few seconds while one is queued or running)."""
        self.app.jobs_action()

    def action_fetch_pacs(self) -> None:
        """Retrieve a PatientID's studies from a DICOM node; the new participant joins the list."""
        from tui.app.screens.pacs import PacsScreen

        def fetched(participants: list[Any] | None) -> None:
            if participants:
                self.scanned = [*self.scanned, *participants]
                self._rebuild()

        self.app.push_screen(PacsScreen(), fetched)

    def _confirm_then(self, title: str, text: str, yes: str, then: Any) -> None:
        def done(ok: bool | None) -> None:
            if ok:
                then()

        self.app.push_screen(ConfirmScreen(title, text, yes=yes), done)

    def go_to(self, participant: str) -> None:
        """Bring the ledger to the front with the cursor on `participant`."""
        while self.app.screen is not self and len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        self.action_clear_filter()
        for index, entry in enumerate(self._shown):
            if entry.participant == participant:
                self.query_one(LedgerTable).move_cursor(index)
                return
