"""A keyboard folder picker: a tree of folders only; Enter picks the highlighted one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label


class FolderTree(DirectoryTree):
    """A DirectoryTree without files; Enter picks, right/left/space open and close."""

    BINDINGS = [
        Binding("enter", "pick", "Pick folder", id="picker.pick", priority=True),
        Binding("right", "open", "Open", show=False, id="picker.open"),
        Binding("left", "close", "Close / up", show=False, id="picker.close"),
    ]

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        """Folders only, hidden ones left out."""
        return [p for p in paths if p.is_dir() and not p.name.startswith(".")]

    def action_pick(self) -> None:
        """Choose the folder under the cursor."""
        node = self.cursor_node
        if node is not None and node.data is not None:
            self.screen.dismiss(Path(node.data.path))

    def action_open(self) -> None:
        """Expand the folder under the cursor."""
        node = self.cursor_node
        if node is not None and not node.is_expanded:
            node.expand()

    def action_close(self) -> None:
        """Collapse the folder, or go to its parent."""
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded:
            node.collapse()
        elif node.parent is not None:
            self.move_cursor(node.parent)


class FolderPickerScreen(ModalScreen[Path | None]):
    """Pick a study folder: browse the tree, or type a path and press Enter."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel", id="picker.cancel"),
        Binding("tab", "app.focus_next", "Path box / tree", show=False, id="picker.switch"),
    ]

    def __init__(self, start: Path) -> None:
        super().__init__()
        self._start = start if start.is_dir() else Path.home()

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Label("Open a study folder  (enter: pick · →/←: open/close · tab: type a path)", id="picker-title")
            yield Input(str(self._start), id="picker-path")
            yield FolderTree(self._start, id="picker-tree")

    def on_mount(self) -> None:
        self.query_one(FolderTree).focus()

    @on(Input.Submitted, "#picker-path")
    def _typed(self, event: Input.Submitted) -> None:
        folder = Path(event.value).expanduser()
        if folder.is_dir():
            self.dismiss(folder)
        else:
            self.notify("No such folder.", severity="warning")

    @on(DirectoryTree.DirectorySelected)
    def _follow(self, event: DirectoryTree.DirectorySelected) -> None:
        self.query_one("#picker-path", Input).value = str(event.path)
