"""One participant: its series, the tag table of the highlighted series, and an image preview."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Label, SelectionList
from textual.widgets.selection_list import Selection

from tui.app.format import human_size
from tui.app.screens.confirm import ConfirmScreen
from tui.app.screens.edit_element import EditElementScreen
from tui.app.widgets.image_preview import ImagePreview
from tui.app.widgets.tag_table import TagGrid, TagTable
from tui.core.deid.quarantine import protocol_page
from tui.core.dicom.annex_e import OPTIONS
from tui.core.errors import MrishareError
from tui.core.events import drain
from tui.core.presets import PROTOCOL_PAGES

if TYPE_CHECKING:
    from tui.core.dicom.tag_edit import Edit

OPTION_LABELS = {
    "rtn_safe_priv": "Retain safe private",
    "rtn_uids": "Retain UIDs",
    "rtn_dev_id": "Retain device identity",
    "rtn_inst_id": "Retain institution identity",
    "rtn_pat_chars": "Retain patient characteristics",
    "rtn_long_full_dates": "Retain full dates",
    "rtn_long_modif_dates": "Retain modified dates",
    "clean_desc": "Clean descriptors",
    "clean_struct_cont": "Clean structured content",
    "clean_graph": "Clean graphics",
}
"""PS3.15 Table E.1-1 option column -> the option's name in the standard."""


def dimensions(series: Any) -> str:
    """cols x rows x slices (or frames)."""
    depth = max(series.slices, series.frames)
    return f"{series.cols or '?'}×{series.rows or '?'}×{depth}"


def series_flags(series: Any, found: dict[str, set[str]], pages: tuple[str, ...] = PROTOCOL_PAGES,
                 released: bool = False) -> str:
    """B burned-in, Q will be quarantined, G incomplete (gap or unreadable file: withheld; R: shared anyway,
    the gap recorded), P private tags, I identifying values (once tags were read)."""
    flags = ""
    if series.burned_in and series.burned_in.upper() != "NO":
        flags += "B"
    if getattr(series, "problems", None):
        flags += "GR" if released else "G"
    if getattr(series, "quarantine", False) or protocol_page(series.description, pages):
        flags += "Q"
    seen = found.get(series.key, set())
    flags += "P" if "private" in seen else ""
    flags += "I" if "identifying" in seen else ""
    return flags


