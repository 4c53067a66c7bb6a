"""Extend a share: ask for the number of full days, show the last day it gives, then confirm."""

from __future__ import annotations

from datetime import date, timedelta

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

MAX_DAYS = 365


class ExtendScreen(ModalScreen[int | None]):
    """Days from today the link keeps working; dismisses with the days, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="extend.cancel")]

    def __init__(self, participant: str, today: date, days: int, now_until: str) -> None:
        super().__init__()
        self.participant = participant
        self.today = today
        self.days = days
        self.now_until = now_until

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Label("Extend this share?", id="confirm-title", markup=False)
            yield Label(f"Full days from today the link of {self.participant} keeps working "
                        f"(now until {self.now_until or 'no end'}):", id="confirm-text", markup=False)
            yield Input(str(self.days), type="integer", id="extend-days")
            yield Label("", id="extend-until", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("Extend (enter)", id="confirm-yes", variant="error")
                yield Button("Cancel (esc)", id="confirm-no")

    def on_mount(self) -> None:
        self._show_until()
        self.query_one(Input).focus()

    def chosen(self) -> int | None:
        """The days typed, if they are a whole number from 1 to MAX_DAYS."""
        text = self.query_one(Input).value.strip()
        return int(text) if text.isdigit() and 1 <= int(text) <= MAX_DAYS else None

    @on(Input.Changed)
    def _show_until(self) -> None:
        days = self.chosen()
        label = self.query_one("#extend-until", Label)
        label.update(f"works until {(self.today + timedelta(days=days)).isoformat()} inclusive" if days
                     else f"type a whole number of days from 1 to {MAX_DAYS}")

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm-yes")
    def _confirm(self) -> None:
        if self.chosen() is not None:
            self.dismiss(self.chosen())

    @on(Button.Pressed, "#confirm-no")
    def action_cancel(self) -> None:
        """Close without extending."""
        self.dismiss(None)
