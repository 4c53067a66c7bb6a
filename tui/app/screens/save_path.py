"""Ask where to save a local file (e.g. the pseudonym list): a title, a note and an editable path."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class SavePathScreen(ModalScreen["Path | None"]):
    """Dismisses with the path typed (enter), or None (escape)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="save-path.cancel")]

    def __init__(self, title: str, note: str, default: Path) -> None:
        super().__init__()
        self._title = title
        self._note = note
        self._default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="save-box"):
            yield Label(f"{self._title}  (enter: save · esc: cancel)", id="save-title", markup=False)
            yield Label(self._note, id="save-note", markup=False)
            yield Input(str(self._default), id="save-path")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.dismiss(Path(text).expanduser() if text else None)
