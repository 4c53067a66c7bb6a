"""The tag table: every element with its Annex E action, coloured, masked until asked, filterable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Label

if TYPE_CHECKING:
    from tui.core.dicom.tag_edit import Edit
    from tui.core.dicom.tags import TagRow

ACTIONS = {
    "X": ("remove", "removed"),
    "Z": ("zero", "emptied"),
    "D": ("dummy", "dummy"),
    "U": ("uid", "new UID"),
    "C": ("clean", "cleaned"),
    "K": ("keep", "kept"),
}
"""PS3.15 Table E.1-1a action code -> (component class suffix, legend word)."""
WIDE = 72
"""Below this many cells the Tag and VR columns give way, so Keyword, Act, Value and After stay readable."""


def column_layout(width: int) -> list[tuple[str, str, int]]:
    """(key, label, width) of each column for a grid `width` cells wide; Keyword, Value and After share the rest."""
    fixed = [("tag", "Tag", 11), ("vr", "VR", 2), ("action", "Act", 3)] if width >= WIDE else [("action", "Act", 3)]
    columns = len(fixed) + 3
    rest = max(18, width - sum(w for _, _, w in fixed) - 2 * columns - 2)  # 1 cell padding each side; scrollbar
    keyword, value = rest * 2 // 5, rest * 3 // 10
    widths = {"keyword": keyword, "value": value, "after": rest - keyword - value, **{k: w for k, _, w in fixed}}
    order = [("tag", "Tag"), ("keyword", "Keyword"), ("vr", "VR"), ("action", "Act"), ("value", "Value"),
             ("after", "After")]
    return [(key, label, widths[key]) for key, label in order if key in widths]


class TagGrid(DataTable[Any]):
    """The grid of tags; component classes give each Annex E action its theme colour."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {f"tag-grid--{name}" for name, _ in ACTIONS.values()} | {
        "tag-grid--private",
        "tag-grid--masked",
        "tag-grid--edited",
    }

    def action_style(self, action: str) -> Any:
        """The rich style of an action code."""
        name = ACTIONS.get(action[:1], ("keep", ""))[0]
        return self.get_component_rich_style(f"tag-grid--{name}", partial=True)


