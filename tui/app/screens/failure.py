"""Why a participant's run failed: the whole reason, its findings grouped, and what to do next."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label

from tui.core.events import quarantine_reason

NEXT_STEPS = (
    ("cancelled", "Nothing was sent after the cancel. Press r on the row to resume: finished steps are not redone."),
    ("leak gate", ("An identifying value is still in the package, so nothing was released. Open the scanned "
                   "participant (Enter), press i to list identifying elements, then edit the value (e) or choose a "
                   "stricter preset, and run again (r).")),
    ("quarantined", ("These files were held back; the others go on. A burned-in annotation or an unknown private "
                     "element is the usual cause: inspect the series (Enter on the scanned row).")),
    ("nothing released", ("Every file was held back: see the findings above. Check the modality allow-list and "
                          "the preset in Settings (f2), then run again (r).")),
    ("patients in one participant folder", ("The folder holds scans of more than one patient, so nothing was shared. "
                                            "Press i, then P to choose the patient to share (the other files are "
                                            "held back), and run again (r).")),
    *((phrase, ("The converter wrote fewer images than the series has, so the series was held back. To share it "
                "anyway, with the shortfall recorded: mrishare share FOLDER --allow-incomplete.")) for phrase in
      ("slices converted", "volumes converted")),
    ("every series is incomplete", ("Every series has missing or unreadable slices, so nothing was shared. Press i, "
                                    "then A on a series flagged G to share it anyway (the gap is recorded in the "
                                    "package), and run again (r).")),
    ("face check", "The defaced head still looked like a face: look at the renders named above before sharing."),
    ("login", ("The destination refused the login: check user and app password in Settings (f2, t tests the "
               "connection), then run again (r).")),
)
"""First matching phrase of the reason -> the operator's next step."""

STAGE_STEPS = {
    "upload": ("The destination could not be reached or refused the file: check it in Settings (f2, t tests the "
               "connection), then run again (r); the package is not rebuilt."),
    "share": "The file is at the destination but no link was made: run again (r) to make the link.",
    "convert": "No series could be converted: try the other conversion engine in Settings (f2), then run again.",
}
DEFAULT_STEP = "Fix the cause above, then run again (r): finished steps are not redone."

def failed_stage(last_action: str) -> str:
    """'pack failed' -> 'pack'; anything else -> ''."""
    return last_action.removesuffix(" failed") if last_action.endswith(" failed") else ""


def next_step(stage: str, reason: str) -> str:
    """What the operator can do about a failure at `stage` with `reason`."""
    low = reason.lower()
    for phrase, step in NEXT_STEPS:
        if phrase in low:
            return step
    return STAGE_STEPS.get(stage, DEFAULT_STEP)


def findings(reason: str, notes: list[str]) -> list[str]:
    """The reason's listed findings and the run's warnings, identical ones grouped with a count."""
    found: Counter[str] = Counter()
    listed = re.search(r"found \((?P<items>[^)]*)\)", reason)
    for item in listed.group("items").split(", ") if listed else []:
        found[item] += 1
    for note in notes:
        quarantined = quarantine_reason(note)
        found[f"quarantined: {quarantined[1]}" if quarantined else note] += 1
    return [f"{text}  ×{count}" if count > 1 else text for text, count in found.most_common()]


class FailureScreen(Screen[None]):
    """The full failure of one ledger row (Enter on a failed row)."""

    BINDINGS = [
        Binding("escape,enter", "back", "Back", id="failure.back"),
        Binding("i", "inspect", "Inspect series", id="failure.inspect"),
    ]

    def __init__(self, participant: str, row: Any, notes: list[str], scanned: Any = None) -> None:
        super().__init__()
        self.participant = participant
        self.row = row
        self.notes = notes
        self.scanned = scanned

    def compose(self) -> ComposeResult:
        row = self.row
        stage = failed_stage(str(row.last_action or ""))
        reason = str(row.note or "no reason was recorded")
        with VerticalScroll(id="failure-box"):
            yield Label(f"{self.participant} · {row.status}" + (f" at {stage}" if stage else ""),
                        id="failure-title", markup=False)
            yield Label("Reason", classes="failure-heading")
            yield Label(reason, id="failure-reason", markup=False)
            items = findings(reason, self.notes)
            if items:
                yield Label("Findings", classes="failure-heading")
                yield Label("\n".join(f"• {item}" for item in items), id="failure-findings", markup=False)
            yield Label("Next step", classes="failure-heading")
            yield Label(next_step(stage, reason), id="failure-next", markup=False)
        yield Footer(compact=True)

    def action_back(self) -> None:
        """Back to the ledger."""
        self.dismiss()

    def action_inspect(self) -> None:
        """Open the participant's series and tags (when its folder was scanned in this session)."""
        from tui.app.screens.participant import ParticipantScreen

        if self.scanned is None:
            self.notify("Not scanned in this session: open its study folder first (o on the ledger).",
                        severity="warning")
            return
        self.app.push_screen(ParticipantScreen(self.scanned))
