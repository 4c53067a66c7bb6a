"""The passphrase, word by word in big letters, for reading out on the phone; hides itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Label

from tui.app.screens.confirm import ConfirmScreen
from tui.app.widgets.big_words import BigWord
from tui.core.delivery.passphrase import SEPARATOR, spelled

if TYPE_CHECKING:
    from textual import getters

    from tui.app.app import TuiApp


def words_of(passphrase: Any) -> list[str]:
    """The words of a Passphrase object or of its `text()` as stored in the ledger."""
    if isinstance(passphrase, str):
        return passphrase.split(SEPARATOR) if passphrase else []
    return list(passphrase.words)


class RevealScreen(ModalScreen[None]):
    """Shows one word at a time; any key not listed here hides it, and so does the timer.

    Lives on the alternate screen only, never logs or notifies the words, and records
    "revealed" (on opening) and "communicated" (after a confirmation) in the ledger.
    """

    if TYPE_CHECKING:
        app = getters.app(TuiApp)  # the screens run only in TuiApp: its attributes, typed

    BINDINGS = [
        Binding("right,space,enter", "step(1)", "Next word", id="reveal.next"),
        Binding("left,backspace", "step(-1)", "Previous word", id="reveal.previous"),
        Binding("n", "spelling", "Spelling aid", id="reveal.spelling"),
        Binding("c", "communicated", "Told participant", id="reveal.communicated"),
        Binding("escape", "hide", "Hide", id="reveal.hide"),
    ]

    def __init__(self, row: Any, label: str) -> None:
        super().__init__()
        self._row = row
        self._label = label
        self._words = words_of(row.passphrase)
        self._index = 0
        self._spelling = False
        self._left = 0
        self._timer: Timer | None = None
        self._ticker: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="reveal-box"):
            yield Label("", id="reveal-title", markup=False)
            yield BigWord(id="reveal-word")
            yield Label("", id="reveal-plain", markup=False)
            yield Label("", id="reveal-spelling", markup=False)
            yield Label("", id="reveal-hint", markup=False)

    def on_mount(self) -> None:
        seconds = self.app.services.reveal_seconds
        self._left = int(seconds)
        self._timer = self.set_timer(seconds, self.action_hide)
        self._ticker = self.set_interval(1, self._tick)
        self.app.update_row(self._row.id, revealed=self.app.services.clock())
        self._show()

    def _tick(self) -> None:
        self._left = max(0, self._left - 1)
        self._show_hint()

    def _show(self) -> None:
        word = self._words[self._index] if self._words else ""
        self.query_one("#reveal-title", Label).update(
            f"Passphrase for {self._label}: word {self._index + 1} of {len(self._words)}"
        )
        self.query_one(BigWord).show(word)
        self.query_one("#reveal-plain", Label).update(word)
        spelling = self.query_one("#reveal-spelling", Label)
        spelling.display = self._spelling
        if self._spelling:
            alphabet = "din5009" if getattr(self.app.settings, "language", "en") == "de" else "nato"
            spelling.update("  ".join(spelled(word, alphabet)))
        self._show_hint()

    def _show_hint(self) -> None:
        self.query_one("#reveal-hint", Label).update(
            f"→ next · ← back · n spelling · c told · other keys hide ({hides_in(self._left)})"
        )

    @property
    def word(self) -> str:
        """The word on screen."""
        return self._words[self._index] if self._words else ""

    def on_key(self, event: events.Key) -> None:
        """Any key that is not one of ours hides the passphrase."""
        ours = {key.strip() for b in self.BINDINGS for key in b.key.split(",")}  # type: ignore[union-attr]
        if event.key not in ours and event.key not in ("f1", "question_mark"):
            event.stop()
            event.prevent_default()
            self.action_hide()

    def action_step(self, delta: int) -> None:
        """Show the next or previous word."""
        self._index = max(0, min(len(self._words) - 1, self._index + delta))
        self._show()

    def action_spelling(self) -> None:
        """Toggle the spelling alphabet under the word."""
        self._spelling = not self._spelling
        self._show()

    def action_communicated(self) -> None:
        """Ask whether the passphrase was told; if so record it and hide."""
        if self._timer is not None:
            self._timer.pause()

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.update_row(self._row.id, communicated=self.app.services.clock())
                self.action_hide()
            elif self._timer is not None:
                self._timer.resume()

        question = ConfirmScreen(
            "Passphrase told?",
            f"Record in the ledger that {self._label} has been told the passphrase?",
            yes="Recorded",
        )
        self.app.push_screen(question, answered)

    def action_hide(self) -> None:
        """Forget the words and close."""
        self._words = []
        if self._ticker is not None:
            self._ticker.stop()
        if self._timer is not None:
            self._timer.stop()
        if self.is_current:
            self.dismiss()
        elif self in self.app.screen_stack:
            while self.app.screen is not self:
                self.app.pop_screen()
            self.dismiss()


def hides_in(seconds: int) -> str:
    """Time left before the phrase hides: seconds in the last two minutes, whole minutes (rounded up) before."""
    return f"{seconds} s" if seconds < 120 else f"{-(-seconds // 60)} min"
