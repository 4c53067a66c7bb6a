"""F1 / ?: the keys of the screen behind, with what they do."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Label


class HelpScreen(ModalScreen[None]):
    """Lists every key of the screen it was opened from (footer keys and the rest)."""

    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, behind: Screen[Any]) -> None:
        super().__init__()
        ranked: dict[tuple[str, str], int] = {}
        for active in behind.active_bindings.values():
            binding = active.binding
            if binding.description:
                line = (behind.app.get_key_display(binding), binding.description)
                ranked.setdefault(line, self._rank(active.node, behind, binding.show))
        self._keys = sorted(ranked, key=ranked.__getitem__)
        self._title = f"Keys: {behind.__class__.__name__.removesuffix('Screen').lower()}"

    @staticmethod
    def _rank(node: object, behind: Screen[Any], shown: bool) -> int:
        """Footer keys first, then the screen's other keys, the app's, and widget movement last."""
        if shown:
            return 0
        if node is behind:
            return 1
        return 2 if node is behind.app else 3

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label(self._title, id="help-title", markup=False)
            yield DataTable(id="help-table", cursor_type="row", show_header=False)
            yield Label("ctrl+p: every action by name · esc: close", id="help-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("key", width=12)
        table.add_column("what")
        for key, what in self._keys:
            table.add_row(Text(key, style="bold"), Text(what))
        table.focus()

    @property
    def lines(self) -> list[tuple[str, str]]:
        """(key, description) pairs shown."""
        return list(self._keys)
