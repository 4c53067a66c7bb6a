"""A read-only table that draws only the rows on screen, so 10,000 rows cost nothing to show."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Column = tuple[str, str, int]
"""(key, heading, width in cells)."""


class VirtualTable(ScrollView, can_focus=True):
    """Fixed-width columns, a header, a row cursor; cells come from `cells(index)` when drawn.

    DataTable builds and measures every cell up front (seconds for 10,000 rows); this asks
    only for the ~20 visible rows per frame (the Line API), like a log viewer does.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--zebra",
    }
    DEFAULT_CSS = """
    VirtualTable { background: $surface; }
    VirtualTable > .virtual-table--header { text-style: bold; color: $text-accent; background: $panel; }
    VirtualTable > .virtual-table--cursor { background: $block-cursor-blurred-background; }
    VirtualTable:focus > .virtual-table--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold;
    }
    VirtualTable > .virtual-table--zebra { background: $surface-lighten-1; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False, id="table.up"),
        Binding("down", "move(1)", "Down", show=False, id="table.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="table.page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="table.page-down"),
        Binding("home", "move(-1_000_000_000)", "First row", show=False, id="table.home"),
        Binding("end", "move(1_000_000_000)", "Last row", show=False, id="table.end"),
    ]

    cursor_row: reactive[int] = reactive(0)

    class Highlighted(Message):
        """The cursor moved to `row`."""

        def __init__(self, table: VirtualTable, row: int) -> None:
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> VirtualTable:
            """The table whose cursor moved."""
            return self.table

    def __init__(self, columns: list[Column], cells: Callable[[int], list[Text]], id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = columns
        self._cells = cells
        self.row_count = 0
        self._width = sum(width + 2 for _, _, width in columns)

    def set_row_count(self, count: int) -> None:
        """Say how many rows there are now (cells are asked for again when drawn)."""
        self.row_count = count
        self.virtual_size = Size(self._width, count + 1)
        self.cursor_row = max(0, min(self.cursor_row, count - 1))
        self.refresh()

    def move_cursor(self, row: int) -> None:
        """Put the cursor on `row` (clamped) and scroll it into view."""
        self.cursor_row = max(0, min(row, self.row_count - 1))

    def watch_cursor_row(self, row: int) -> None:
        visible = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)
        self.refresh()
        self.post_message(self.Highlighted(self, row))

    def action_move(self, step: int) -> None:
        """Move the cursor by `step` rows."""
        if self.row_count:
            self.move_cursor(self.cursor_row + step)

    def action_page(self, pages: int) -> None:
        """Move the cursor by a screenful."""
        self.action_move(pages * max(1, self.size.height - 1))

    def _line(self, cells: list[Text], base: Style) -> Strip:
        line = Text()
        for cell, (_, _, width) in zip(cells, self.columns, strict=False):
            text = cell.copy()
            text.truncate(width, overflow="ellipsis")
            pad = width - text.cell_len
            line.append(" ")
            if cell.justify == "right":
                line.append(" " * pad)
                line.append_text(text)
            else:
                line.append_text(text)
                line.append(" " * pad)
            line.append(" ")
        strip = Strip(line.render(self.app.console)).apply_style(base)
        return strip.adjust_cell_length(self.size.width, base)

    def render_line(self, y: int) -> Strip:
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("virtual-table--header")
            return self._line([Text(label) for _, label, _ in self.columns], style)
        index = int(self.scroll_offset.y) + y - 1
        if index >= self.row_count:
            return Strip.blank(self.size.width, base)
        if index == self.cursor_row:
            style = base + self.get_component_rich_style("virtual-table--cursor")
        elif index % 2:
            style = base + self.get_component_rich_style("virtual-table--zebra")
        else:
            style = base
        return self._line(self._cells(index), style)
