"""Deliver released (de-identified) DICOM to a DICOM node, e.g. a research PACS, with C-STORE.

Unlike the folder and Nextcloud destinations a node takes a *folder of DICOM files* (the
de-identification output, which holds only files that passed the leak gate), not a zip, and gives
no links: `share`, `extend` and `revoke` refuse with a clear message. Before anything is sent every
file must declare PatientIdentityRemoved = YES; one file without it stops the whole delivery.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from pathlib import Path
from threading import Event

from tui.core.delivery.base import Delivered, ShareInfo, SharePolicy, check_remote_name
from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepFinished, StepStarted
from tui.core.net import dicom_net
from tui.core.net.nodes import DicomNode
from tui.core.safetext import human_bytes

STEP = "upload"


class DicomNodeDestination:
    """A DICOM node as a destination (`kind = "dicom-node"`)."""

    kind = "dicom-node"

    def __init__(self, node: DicomNode) -> None:
        self.node = node

    def check(self) -> list[tuple[str, bool, str]]:
        """Does the node answer C-ECHO (over TLS if configured)?"""
        how = "over TLS" if self.node.uses_tls else "without TLS"
        try:
            seconds = dicom_net.echo(self.node)
        except MrishareError as error:
            return [("DICOM node", False, f"{self.node.label}: {error.reason}")]
        return [("DICOM node", True, f"{self.node.label} answers C-ECHO {how} in {seconds * 1000:.0f} ms")]

    def upload(self, local: Path, remote_name: str, cancel: Event | None = None) -> EventStream[Delivered]:
        """Send every DICOM file in the folder `local`; `remote_name` only labels the delivery."""
        files = dicom_net.dicom_files(Path(local))
        if not files:
            raise MrishareError("no DICOM files to send", local)
        return (yield from self.send(files, remote_name, cancel))

    def send(self, files: Sequence[Path], remote_name: str, cancel: Event | None = None) -> EventStream[Delivered]:
        """C-STORE exactly `files` (e.g. `DeidResult.released`); any refused file fails the delivery."""
        label = check_remote_name(remote_name)
        yield StepStarted(label, STEP, len(files))
        identified = dicom_net.identified_files(files)
        if identified:
            raise MrishareError(f"{len(identified)} of {len(files)} files are not marked de-identified "
                                "(PatientIdentityRemoved is not YES); nothing was sent", identified[0])
        result = yield from dicom_net.store(self.node, files, cancel, subject=label)
        if not result.ok:
            first = result.failed[0]
            raise MrishareError(f"{len(result.failed)} of {len(files)} files were not stored "
                                f"(first: {first.path.name}: {first.reason})", self.node.label)
        size = sum(path.stat().st_size for path in result.sent)
        yield StepFinished(label, STEP, f"{len(result.sent)} files ({human_bytes(size)}) on {self.node.name}")
        return Delivered(label, size, None)

    def exists(self, remote_name: str) -> bool:
        """Always False: a node keeps instances, not named files (a repeated instance replaces the old one)."""
        check_remote_name(remote_name)
        return False

    def share(self, delivered_path: str, expire_days: int, label: str, password: str | None = None) -> ShareInfo:
        """Refused: a DICOM node gives no download links."""
        raise MrishareError("a DICOM node gives no download links; use a folder or Nextcloud destination for "
                            "participants", self.node.label)

    def policy(self) -> SharePolicy:
        """No link rules: a node makes no links."""
        return SharePolicy()

    def find_share(self, share_id: str) -> ShareInfo | None:
        """None: a node makes no links."""
        return None

    def revoke(self, share_id: str, remote_path: str) -> None:
        """Refused: mrishare does not delete from a PACS (ask its administrator)."""
        raise MrishareError("mrishare does not delete from a DICOM node; ask the node's administrator",
                            self.node.label)

    def extend(self, share_id: str, expire_days: int) -> ShareInfo:
        """Refused: there are no links to extend."""
        raise MrishareError("a DICOM node gives no links to extend", self.node.label)

    def list_shares(self) -> list[ShareInfo]:
        """None: a node makes no links."""
        return []

    def cleanup_expired(self, today: date | None = None, owned: Collection[str] | None = None) -> list[str]:
        """Nothing expires on a node."""
        return []

    def close(self) -> None:
        """Nothing to release: every operation opens and releases its own association."""
