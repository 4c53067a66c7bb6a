"""A small form to change an element's value, or to add an element (tag or keyword, VR, value), at any depth."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from tui.core.errors import MrishareError

if TYPE_CHECKING:
    from tui.core.dicom.tag_edit import Edit  # noqa: F401 (named in the quoted ModalScreen type below)


class EditElementScreen(ModalScreen["Edit | None"]):
    """Dismisses with an Edit, or None when cancelled; a fixed `tag` means "change this one"; `parent` is the
    path of the sequence item that holds the element (empty: top level), `where` its keyword path for the title."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="edit.cancel")]

    def __init__(self, tag: int | None = None, name: str = "", value: str = "", parent: str = "",
                 where: str = "") -> None:
        super().__init__()
        self._tag = tag
        self._name = name
        self._value = value
        self._item = parent
        self._where = where

    def compose(self) -> ComposeResult:
        adding = self._tag is None
        title = (f"Add an element in {self._where}" if self._where else "Add an element") if adding \
            else f"Change {self._name}"
        with Vertical(id="edit-box"):
            yield Label(f"{title}  (enter: keep · esc: cancel; saved only with W, as a copy)", id="edit-title",
                        markup=False)
            if adding:
                with Horizontal(classes="edit-row"):
                    yield Label("Tag / keyword", classes="edit-label")
                    yield Input(placeholder="(0010,4000) or PatientComments", id="edit-tag")
                with Horizontal(classes="edit-row"):
                    yield Label("VR", classes="edit-label")
                    yield Input(placeholder="only for private tags, e.g. LO", id="edit-vr", max_length=2)
            with Horizontal(classes="edit-row"):
                yield Label("Value", classes="edit-label")
                yield Input(self._value, id="edit-value")

    def on_mount(self) -> None:
        self.query_one("#edit-tag" if self._tag is None else "#edit-value", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        from tui.core.dicom.tag_edit import Edit, parse_tag  # pydicom only once an edit is made

        if event.input.id != "edit-value":
            self.focus_next()
            return
        value = self.query_one("#edit-value", Input).value
        if self._tag is not None:
            self.dismiss(Edit(self._tag, value, parent=self._item))
            return
        try:
            tag = parse_tag(self.query_one("#edit-tag", Input).value)
        except MrishareError as error:
            self.notify(str(error), severity="error")
            return
        self.dismiss(Edit(tag, value, self.query_one("#edit-vr", Input).value.strip().upper(), self._item))
