"""Which patient of a folder holding several to share: a modal list by file count (never names)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class ChoosePatientScreen(ModalScreen[int | None]):
    """Dismisses with the chosen patient's number (1 = most files), or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="choose-patient.cancel")]

    def __init__(self, participant: Any) -> None:
        super().__init__()
        self.participant = participant

    def compose(self) -> ComposeResult:
        patients = self.participant.patients
        with Vertical(id="confirm-box"):
            yield Label(f"{len(patients)} patients in one folder: which one is this participant?",
                        id="confirm-title", markup=False)
            yield Label("The other patients' files are quarantined, never shared.", id="confirm-text",
                        markup=False)
            yield OptionList(*(Option(f"patient {n}: {p.files} files, {len(p.studies)} study(ies)", id=str(n))
                               for n, p in enumerate(patients, 1)), id="choose-patient-list")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_cancel(self) -> None:
        """Close without a choice."""
        self.dismiss(None)
