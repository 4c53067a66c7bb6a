"""The destination registry: a spec (`folder:PATH`, `nextcloud`, `dicom-node:NAME`, `processing:PIPELINE`) to a
destination. Only this module
knows the concrete destinations; they import the shared types from `base`, so no import circle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.delivery.base import Destination
from tui.core.delivery.folder import FolderDestination
from tui.core.errors import MrishareError

if TYPE_CHECKING:
    from tui.core.credentials import Credentials


def destination_from(spec: str, credentials: Credentials | None) -> Destination:
    """Build a destination from `folder:PATH`, `nextcloud`, `dicom-node:NAME` or `processing:PIPELINE` (empty: what
    the credentials say)."""
    spec = spec or (credentials.destination if credentials else "")
    if spec.startswith("folder:") and len(spec) > len("folder:"):
        return FolderDestination(Path(spec[len("folder:"):]))
    if spec == "nextcloud":
        if credentials is None:
            raise MrishareError("the nextcloud destination needs a credentials file (--credentials)")
        from tui.core.delivery.nextcloud import (
            NextcloudDestination,  # loads the HTTP client only when needed
        )

        return NextcloudDestination(credentials)
    if spec.startswith("dicom-node:") and len(spec) > len("dicom-node:"):
        from tui.core.delivery.node import DicomNodeDestination
        from tui.core.net.nodes import get_node  # pynetdicom only when a node is used

        return DicomNodeDestination(get_node(spec[len("dicom-node:"):]))
    if spec.startswith("processing:") and len(spec) > len("processing:"):
        if credentials is None:
            raise MrishareError("the processing destination needs a credentials file (--credentials)")
        from tui.core.delivery.processing import ProcessingDestination

        return ProcessingDestination(credentials, spec[len("processing:"):])
    raise MrishareError("destination must be 'folder:PATH', 'nextcloud', 'dicom-node:NAME' or 'processing:PIPELINE'",
                        spec or None)
