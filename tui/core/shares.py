"""Acting on one ledger row's share: find the destination it went to, and "share again"."""

from __future__ import annotations

from pathlib import Path

from tui.core.credentials import Credentials, load_credentials
from tui.core.destinations import Destination, destination_from
from tui.core.errors import MrishareError
from tui.core.ledger import Ledger, LedgerRow


def row_destination(row: LedgerRow, credentials: Credentials | None = None,
                    credentials_path: Path | None = None) -> Destination:
    """The destination a row was delivered to (its `destination` column holds the spec)."""
    if row.destination.startswith("folder:"):
        return destination_from(row.destination, None)
    return destination_from(row.destination or "nextcloud", credentials or load_credentials(credentials_path))


def where(row: LedgerRow) -> str:
    """The row's destination in plain words, for a confirmation question."""
    if row.destination.startswith("folder:"):
        return f"the folder {row.destination.removeprefix('folder:')}"
    return "Nextcloud"


def share_again(ledger: Ledger, row_id: str, destination: Destination) -> LedgerRow:
    """Revoke the row's link and delete its remote file, then delete the row; returns the deleted row.

    The next run for the participant makes a new package with a new passphrase and link (the
    pipeline sees its journal's row gone; withdrawing the already revoked file again is harmless).
    """
    row = ledger.get(row_id)
    if row is None:
        raise MrishareError("no such row in the ledger", row_id)
    if row.remote_path:
        destination.revoke(row.share_id, row.remote_path)
    ledger.delete(row_id)
    ledger.save()
    return row
