"""The ledger screen asks the servers on start whether the shared rows' links still live (issue 18, point 3).

Against the real Nextcloud of ../shared/nextcloud-server: a link deleted on the server turns its row revoked
with the date seen; a live one stays shared. A folder destination is checked the same way, an unmounted folder
and a dead server are one line each and leave their rows alone, and the screen stays usable meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import niquests
import pytest
from nextcloud_server import XDIST_GROUP, NextcloudServer, _free_port
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Label

from tests.app.conftest import FAKE_PASSPHRASE, NOW, SIZE
from tui.app.app import TuiApp
from tui.app.messages import LinksChecked, LinksChecking
from tui.app.services import Services
from tui.core.credentials import load_credentials
from tui.core.delivery.base import Destination
from tui.core.delivery.folder import FolderDestination
from tui.core.delivery.ledger import Ledger, LedgerRow
from tui.core.delivery.nextcloud import NextcloudDestination
from tui.core.events import drain
from tui.core.pipeline import PipelineSettings

TODAY = date.today()


def shared_row(destination: Destination, spec: str, row_id: str, tmp_path: Path) -> LedgerRow:
    """Upload a small file to `destination`, share it, and return the ledger row the pipeline would write."""
    local = tmp_path / f"{row_id}.zip"
    local.write_bytes(os.urandom(4000))
    delivered = drain(destination.upload(local, f"{row_id}/sub-{row_id}.zip"))
    info = destination.share(delivered.remote_path, 14, row_id)
    return LedgerRow(row_id, participant=f"P-{row_id}", destination=spec, remote_path=delivered.remote_path,
                     share_id=info.share_id, link=info.url, passphrase=FAKE_PASSPHRASE, expires=info.expires,
                     status="shared", created=datetime(2026, 11, 20, 10, 0), last_action="link shared")


def write_ledger(path: Path, rows: list[LedgerRow]) -> Path:
    with Ledger.open(path) as ledger:
        for row in rows:
            ledger.upsert(row)
        ledger.save()
    return path


def make_app(ledger: Path, tmp_path: Path, seen: list[Message]) -> tuple[TuiApp, Callable[..., object]]:
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    settings = PipelineSettings(destination=f"folder:{outbox}", work_dir=tmp_path / "work")
    app = TuiApp(Services(ledger_path=ledger, clock=lambda: NOW, settings=settings))  # check_links: on by default
    return app, seen.append


async def until(pilot: Pilot[None], done: Callable[[], bool], seconds: float = 60) -> None:
    """Let the app run until `done()` holds (the check, then the ledger's reload, are workers)."""
    for _ in range(int(seconds * 10)):
        if done():
            return
        await pilot.pause(0.1)
    raise AssertionError("timed out waiting for the app")


def status_of(app: TuiApp) -> dict[str, str]:
    return {e.id: e.status for e in app.ledger_screen.entries}


def status_line(app: TuiApp) -> str:
    return str(app.ledger_screen.query_one("#ledger-status", Label).render())


def on_disk(ledger: Path) -> dict[str, LedgerRow]:
    with Ledger.open(ledger) as opened:
        return {row.id: row for row in opened.rows()}


@XDIST_GROUP
@pytest.mark.slow
async def test_a_link_deleted_on_nextcloud_turns_revoked_when_the_app_opens(
        nextcloud: NextcloudServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds_file = nextcloud.credentials(tmp_path)
    monkeypatch.setenv("MRISHARE_CREDENTIALS", str(creds_file))  # the app finds it as a user's would be found
    cloud = NextcloudDestination(load_credentials(creds_file), attempts=3, backoff_s=0.05)
    # nc-py-api runs its own event loop: share from a thread, as the app's workers do
    gone, live = [await asyncio.to_thread(shared_row, cloud, "nextcloud", name, tmp_path) for name in ("s0aa", "s0bb")]
    cloud.close()
    deleted = niquests.delete(f"{nextcloud.url}/ocs/v2.php/apps/files_sharing/api/v1/shares/{gone.share_id}",
                              auth=(nextcloud.user, nextcloud.app_password), headers={"OCS-APIRequest": "true"},
                              timeout=30)  # as the user would in Nextcloud's web page
    assert deleted.status_code == 200
    ledger = write_ledger(tmp_path / "share-list.xlsx", [gone, live])
    seen: list[Message] = []
    app, hook = make_app(ledger, tmp_path, seen)
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await until(pilot, lambda: status_of(app).get("s0aa") == "revoked")
        assert status_of(app) == {"s0aa": "revoked", "s0bb": "shared"}
        assert "links checked, 1 ended" in status_line(app)
        await until(pilot, lambda: app.ledger_screen.current is not None and app.ledger_screen.current.id == "s0aa")
        detail = str(app.ledger_screen.query_one("#ledger-detail", Label).render())
        assert detail == f"revoked: link gone on the server (seen {TODAY})"  # the column is cut at 80; this is not
    progress = [m for m in seen if isinstance(m, LinksChecking)]
    assert progress[0].done == 0 and progress[-1].done == progress[-1].total == 2
    row = on_disk(ledger)["s0aa"]
    assert row.status == "revoked" and row.link == "" and row.last_action == f"link gone on the server (seen {TODAY})"
    assert on_disk(ledger)["s0bb"] == live


async def test_folder_links_are_checked_and_an_unmounted_folder_is_one_line(tmp_path: Path) -> None:
    outbox, stick = tmp_path / "outbox-shared", tmp_path / "usb-stick"
    outbox.mkdir()
    stick.mkdir()
    folder = FolderDestination(outbox)
    removed, kept = (shared_row(folder, f"folder:{outbox}", name, tmp_path) for name in ("s0cc", "s0dd"))
    on_stick = shared_row(FolderDestination(stick), f"folder:{stick}", "s0ee", tmp_path)
    (outbox / removed.remote_path).unlink()  # someone deleted the package from the shared folder
    stick.rename(tmp_path / "usb-stick-unplugged")
    ledger = write_ledger(tmp_path / "share-list.xlsx", [removed, kept, on_stick])
    app, hook = make_app(ledger, tmp_path, [])
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await until(pilot, lambda: status_of(app).get("s0cc") == "revoked")
        assert status_of(app) == {"s0cc": "revoked", "s0dd": "shared", "s0ee": "shared"}
        assert "links not all checked, 1 ended" in status_line(app)
        messages = [n.message for n in app._notifications]
        assert messages == [f"{stick}: destination folder not found; its links were not checked"]


@pytest.mark.slow
async def test_a_dead_server_is_one_line_and_the_screen_stays_usable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()  # nothing listens there
    creds_file = tmp_path / "credentials.json"
    creds_file.write_text(f'{{"destination": "nextcloud", "nextcloud_baseurl": "http://127.0.0.1:{port}", '
                          '"username": "lab", "password": "app-password-123", "remote_path": "MRI"}')
    creds_file.chmod(0o600)
    monkeypatch.setenv("MRISHARE_CREDENTIALS", str(creds_file))
    row = LedgerRow("s0ff", participant="P-s0ff", destination="nextcloud", remote_path="s0ff/sub-s0ff.zip",
                    share_id="41", link=f"http://127.0.0.1:{port}/index.php/s/AbCd", passphrase=FAKE_PASSPHRASE,
                    expires=date(2099, 1, 1), status="shared", last_action="link shared")
    ledger = write_ledger(tmp_path / "share-list.xlsx", [row])
    seen: list[Message] = []
    app, hook = make_app(ledger, tmp_path, seen)
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await until(pilot, lambda: "checking links… 0/1" in status_line(app), 10)
        await pilot.press("s")  # retries take ~15 s: meanwhile the screen answers keys
        await until(pilot, lambda: "sort: status" in status_line(app), 2)
        await until(pilot, lambda: any(isinstance(m, LinksChecked) for m in seen), 60)
        await asyncio.sleep(0)
        assert "links not all checked" in status_line(app)
        [message] = [n.message for n in app._notifications]
        assert message == f"http://127.0.0.1:{port}: look up link: connection failed (gave up after 5 tries)"
        assert "\n" not in message and "Traceback" not in message and "app-password" not in message
        assert status_of(app) == {"s0ff": "shared"}
    assert on_disk(ledger)["s0ff"] == row
