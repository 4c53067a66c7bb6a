"""Settings: destination, expiry, encryption, profile options, modalities, withheld series descriptions
(protocol/report pages, comma separated), pseudonyms, the lab and study the participant's documents name; test
connection."""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, Label, Select, SelectionList
from textual.widgets.selection_list import Selection

from tui.app.screens.pacs import node_destinations
from tui.app.screens.participant import OPTION_LABELS
from tui.core.dicom.annex_e import OPTIONS
from tui.core.errors import MrishareError
from tui.core.presets import PRESETS

ENCRYPTION = [("AES-256 zip (7-Zip, macOS Keka)", "aes"), ("ZipCrypto (weak; Windows Explorer)", "zipcrypto")]
DEFACE = [("as the preset says", ""), ("reface", "reface"), ("deface", "deface"), ("off", "off")]
ENGINES = [("dcm2niix", "dcm2niix"), ("dicom2nifti", "dicom2nifti")]
WORDS = [("English words", "en"), ("German words", "de")]
LAB_FIELDS = [("Lab", "lab_name", "e.g. MRI Lab, University Hospital"),
              ("Lab contact", "lab_contact", "e-mail or phone for questions"),
              ("Study", "study_name", "the study's name as participants know it")]


class SettingsScreen(ModalScreen[Any]):
    """Edit the pipeline settings; dismisses with the new settings, or None when cancelled."""

    BINDINGS = [
        Binding("ctrl+t", "test_connection", "Test connection", id="settings.test"),
        Binding("ctrl+o", "save", "Save", id="settings.save"),
        Binding("escape", "dismiss(None)", "Cancel", id="settings.cancel"),
    ]

    class Checked(Message):
        """The destination answered `check()` (or `error` says why it could not be asked)."""

        def __init__(self, results: list[tuple[str, bool, str]], error: str = "") -> None:
            super().__init__()
            self.results = results
            self.error = error

    def __init__(self, settings: Any) -> None:
        super().__init__()
        self._settings = settings

    def _value(self, name: str, default: Any) -> Any:
        return getattr(self._settings, name, default)

    def compose(self) -> ComposeResult:
        settings = self._settings
        with VerticalScroll(id="settings-box"):
            yield Label("Settings  (ctrl+o save · ctrl+t test connection · esc cancel)", id="settings-title")
            yield from self._row("Destination", Input(settings.destination, id="set-destination",
                                                      placeholder="folder:/path, nextcloud or dicom-node:NAME"))
            if nodes := node_destinations():
                yield from self._row("DICOM node", Select(nodes, prompt="send de-identified DICOM to…", id="set-node"))
            yield from self._row("Expiry (days)", Input(str(settings.expiry_days), type="integer", id="set-expiry"))
            yield from self._row("Encryption", Select(ENCRYPTION, value=settings.encryption, allow_blank=False,
                                                      id="set-encryption"))
            yield from self._row("Preset", Select([(p, p) for p in PRESETS], value=settings.preset,
                                                  allow_blank=False, id="set-preset"))
            yield from self._row("Defacing", Select(DEFACE, value=settings.deface_mode or "", allow_blank=False,
                                                    id="set-deface"))
            yield from self._row("Pseudonyms", Input(settings.pseudonym, id="set-pseudonym",
                                                     placeholder="keyed | adit | csv:FILE | fixed:X"))
            yield from self._row("Modalities", Input(" ".join(sorted(settings.modalities)), placeholder="MR CT …",
                                                     id="set-modalities"))
            yield from self._row("Withheld series", Input(", ".join(settings.protocol_pages), id="set-protocol-pages",
                                                          placeholder="Patient Protocol, Dose Report …"))
            yield from self._row("Converter", Select(ENGINES, value=settings.engine, allow_blank=False,
                                                     id="set-engine"))
            yield from self._row("Passphrase", Select(WORDS, value=settings.language, allow_blank=False,
                                                      id="set-language"))
            yield Label("Profile options (space toggles; empty = the preset's)", classes="settings-heading")
            chosen = set(settings.profile.options)
            yield SelectionList[str](
                *(Selection(OPTION_LABELS.get(o, o), o, o in chosen) for o in OPTIONS), id="set-options"
            )
            yield Label("For the participant's README and page (empty: left out)", classes="settings-heading")
            for label, name, hint in LAB_FIELDS:
                yield from self._row(label, Input(self._value(name, ""), id=f"set-{name.replace('_', '-')}",
                                                  placeholder=hint))
            yield Label("", id="settings-check", markup=False)

    @staticmethod
    def _row(label: str, field: Widget) -> ComposeResult:
        with Horizontal(classes="settings-row"):
            yield Label(label, classes="settings-label")
            yield field

    @on(Select.Changed, "#set-node")
    def _node_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#set-destination", Input).value = event.value

    def collected(self) -> dict[str, Any]:
        """The form's values under PipelineSettings' field names."""
        days = self.query_one("#set-expiry", Input).value.strip()
        preset = self.query_one("#set-preset", Select).value
        options = frozenset(self.query_one("#set-options", SelectionList).selected)
        return {
            "destination": self.query_one("#set-destination", Input).value.strip(),
            "expiry_days": int(days) if days else 14,
            "encryption": self.query_one("#set-encryption", Select).value,
            "preset": preset,
            "deface_mode": self.query_one("#set-deface", Select).value or None,
            "pseudonym": self.query_one("#set-pseudonym", Input).value.strip() or "keyed",
            "modalities": frozenset(self.query_one("#set-modalities", Input).value.upper().split()),
            "protocol_pages": tuple(page.strip() for page in self.query_one("#set-protocol-pages", Input).value
                                    .split(",") if page.strip()),
            "engine": self.query_one("#set-engine", Select).value,
            "language": self.query_one("#set-language", Select).value,
            "options": None if options == PRESETS[str(preset)].options else options,
            **{name: self.query_one(f"#set-{name.replace('_', '-')}", Input).value.strip()
               for _, name, _ in LAB_FIELDS},
        }

    def action_save(self) -> None:
        """Keep the new settings (also for later starts: settings.json) and close."""
        from tui.core.settings import UserSettings

        try:
            chosen = dataclasses.replace(self._settings, **self.collected())
            UserSettings.from_pipeline(chosen)  # the checks settings.json gets, before the form closes
            self.dismiss(chosen)
        except (MrishareError, ValueError, TypeError) as error:
            self.notify(str(error), title="Not saved", severity="error")

    def action_test_connection(self) -> None:
        """Ask the destination what works, in plain words."""
        self.query_one("#settings-check", Label).update("Testing…")
        self.check_worker(self.collected()["destination"])

    @work(thread=True, exclusive=True, group="check", exit_on_error=False)
    def check_worker(self, spec: str) -> None:
        """Build the destination from the spec and the credentials file, then check it."""
        from tui.core.credentials import load_credentials
        from tui.core.delivery.destinations import destination_from

        try:
            credentials = None if spec.startswith(("folder:", "dicom-node:")) else (
                getattr(self._settings, "credentials", None) or load_credentials()
            )
            self.post_message(self.Checked(destination_from(spec, credentials).check()))
        except MrishareError as error:
            self.post_message(self.Checked([], str(error)))

    @on(Checked)
    def _checked(self, message: Checked) -> None:
        text = Text()
        if message.error:
            text.append(f"✗ {message.error}", style="bold")
        for what, ok, words in message.results:
            text.append(f"{'✓' if ok else '✗'} {what}: ", style="bold")
            text.append(f"{words}\n")
        self.query_one("#settings-check", Label).update(text)
