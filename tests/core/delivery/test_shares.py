"""Share again: the row's remote file and link go first, then the row; real folder destination."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.core.delivery.folder import FolderDestination
from tui.core.delivery.ledger import Ledger, LedgerRow
from tui.core.delivery.shares import cleanup_expired, row_destination, share_again, where
from tui.core.errors import MrishareError
from tui.core.events import drain


def test_share_again_removes_file_link_and_row(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    package = tmp_path / "p.zip"
    package.write_bytes(b"zip bytes")
    spec = f"folder:{outbox}"
    delivered = drain(FolderDestination(outbox).upload(package, "s1/sub-x.zip"))
    info = FolderDestination(outbox).share(delivered.remote_path, 14, "s1")
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        ledger.upsert(LedgerRow("s1", destination=spec, remote_path=delivered.remote_path, share_id=info.share_id,
                                link=info.url, status="shared"))
        ledger.upsert(LedgerRow("s2", destination=spec, status="failed"))  # never uploaded
        ledger.save()
        destination = row_destination(ledger.get("s1"))
        assert isinstance(destination, FolderDestination) and where(ledger.get("s1")) == f"the folder {outbox}"
        share_again(ledger, "s1", destination)
        share_again(ledger, "s2", destination)
        with pytest.raises(MrishareError, match="no such row"):
            share_again(ledger, "s1", destination)
    assert not (outbox / "s1").exists() and destination.list_shares() == []
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        assert ledger.rows() == []


def test_nextcloud_row_without_credentials_says_so(tmp_path: Path) -> None:
    with pytest.raises(MrishareError, match="credentials"):
        row_destination(LedgerRow("s1", destination="nextcloud"), credentials_path=tmp_path / "none.json")


def test_cleanup_deletes_only_what_its_own_ledger_owns_at_a_shared_folder(tmp_path: Path) -> None:
    """Two ledgers deliver to one folder; cleaning up with one never deletes the other's expired package."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    package = tmp_path / "p.zip"
    package.write_bytes(b"zip bytes")
    folder = FolderDestination(outbox)
    expires = None
    for name in ("a", "b"):
        delivered = drain(folder.upload(package, f"s{name}/sub-{name}.zip"))
        info = folder.share(delivered.remote_path, 1, f"s{name}")
        expires = info.expires
        with Ledger.open(tmp_path / f"{name}.xlsx") as ledger:
            ledger.upsert(LedgerRow(f"s{name}", destination=f"folder:{outbox}", remote_path=delivered.remote_path,
                                    share_id=info.share_id, link=info.url, status="shared", expires=info.expires))
            ledger.save()
    with Ledger.open(tmp_path / "a.xlsx") as ledger:
        assert cleanup_expired(ledger, folder, expires) == ["sa/sub-a.zip"]
    assert not (outbox / "sa").exists() and (outbox / "sb" / "sub-b.zip").is_file()
    assert [info.remote_path for info in folder.list_shares()] == ["sb/sub-b.zip"]  # b's share is still recorded
    with Ledger.open(tmp_path / "b.xlsx") as ledger:
        assert cleanup_expired(ledger, folder, expires) == ["sb/sub-b.zip"]
    assert not (outbox / "sb").exists() and folder.list_shares() == []
