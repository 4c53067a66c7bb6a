"""Fetch from PACS: a PatientID's studies on a DICOM node -> pick -> retrieve into the intake folder.

Finding and retrieving run in thread workers (the network may take seconds); the retrieved folder
is scanned as one participant, which the screen hands back so the ledger can show it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, SelectionList
from textual.widgets.selection_list import Selection

from tui.core.config import data_dir
from tui.core.errors import MrishareError
from tui.core.events import Event, StepProgress


def intake_dir() -> Path:
    """Where retrieved studies land, one new folder per retrieval."""
    return data_dir() / "intake"


def node_destinations() -> list[tuple[str, str]]:
    """(label, `dicom-node:NAME`) for each configured node; none if nodes.json is missing or broken."""
    from tui.core.net.nodes import load_nodes

    try:
        return [(node.label, f"dicom-node:{name}") for name, node in load_nodes().items()]
    except MrishareError:
        return []


def study_line(hit: Any) -> Text:
    """One study as staff see it: date, modalities, counts, description (node data: never markup)."""
    when = f"{hit.date[:4]}-{hit.date[4:6]}-{hit.date[6:8]}" if len(hit.date) == 8 else hit.date or "no date"
    counts = f"{hit.series_count if hit.series_count is not None else '?'} series, " \
             f"{hit.instance_count if hit.instance_count is not None else '?'} images"
    return Text(f"{when}  {'/'.join(hit.modalities) or '?':6} {counts:22} {hit.description}")


class PacsScreen(ModalScreen[list[Any] | None]):
    """Choose a node, type a PatientID, find, pick studies with space, retrieve; dismisses with the participants."""

    BINDINGS = [
        Binding("ctrl+f", "find", "Find studies", id="pacs.find"),
        Binding("ctrl+r", "retrieve", "Retrieve picked studies", id="pacs.retrieve"),
        Binding("escape", "close", "Cancel / close", id="pacs.close"),
    ]

    class Found(Message):
        """C-FIND answered with `hits` (or `error` says why not)."""

        def __init__(self, hits: list[Any], error: str = "") -> None:
            super().__init__()
            self.hits = hits
            self.error = error

    class Progress(Message):
        """A retrieval event, with which study of how many it belongs to."""

        def __init__(self, event: Event, study: int, studies: int) -> None:
            super().__init__()
            self.event = event
            self.study = study
            self.studies = studies

    class Fetched(Message):
        """The retrieval ended: the scanned participants of the intake folder, or `error`."""

        def __init__(self, participants: list[Any], error: str = "") -> None:
            super().__init__()
            self.participants = participants
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, Any] = {}
        self.hits: list[Any] = []
        self._node_error = ""
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        from tui.core.net.nodes import load_nodes, nodes_path

        try:
            self.nodes = load_nodes()
        except MrishareError as error:
            self._node_error = str(error)
        if not self.nodes and not self._node_error:
            self._node_error = f"No DICOM nodes configured: add one to {nodes_path()}."
        with Vertical(id="pacs-box"):
            yield Label("Fetch from PACS  (enter find · space pick · ctrl+r retrieve · esc close)", id="pacs-title")
            with Horizontal(classes="pacs-row"):
                yield Label("Node", classes="pacs-label")
                yield Select([(n.label, name) for name, n in self.nodes.items()], allow_blank=not self.nodes,
                             value=next(iter(self.nodes), Select.NULL), id="pacs-node")
            with Horizontal(classes="pacs-row"):
                yield Label("PatientID", classes="pacs-label")
                yield Input(placeholder="exactly as the PACS stores it", id="pacs-patient")
            yield SelectionList[str](id="pacs-studies")
            yield Label(self._node_error, id="pacs-status", markup=False)

    def on_mount(self) -> None:
        self.query_one("#pacs-patient", Input).focus()

    @property
    def busy(self) -> bool:
        """True while a find or a retrieval is running."""
        return any(w.is_running for w in self.workers)

    def _status(self, text: str) -> None:
        self.query_one("#pacs-status", Label).update(text)

    def _node(self) -> Any | None:
        name = self.query_one("#pacs-node", Select).value
        return self.nodes.get(name) if isinstance(name, str) else None

    # -- find -----------------------------------------------------------------------------------

    @on(Input.Submitted, "#pacs-patient")
    def action_find(self) -> None:
        """Ask the node for the studies of the typed PatientID."""
        node = self._node()
        patient_id = self.query_one("#pacs-patient", Input).value.strip()
        if node is None or not patient_id:
            self.notify("Choose a node and type a PatientID first.", severity="warning")
            return
        if self.busy:
            return
        self._status(f"Asking {node.name}…")
        self.find_worker(node, patient_id)

    @work(thread=True, exclusive=True, group="pacs-find", exit_on_error=False)
    def find_worker(self, node: Any, patient_id: str) -> None:
        """C-FIND at study level (the PatientID is never logged)."""
        from tui.core.net.dicom_net import find_studies

        try:
            self.post_message(self.Found(find_studies(node, patient_id)))
        except MrishareError as error:
            self.post_message(self.Found([], str(error)))

    @on(Found)
    def _found(self, message: Found) -> None:
        self.hits = message.hits
        studies = self.query_one("#pacs-studies", SelectionList)
        studies.clear_options()
        studies.add_options([Selection(study_line(hit), hit.study_uid) for hit in message.hits])
        if message.error:
            self._status(f"✗ {message.error}")
        elif not message.hits:
            self._status("No studies for this PatientID on this node.")
        else:
            count = len(message.hits)
            self._status(f"{count} {'study' if count == 1 else 'studies'}: space picks, ctrl+r retrieves.")
            studies.highlighted = 0
            studies.focus()

    # -- retrieve -------------------------------------------------------------------------------

    def action_retrieve(self) -> None:
        """Retrieve the picked studies (or the highlighted one) into a new intake folder."""
        node = self._node()
        studies = self.query_one("#pacs-studies", SelectionList)
        picked = list(studies.selected)
        if not picked and studies.highlighted is not None and self.hits:
            picked = [studies.get_option_at_index(studies.highlighted).value]
        if node is None or not picked:
            self.notify("Find studies and pick some with space first.", severity="warning")
            return
        if self.busy:
            return
        self._cancel = threading.Event()
        self._status(f"Retrieving {len(picked)} {'study' if len(picked) == 1 else 'studies'} from {node.name}…")
        self.retrieve_worker(node, picked, self._cancel)

    @work(thread=True, exclusive=True, group="pacs-retrieve", exit_on_error=False)
    def retrieve_worker(self, node: Any, study_uids: list[str], cancel: threading.Event) -> None:
        """C-GET/C-MOVE each study into one new intake folder, then scan it as one participant."""
        from tui.core.dicom.scan import scan
        from tui.core.events import drain
        from tui.core.net.dicom_net import new_intake_folder, retrieve

        folder = None
        try:
            folder = new_intake_folder(intake_dir())
            for number, uid in enumerate(study_uids, 1):
                def progress(event: Event, n: int = number) -> None:
                    self.post_message(self.Progress(event, n, len(study_uids)))

                drain(retrieve(node, uid, folder, cancel=cancel), progress)
            participants = scan(folder, cancel=cancel, workers=1, as_participant=True).participants
            if not participants:
                raise MrishareError("the node sent no readable DICOM files", node.label)
            self.post_message(self.Fetched(participants))
        except MrishareError as error:
            if folder is not None and not any(folder.iterdir()):
                folder.rmdir()
            self.post_message(self.Fetched([], str(error)))

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        event = message.event
        if isinstance(event, StepProgress):
            where = f"study {message.study} of {message.studies}: " if message.studies > 1 else ""
            self._status(f"Retrieving {where}{event.done} of {event.total or '?'} images…")

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        if message.error:
            self._status(f"✗ {message.error}")
            return
        files = sum(p.files for p in message.participants)
        self.notify(f"{files} files retrieved into the intake folder; the participant is in the ledger.")
        self.dismiss(message.participants)

    def action_close(self) -> None:
        """Stop a running retrieval, or close."""
        if any(w.is_running and w.group == "pacs-retrieve" for w in self.workers):
            self._cancel.set()
            self._status("Cancelling…")
            return
        self.dismiss(None)