class ParticipantScreen(Screen[None]):
    """Series on top, the highlighted series' tags (or pixels) below, profile options on the right."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="participant.back"),
        Binding("slash", "filter", "Filter", show=False, id="participant.filter"),  # the footer fits 80 columns
        Binding("i", "identifying", "Identifying", id="participant.identifying"),
        Binding("m", "reveal_values", "Unmask", id="participant.unmask"),
        Binding("o", "options", "Options", id="participant.options"),
        Binding("v", "view", "Image", id="participant.view"),
        Binding("e", "edit", "Edit value", show=False, id="participant.edit"),
        Binding("plus", "add", "Add element", show=False, id="participant.add"),
        Binding("delete", "delete", "Delete element", show=False, id="participant.delete"),
        Binding("W", "save_copy", "Save edited copy", show=False, id="participant.save-copy"),
        Binding("P", "choose_patient", "Choose patient", show=False, id="participant.choose-patient"),
        Binding("A", "release_series", "Share incomplete series anyway", show=False, id="participant.release"),
        Binding("tab", "app.focus_next", "Next pane", show=False, id="participant.next-pane"),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False, id="participant.previous-pane"),
    ]

    class TagsRead(Message):
        """A series' first header was read and flattened (or `error` says why not)."""

        def __init__(self, series_uid: str, header: Any, rows: list[Any], error: str = "") -> None:
            super().__init__()
            self.series_uid = series_uid
            self.header = header
            self.rows = rows
            self.error = error

    class CopySaved(Message):
        """An edited copy was written (or `error` says why not)."""

        def __init__(self, folder: Path, count: int, error: str = "") -> None:
            super().__init__()
            self.folder = folder
            self.count = count
            self.error = error

    def __init__(self, participant: Any) -> None:
        super().__init__()
        self.participant = participant
        self.series = list(participant.series())
        self.options: frozenset[str] = frozenset()
        self.found: dict[str, set[str]] = {}
        self._header: Any = None
        self._header_uid = ""

    def compose(self) -> ComposeResult:
        p = self.participant
        warn = []
        if p.mixed_patients and not getattr(p, "chosen", False):
            warn.append(f"{len(p.patients)} patients in one folder! P chooses one")
        if p.misfiled:
            warn.append(f"{len(p.misfiled)} misfiled")
        if p.skipped:
            warn.append(f"{len(p.skipped)} skipped")
        yield Label(
            f"{p.key} · {len(self.series)} series · {p.files} files" + ("  ⚠ " + ", ".join(warn) if warn else ""),
            id="participant-title",
            markup=False,
        )
        yield DataTable(id="series-table", cursor_type="row")
        with Horizontal(id="participant-lower"):
            with ContentSwitcher(initial="tag-table", id="participant-switcher"):
                yield TagTable(id="tag-table")
                yield ImagePreview(id="image-preview")
            with Vertical(id="options-panel"):
                yield Label("Profile options", id="options-title")
                yield SelectionList[str](
                    *(Selection(OPTION_LABELS.get(o, o), o, False) for o in OPTIONS), id="options-list"
                )
        yield Footer(compact=True)

    @property
    def pages(self) -> tuple[str, ...]:
        """SeriesDescriptions withheld as protocol/report pages (the run settings', else the default list)."""
        settings = self.app.settings  # type: ignore[attr-defined]
        return settings.protocol_pages if settings is not None else PROTOCOL_PAGES

    def action_choose_patient(self) -> None:
        """Pick which patient of a mixed folder is shared; the others' files are quarantined."""
        from tui.app.screens.choose_patient import ChoosePatientScreen

        if not self.participant.mixed_patients:
            self.notify("This folder holds one patient.")
            return

        def chosen(index: int | None) -> None:
            if index:
                from tui.core.dicom.completeness import choose_patient

                picked = choose_patient(self.participant, index)
                # in place: the ledger screen's entry holds the same participant, so the batch sees the choice
                self.participant.patients, self.participant.misfiled = picked.patients, picked.misfiled
                self.participant.chosen = True
                self.notify(f"Patient {index} will be shared; {len(picked.misfiled)} other files quarantined.")

        self.app.push_screen(ChoosePatientScreen(self.participant), chosen)

    def action_release_series(self) -> None:
        """Share the highlighted incomplete series anyway (its gap recorded in the README and the audit), or
        withhold it again: `--allow-incomplete` for one series."""
        series = self.current_series
        if series is None or not series.problems:
            self.notify("This series is whole: nothing is withheld.")
            return
        released = self.participant.released  # in place: the batch runs this same participant
        if series.key in released:
            released.discard(series.key)
            self.notify(f"Series {series.number or ''} is withheld again.")
        else:
            released.add(series.key)
            self.notify(f"Series {series.number or ''} will be shared with its gap recorded in the README and the "
                        f"audit: {'; '.join(p.summary for p in series.problems)}", severity="warning")
        self._show_flags(series)

    def _show_flags(self, series: Any) -> None:
        flags = series_flags(series, self.found, self.pages, series.key in self.participant.released)
        self.query_one("#series-table", DataTable).update_cell(series.key, "flags", Text(flags))

    def on_mount(self) -> None:
        table = self.query_one("#series-table", DataTable)
        for key, label, width in (
            ("number", "#", 4),
            ("modality", "Mod", 3),
            ("description", "Description", 24),
            ("files", "Files", 5),
            ("size", "Size", 5),
            ("dims", "Dimensions", 11),
            ("flags", "Flags", 5),
        ):
            table.add_column(label, key=key, width=width)
        for series in self.series:
            table.add_row(
                Text(str(series.number if series.number is not None else ""), justify="right"),
                Text(series.modality),
                Text(series.description),
                Text(str(len(series.files)), justify="right"),
                Text(human_size(series.bytes), justify="right"),
                Text(dimensions(series)),
                Text(series_flags(series, self.found, self.pages, series.key in self.participant.released)),
                key=series.key,
            )
        self.query_one("#options-panel").display = False
        settings = self.app.settings  # type: ignore[attr-defined]
        if settings is not None:
            self.options = frozenset(settings.profile.options)
            chooser = self.query_one("#options-list", SelectionList)
            for option in self.options:
                chooser.select(option)
        self.query_one("#tag-table").border_title = "Tags"
        self.query_one("#image-preview").border_title = "Image"
        table.focus()
        if self.series:
            self._open_series(self.series[0])

    @property
    def current_series(self) -> Any:
        """The highlighted series."""
        table = self.query_one("#series-table", DataTable)
        return self.series[table.cursor_row] if self.series and table.cursor_row < len(self.series) else None

    @on(DataTable.RowHighlighted, "#series-table")
    def _series_highlighted(self) -> None:
        series = self.current_series
        if series is not None and series.key != self._header_uid:
            self._open_series(series)

    def _open_series(self, series: Any) -> None:
        self._header_uid = series.key
        self._header = None
        table = self.query_one(TagTable)
        if table.edits:
            self.notify(f"{len(table.edits)} unsaved edits dropped (W saves a copy first).", severity="warning")
            table.edits = []
        page = protocol_page(series.description, self.pages)
        self.query_one(TagTable).border_title = f"Tags · series {series.number or ''} {series.modality}" + (
            f" · withheld: protocol/report page ({page})" if page else "")
        self.read_tags_worker(series, self.options)
        preview = self.query_one(ImagePreview)
        if self.query_one(ContentSwitcher).current == "image-preview":
            preview.load(series.files)
        else:
            preview.volume = None

    @work(thread=True, exclusive=True, group="tags", exit_on_error=False)
    def read_tags_worker(self, series: Any, options: frozenset[str], header: Any = None) -> None:
        """Read the series' first header (unless given) and flatten it under `options`."""
        from tui.core.dicom.scan import Skipped, read_header
        from tui.core.dicom.tags import flatten

        if header is None:
            header = read_header(series.files[0])
        if isinstance(header, Skipped):
            self.post_message(self.TagsRead(series.key, None, [], header.reason))
            return
        self.post_message(self.TagsRead(series.key, header, flatten(header, options)))

    @on(TagsRead)
    def _tags_read(self, message: TagsRead) -> None:
        if message.series_uid != self._header_uid:
            return
        if message.error:
            self.notify(message.error, title="Header not read", severity="error")
        self._header = message.header
        self.query_one(TagTable).show(message.rows)
        seen = set().union(*(row.flags for row in message.rows)) if message.rows else set()
        self.found[message.series_uid] = seen
        series = self.current_series
        if series is not None and series.key == message.series_uid:
            self._show_flags(series)

    @on(SelectionList.SelectedChanged, "#options-list")
    def _options_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        """Recolour the tag table at once under the new options."""
        self.options = frozenset(event.selection_list.selected)
        series = self.current_series
        if series is not None and self._header is not None:
            self.read_tags_worker(series, self.options, self._header)

    # -- actions --------------------------------------------------------------------------------

    def action_back(self) -> None:
        """Close the filter if open, otherwise go back to the ledger."""
        if not self.query_one(TagTable).close_filter():
            self.dismiss()

    def action_filter(self) -> None:
        """Filter the tags by text."""
        self.query_one(ContentSwitcher).current = "tag-table"
        self.query_one(TagTable).open_filter()

    def action_identifying(self) -> None:
        """Show only the identifying tags, or all."""
        self.query_one(TagTable).toggle_identifying()

    def action_reveal_values(self) -> None:
        """Show identifying values in clear, or mask them again."""
        self.query_one(TagTable).toggle_reveal()

    def action_options(self) -> None:
        """Show the profile options; toggling one recolours the table."""
        panel = self.query_one("#options-panel")
        panel.display = not panel.display
        if panel.display:
            self.query_one("#options-list").focus()
        else:
            self.query_one(TagGrid).focus()

    def action_view(self) -> None:
        """Switch the lower pane between tags and the image preview."""
        switcher = self.query_one(ContentSwitcher)
        preview = self.query_one(ImagePreview)
        if switcher.current == "tag-table":
            switcher.current = "image-preview"
            series = self.current_series
            if series is not None and preview.volume is None:
                preview.load(series.files)
            preview.focus()
        else:
            switcher.current = "tag-table"
            self.query_one(TagGrid).focus()

    # -- tag editing (a copy with new SOP Instance UIDs; originals never change) -----------------

    def _editable_row(self, sequence_too: bool = False) -> Any:
        """The highlighted element if it can be changed (any depth; not file meta; a sequence only as a whole)."""
        row = self.query_one(TagTable).current
        if row is None or (row.depth == 0 and row.tag >> 16 == 0x0002) or (row.vr == "SQ" and not sequence_too):
            self.notify("File meta elements cannot be edited, nor a sequence's value (edit the elements inside it).",
                        severity="warning")
            return None
        return row

    def action_edit(self) -> None:
        """Change the highlighted element's value (at any depth)."""
        from tui.core.dicom.tag_edit import parent_of

        row = self._editable_row()
        if row is not None:
            self.app.push_screen(EditElementScreen(row.tag, row.keyword_path, row.value, parent_of(row.path)),
                                 self._edited)

    def action_add(self) -> None:
        """Add an element by tag or keyword beside the highlighted one (in the same sequence item)."""
        from tui.core.dicom.tag_edit import parent_of

        row = self.query_one(TagTable).current
        if row is None or row.depth == 0:
            self.app.push_screen(EditElementScreen(), self._edited)
            return
        where = row.keyword_path[: row.keyword_path.rfind(".")]
        self.app.push_screen(EditElementScreen(parent=parent_of(row.path), where=where), self._edited)

    def _edited(self, edit: Edit | None) -> None:
        if edit is not None:
            self.query_one(TagTable).add_edit(edit)

    def action_delete(self) -> None:
        """Delete the highlighted element (a sequence with its items), warning first if it is required."""
        from tui.core.dicom.tag_edit import Edit, parent_of, required  # pydicom only once an edit is made

        row = self._editable_row(sequence_too=True)
        if row is None:
            return
        sop_class = str(self._header.get("SOPClassUID", "")) if self._header is not None else None
        deletion = Edit(row.tag, None, parent=parent_of(row.path))
        why = required(row.tag, sop_class, deletion.parent)
        if why is None:
            self._edited(deletion)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._edited(deletion)

        self.app.push_screen(ConfirmScreen(
            f"{row.name} is required ({why}).",
            "Without it the edited copy is not a valid DICOM object of this kind; other programs may refuse it. "
            "Delete it anyway?", yes="Delete"), answered)

    def action_save_copy(self) -> None:
        """Write the series with the edits into a sibling folder, each file with a new SOP Instance UID."""
        edits = self.query_one(TagTable).edits
        series = self.current_series
        if not edits or series is None:
            self.notify("No edits to save (e edit · + add · delete remove).")
            return
        source = Path(series.files[0]).parent
        target = source.parent / f"{source.name}-edited"

        def answered(yes: bool | None) -> None:
            if yes:
                self.save_copy_worker(list(series.files), list(edits), target)

        self.app.push_screen(ConfirmScreen(
            "Save an edited copy?",
            f"{len(series.files)} files with {len(edits)} edits and new SOP Instance UIDs go to {target}. "
            "The original files stay as they are.", yes="Save copy"), answered)

    @work(thread=True, exclusive=True, group="save-copy", exit_on_error=False)
    def save_copy_worker(self, files: list[Path], edits: list[Edit], target: Path) -> None:
        """Write the copy; say how it went."""
        from tui.core.dicom.tag_edit import save_edited_copy

        try:
            written = drain(save_edited_copy(files, edits, target))
        except MrishareError as error:
            self.post_message(self.CopySaved(target, 0, str(error)))
            return
        self.post_message(self.CopySaved(target, len(written)))

    @on(CopySaved)
    def _copy_saved(self, message: CopySaved) -> None:
        if message.error:
            self.notify(message.error, title="Copy not saved", severity="error")
            return
        self.query_one(TagTable).clear_edits()
        self.notify(f"Saved {message.count} files to {message.folder.name}.")