class TagTable(Vertical):
    """Rows from `tui.core.dicom.tags.flatten`, with a text filter, an identifying-only toggle and masking."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[TagRow] = []
        self.shown: list[TagRow] = []
        self.only_identifying = False
        self.revealed = False
        self.edits: list[Edit] = []
        self._layout_width = 0

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter tags: keyword, tag, value…", id="tag-filter")
        yield TagGrid(id="tag-grid", cursor_type="row", zebra_stripes=False)
        yield Label("", id="tag-legend")

    def on_mount(self) -> None:
        grid = self.query_one(TagGrid)
        self._lay_out(grid.size.width or 80)
        self.query_one("#tag-filter").display = False
        legend = Text("")
        for code, (_, word) in ACTIONS.items():
            legend.append(f" {code}", style=grid.action_style(code) + Style(bold=True))
            legend.append(f" {word} ")
        legend.append(" ? review")
        self.query_one("#tag-legend", Label).update(legend)

    def on_resize(self) -> None:
        """Give Keyword, Value and After the width there is (the options panel takes some at 80 columns)."""
        width = self.query_one(TagGrid).size.width
        if width and width != self._layout_width:
            self._lay_out(width)
            self._refill()

    def _lay_out(self, width: int) -> None:
        grid = self.query_one(TagGrid)
        self._layout_width = width
        grid.clear(columns=True)
        for key, label, cells in column_layout(width):
            grid.add_column(label, key=key, width=cells)

    def show(self, rows: list[TagRow]) -> None:
        """Replace the rows (a new series, or new options), keeping the cursor line."""
        self.rows = rows
        self._refill()

    def add_edit(self, edit: Edit) -> None:
        """Queue a hand edit (shown at once; written only by saving a copy)."""
        self.edits = [e for e in self.edits if e.path != edit.path] + [edit]
        self._refill()

    def clear_edits(self) -> None:
        """Forget the queued edits (after saving, or for another series)."""
        self.edits = []
        self._refill()

    def toggle_identifying(self) -> None:
        """Show only identifying rows, or all."""
        self.only_identifying = not self.only_identifying
        self._refill()

    def toggle_reveal(self) -> None:
        """Show identifying values in clear, or masked again."""
        self.revealed = not self.revealed
        self._refill()

    def open_filter(self) -> None:
        """Show and focus the filter box."""
        box = self.query_one("#tag-filter", Input)
        box.display = True
        box.focus()

    def close_filter(self) -> bool:
        """Empty and hide the filter box; False if it was not open."""
        box = self.query_one("#tag-filter", Input)
        if not box.display:
            return False
        box.value = ""
        box.display = False
        self.query_one(TagGrid).focus()
        self._refill()
        return True

    @on(Input.Changed, "#tag-filter")
    def _filter_changed(self) -> None:
        self._refill()

    @on(Input.Submitted, "#tag-filter")
    def _filter_done(self) -> None:
        self.query_one(TagGrid).focus()

    def value_text(self, row: TagRow) -> str:
        """The value as shown: masked if identifying and not revealed."""
        from tui.core.dicom.tag_view import shown_value  # loaded with the rows already (they come from tags.flatten)

        return shown_value(row, self.revealed)

    def _refill(self) -> None:
        needle = self.query_one("#tag-filter", Input).value.strip().lower()
        rows = [r for r in self.rows if "identifying" in r.flags] if self.only_identifying else self.rows
        if needle:
            rows = [r for r in rows if needle in f"{r.path} {r.keyword_path} {r.vr} {self.value_text(r)}".lower()]
        self.shown = rows
        grid = self.query_one(TagGrid)
        cursor = grid.cursor_row
        grid.clear()
        private = grid.get_component_rich_style("tag-grid--private", partial=True)
        masked = grid.get_component_rich_style("tag-grid--masked", partial=True)
        edited = grid.get_component_rich_style("tag-grid--edited", partial=True)
        by_path = {e.path: e for e in self.edits}
        known = {r.path for r in self.rows}
        keys = [str(column.key.value) for column in grid.ordered_columns]
        from tui.core.dicom.tag_view import after_value

        for row in rows:
            style = grid.action_style(row.decision.action)
            edit = by_path.get(row.path)
            value = self.value_text(row)
            if edit is not None:
                value_cell = Text("‹deleted›" if edit.value is None else f"✎ {edit.value}", style=edited)
            else:
                value_cell = Text(value, style=masked if value != row.value else "")
            cells = {
                "tag": Text(f"({row.tag >> 16:04X},{row.tag & 0xFFFF:04X})", style=style),
                "keyword": Text("›" * row.depth + row.name, style=private if "private" in row.flags else ""),
                "vr": Text(row.vr),
                "value": value_cell,
                "action": Text(row.decision.action + ("?" if row.decision.review else ""), style=style),
                "after": Text(after_value(row, self.revealed) if edit is None else value_cell.plain, style=style),
            }
            grid.add_row(*(cells[key] for key in keys))
        for edit in self.edits:
            if edit.path not in known and edit.value is not None:
                cells = {"tag": Text(f"({edit.tag >> 16:04X},{edit.tag & 0xFFFF:04X})", style=edited),
                         "keyword": Text("+ added" + (f" in {edit.parent}" if edit.parent else ""), style=edited),
                         "vr": Text(edit.vr), "value": Text(f"✎ {edit.value}", style=edited),
                         "action": Text("+", style=edited), "after": Text(edit.value, style=edited)}
                grid.add_row(*(cells[key] for key in keys))
        if rows:
            grid.move_cursor(row=min(cursor, len(rows) - 1), animate=False)
        counts = f"{len(rows)}/{len(self.rows)}" if len(rows) != len(self.rows) else str(len(rows))
        self.border_subtitle = (
            f"{counts} tags"
            + (" · identifying only" if self.only_identifying else "")
            + (" · values shown" if self.revealed else "")
            + (f" · {len(self.edits)} edits, W saves a copy" if self.edits else "")
        )

    @property
    def current(self) -> TagRow | None:
        """The row under the cursor."""
        grid = self.query_one(TagGrid)
        return self.shown[grid.cursor_row] if self.shown and grid.cursor_row < len(self.shown) else None
