"""The life of a share after the pipeline: revoke, extend, clean up expired ones, share again."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.credentials import Credentials, load_credentials
from tui.core.delivery.base import Destination, ShareInfo
from tui.core.delivery.destinations import destination_from
from tui.core.delivery.folder import FolderDestination
from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepProgress, Throttle, drain

if TYPE_CHECKING:
    from tui.core.delivery.ledger import Ledger, LedgerRow

CHECK = "check"
"""The step name of the link check's progress events."""


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
    row = row_or_error(ledger, row_id)
    if row.remote_path:
        destination.revoke(row.share_id, row.remote_path)
    ledger.delete(row_id)
    ledger.save()
    return row


def row_or_error(ledger: Ledger, row_id: str) -> LedgerRow:
    """The row with `row_id`, or a one-line error naming the id."""
    row = ledger.get(row_id)
    if row is None:
        raise MrishareError("no such row in the ledger", row_id)
    return row


def revoke(ledger: Ledger, row_id: str, destination: Destination) -> LedgerRow:
    """Delete the share and the remote file; the row stays, marked revoked."""
    row = row_or_error(ledger, row_id)
    if row.remote_path:
        destination.revoke(row.share_id, row.remote_path)
    new = replace(row, status="revoked", link="", last_action="revoked", note="")
    ledger.upsert(new)
    ledger.save()
    return new


def extend(ledger: Ledger, row_id: str, days: int, destination: Destination) -> LedgerRow:
    """Give the participant `days` more full days from today."""
    row = row_or_error(ledger, row_id)
    if row.status not in ("shared", "expired") or not row.share_id:
        raise MrishareError(f"cannot extend a share in status {row.status}", row_id)
    info: ShareInfo = destination.extend(row.share_id, days)
    new = replace(row, expires=info.expires, status="shared", last_action=f"extended by {days} days", note="")
    ledger.upsert(new)
    ledger.save()
    return new


def cleanup_expired(ledger: Ledger, destination: Destination, today: date | None = None) -> list[str]:
    """Delete this ledger's remote files whose links expired or are gone on the server, and files left by failed runs.

    Rows follow the server (`check`): a shared row whose link the server no longer has becomes expired (its
    date has come) or revoked, and its file is deleted; so is a failed row's remote file (left when removing
    it after the failure did not work), and that row's remote path is cleared so that the next run uploads
    anew. Returns the remote paths removed.
    """
    today = today or date.today()
    owned = {row.remote_path for row in ledger.rows() if row.remote_path and _belongs(row, destination)}
    removed = destination.cleanup_expired(today, owned)  # another ledger's packages there are not ours to delete
    check(ledger, destination, today)
    for row in ledger.rows():
        if row.status in ("expired", "revoked", "failed") and row.remote_path and _belongs(row, destination) \
                and row.remote_path not in removed and destination.exists(row.remote_path):
            destination.revoke("", row.remote_path)
            removed.append(row.remote_path)
            ledger.upsert(replace(row, last_action=f"remote file removed by cleanup ({today})",
                                  remote_path="" if row.status == "failed" else row.remote_path))
    ledger.save()
    return removed


def _belongs(row: LedgerRow, destination: Destination) -> bool:
    """True if the row was delivered to `destination` (a folder by its path, else Nextcloud)."""
    if isinstance(destination, FolderDestination):
        return row.destination.startswith("folder:") and Path(row.destination[7:]).expanduser().resolve() == \
            destination.root
    return destination.kind == "nextcloud" and row.destination in ("", "nextcloud")


def check(ledger: Ledger, destination: Destination, today: date | None = None) -> list[LedgerRow]:
    """Ask the destination for the link of every shared row of it; rows whose link is gone become
    expired or revoked (with the date seen). Returns the rows that changed."""
    changed = follow_server(ledger, drain(link_states(ledger.rows(), destination, today)))
    ledger.save()
    return changed


def rows_to_check(rows: Iterable[LedgerRow]) -> dict[str, list[LedgerRow]]:
    """The shared rows with a link, grouped by their `destination` column (one destination per group)."""
    groups: dict[str, list[LedgerRow]] = {}
    for row in rows:
        if row.status == "shared" and row.share_id:
            groups.setdefault(row.destination, []).append(row)
    return groups


def link_states(rows: Iterable[LedgerRow], destination: Destination,
                today: date | None = None) -> EventStream[list[LedgerRow]]:
    """Ask the destination about the link of each shared row of it (one progress event per row); returns
    the rows as they should now read (link gone: expired or revoked with the date seen; expiry changed on
    the server: the server's date). Writes nothing: `follow_server` does, so a caller can ask the server
    without holding the ledger."""
    today = today or date.today()
    mine = [row for row in rows if row.status == "shared" and row.share_id and _belongs(row, destination)]
    throttle, changed = Throttle(), []
    for done, row in enumerate(mine, 1):
        info = destination.find_share(row.share_id)
        if info is None:
            expired = row.expires is not None and row.expires <= today
            changed.append(replace(row, status="expired" if expired else "revoked", link="",
                                   last_action=f"link {'expired' if expired else 'gone'} on the server "
                                               f"(seen {today})"))
        elif info.expires != row.expires:
            changed.append(replace(row, expires=info.expires,
                                   last_action=f"expiry changed on the server (seen {today})"))
        if throttle.ready(done, len(mine)):
            yield StepProgress(row.id, CHECK, done, len(mine), unit="links")
    return changed


def follow_server(ledger: Ledger, changed: Iterable[LedgerRow]) -> list[LedgerRow]:
    """Put the rows `link_states` found into the ledger (not saved), skipping any row that changed since it
    was read (revoked, extended or shared again meanwhile). Returns the rows written."""
    written = []
    for new in changed:
        now = ledger.get(new.id)
        if now is not None and now.status == "shared" and now.share_id == new.share_id:
            ledger.upsert(new)
            written.append(new)
    return written
