"""`mrishare share` and `shares ...` against the real Nextcloud 29 kit (issues 15 and 18).

The demo participant goes through the whole pipeline (defacing off, to keep each run near 15 s) to the
server that tests/nextcloud_server.py starts once per session. Every test has its own `remote_path`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import niquests
import pytest
from nextcloud_server import REPO, XDIST_GROUP, NextcloudServer, public_dav, public_download, public_names

from tui.cli import main
from tui.core.config import config_dir, data_dir
from tui.core.credentials import load_credentials
from tui.core.delivery.ledger import Ledger, LedgerRow
from tui.core.delivery.mailtext import mail_text
from tui.core.delivery.nextcloud import NextcloudDestination
from tui.core.delivery.unlock_page import PAGE_SUFFIX
from tui.core.demo import make_demo_study
from tui.core.events import StepFinished, drain
from tui.core.pipeline import LedgerGate, bids_label, run_participant
from tui.core.settings import UserSettings

pytestmark = [XDIST_GROUP, pytest.mark.slow]


@pytest.fixture(scope="module")
def participant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tui.core.events import drain

    return drain(make_demo_study(tmp_path_factory.mktemp("demo"), participants=1, seed=11))[0]


def rows(ledger: Path) -> list[LedgerRow]:
    with Ledger.open(ledger) as book:
        return book.rows()


def share(participant: Path, ledger: Path, *extra: str) -> int:
    return main(["share", str(participant), "--deface", "off", "--ledger", str(ledger), *extra])


def package_files(row: LedgerRow) -> list[str]:
    """What one share puts on the server: its own folder (the row id) with the zip and the passphrase page."""
    assert row.remote_path == row.id  # the link reaches the folder
    package = f"{row.id}/sub-{bids_label(row.pseudonym)}"
    return [f"{package}.zip", f"{package}{PAGE_SUFFIX}"]


def default_credentials(server: NextcloudServer, **overrides: object) -> Path:
    """The credentials file where a user keeps it (the config folder), 0600."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return server.credentials(folder, **overrides)


# -- issue 18.1: a refused credentials file is an error, never a silent local delivery ------------------
@pytest.mark.parametrize("fault, reason", [
    ("mode", r"readable by group/others \(mode 644\); fix: chmod 600 "),
    ("json", r"not readable as JSON"),
    ("range", r"chunk_mib must be between 5 and 4096"),
])
def test_refused_credentials_file_delivers_nothing(nextcloud: NextcloudServer, participant: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], fault: str, reason: str) -> None:
    path = default_credentials(nextcloud, **({"chunk_mib": 1} if fault == "range" else {}))
    if fault == "mode":
        path.chmod(0o644)
    elif fault == "json":
        path.write_text("{bad json", encoding="utf-8")
    ledger = tmp_path / "share-list.xlsx"
    assert share(participant, ledger) == 2
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert re.search(reason, err)
    assert not (data_dir() / "outbox").exists() and not ledger.exists()


def test_without_credentials_file_the_run_says_it_uses_the_local_folder(
        participant: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "share-list.xlsx"
    assert share(participant, ledger) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"No credentials file at {config_dir() / 'credentials.json'}: packages go to the local folder" in out
    [row] = rows(ledger)
    assert row.status == "shared" and row.link.startswith("file://")


# -- issue 18.2 and 15: revoked is never "shared"; again / deleted row give one new share ---------------
def test_revoked_row_is_not_shared_until_shared_again_and_a_deleted_row_shares_once(
        nextcloud: NextcloudServer, participant: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    creds = default_credentials(nextcloud)
    root = json.loads(creds.read_text())["remote_path"]
    ledger = tmp_path / "share-list.xlsx"
    assert share(participant, ledger) == 0
    [first] = rows(ledger)
    assert main(["shares", "--ledger", str(ledger), "revoke", first.id]) == 0
    capsys.readouterr()

    assert share(participant, ledger) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "revoked" in out and f"mrishare shares again {first.id}" in out and "│ shared" not in out
    [still] = rows(ledger)
    assert still.status == "revoked" and nextcloud.files(root) == []

    assert main(["shares", "--ledger", str(ledger), "again", first.id]) == 0
    assert share(participant, ledger) == 0
    [second] = rows(ledger)
    assert second.id != first.id and second.status == "shared"
    assert nextcloud.files(root) == package_files(second)

    with Ledger.open(ledger) as book:  # the user deletes the row: "share this participant again"
        book.delete(second.id)
        book.save()
    assert share(participant, ledger) == 0
    [third] = rows(ledger)
    assert third.id not in (first.id, second.id) and nextcloud.files(root) == package_files(third)
    assert [s["file_target"] for s in nextcloud.shares() if s["token"] in third.link] == [
        f"/{Path(third.remote_path).name}"]

    # the app password was withdrawn meanwhile: withdrawing the old upload fails as a login, not a deidentify
    default_credentials(nextcloud, password="wrong-app-password-0123456789abcdef",
                        remote_path=json.loads(creds.read_text())["remote_path"])
    with Ledger.open(ledger) as book:
        book.delete(third.id)
        book.save()
    capsys.readouterr()
    assert share(participant, ledger) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert " upload failed: " in err and "login refused" in err and "deidentify failed" not in err


# -- issue 18.3: the ledger follows the server -----------------------------------------------------------
def test_expired_on_the_server_shows_in_check_and_cleanup_removes_the_file(
        nextcloud: NextcloudServer, participant: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    creds = default_credentials(nextcloud)
    root = json.loads(creds.read_text())["remote_path"]
    ledger = tmp_path / "share-list.xlsx"
    assert share(participant, ledger) == 0
    [row] = rows(ledger)
    nextcloud.sql(f"UPDATE oc_share SET expiration='2000-01-01 00:00:00' WHERE id={row.share_id}")
    capsys.readouterr()
    assert main(["shares", "--ledger", str(ledger), "list", "--check"]) == 0
    out = capsys.readouterr().out
    [checked] = rows(ledger)
    assert checked.status == "revoked" and not checked.link  # gone before the ledger's expiry date
    assert f"{row.id}: revoked (link gone on the server (seen {date.today()}))" in out
    trash = nextcloud.trash()
    assert main(["shares", "--ledger", str(ledger), "cleanup"]) == 0
    assert "removed 1 remote file(s)" in capsys.readouterr().out
    assert nextcloud.files(root) == [] and nextcloud.trash() == trash
    assert share(participant, ledger) == 1
    assert f"mrishare shares again {row.id}" in " ".join(capsys.readouterr().out.split())


# -- issue 15.2: policies read before the upload ----------------------------------------------------------
def test_enforced_password_and_maximum_expiry_are_kept(nextcloud: NextcloudServer, participant: Path,
                                                       tmp_path: Path) -> None:
    default_credentials(nextcloud, expiration_days=14)
    nextcloud.app_setting("shareapi_enforce_links_password", "yes")
    nextcloud.enforce_expiry(7)
    ledger = tmp_path / "share-list.xlsx"
    assert share(participant, ledger) == 0
    [row] = rows(ledger)
    assert row.status == "shared" and len(row.share_password) >= 10
    assert row.expires == date.today() + timedelta(days=7)
    assert row.note == "link gives 6 days, not 14: the server allows at most 6"
    assert f"{row.expires - timedelta(days=1):%d.%m.%Y}" in mail_text(row, "de")[1]
    assert public_download(row.link, "wrong-password-1").status_code == 200  # the form again
    assert public_download(row.link, row.share_password).content[:2] == b"PK"


def test_wrong_app_password_fails_at_upload_before_any_work(nextcloud: NextcloudServer, participant: Path,
                                                            tmp_path: Path, capsys) -> None:
    default_credentials(nextcloud, password="wrong-app-password-0123456789abcdef")
    ledger = tmp_path / "share-list.xlsx"
    assert share(participant, ledger) == 1
    [row] = rows(ledger)
    assert row.status == "failed" and row.last_action == "upload failed"
    assert row.note.startswith(f"{nextcloud.url}: login refused: check username and app password")
    assert "wrong-app-password" not in capsys.readouterr().out


# -- issue 15.3: nothing half-done ----------------------------------------------------------------------------
def _run_switching_after_upload(nextcloud: NextcloudServer, participant: Path, ledger: Path, creds: Path,
                                switch: str) -> LedgerRow:
    """One pipeline run whose share step meets a server changed right after the upload."""
    from tui.core.dicom.scan import scan

    settings = UserSettings(destination="nextcloud", deface_mode="off").pipeline_settings(creds)
    destination = NextcloudDestination(load_credentials(creds), attempts=2, backoff_s=0.05)
    [person] = scan(participant, as_participant=True).participants
    with Ledger.open(ledger) as book:
        events = run_participant(person, settings, LedgerGate(book), destination)
        for event in events:
            if isinstance(event, StepFinished) and event.step == "upload":
                if switch == "links off":
                    nextcloud.app_setting("shareapi_allow_links", "no")
                else:
                    nextcloud.maintenance()
        [row] = book.rows()
    destination.close()
    return row


def test_share_refused_after_upload_removes_the_file(nextcloud: NextcloudServer, participant: Path,
                                                     tmp_path: Path) -> None:
    creds = default_credentials(nextcloud)
    root = json.loads(creds.read_text())["remote_path"]
    ledger = tmp_path / "share-list.xlsx"
    row = _run_switching_after_upload(nextcloud, participant, ledger, creds, "links off")
    assert row.status == "failed" and row.last_action == "share failed"
    assert row.note.endswith("; the uploaded file was removed") and not row.remote_path
    assert nextcloud.files(root) == []
    nextcloud.undo()
    assert share(participant, ledger) == 0
    [again] = rows(ledger)
    assert again.status == "shared" and again.note == "" and nextcloud.files(root) == package_files(again)


def test_file_left_after_a_failed_share_is_removed_by_cleanup(nextcloud: NextcloudServer, participant: Path,
                                                              tmp_path: Path) -> None:
    creds = default_credentials(nextcloud)
    root = json.loads(creds.read_text())["remote_path"]
    ledger = tmp_path / "share-list.xlsx"
    row = _run_switching_after_upload(nextcloud, participant, ledger, creds, "maintenance")
    assert row.status == "failed" and row.remote_path
    assert row.note.endswith("the uploaded file is still on the server: `mrishare shares cleanup` removes it")
    nextcloud.undo()
    assert nextcloud.files(root) == package_files(row)
    assert main(["shares", "--ledger", str(ledger), "cleanup"]) == 0
    assert nextcloud.files(root) == []
    [cleaned] = rows(ledger)
    assert cleaned.status == "failed" and not cleaned.remote_path
    assert share(participant, ledger) == 0
    [shared] = rows(ledger)
    assert shared.status == "shared" and nextcloud.files(root) == package_files(shared)


# -- issue 20: the passphrase page reaches the participant through the one link -------------------------------
def test_the_link_opens_a_folder_with_zip_and_page_and_revoke_removes_both(
        nextcloud: NextcloudServer, participant: Path, tmp_path: Path) -> None:
    root = json.loads(default_credentials(nextcloud).read_text())["remote_path"]
    ledger = tmp_path / "share-list.xlsx"
    assert share(participant, ledger) == 0
    [row] = rows(ledger)
    assert nextcloud.files(root) == package_files(row)
    zip_name, page_name = (name.split("/")[1] for name in package_files(row))
    assert public_names(row.link) == [zip_name, page_name]
    package, page = public_dav(row.link, "GET", zip_name), public_dav(row.link, "GET", page_name)
    assert hashlib.sha256(package.content).hexdigest() == row.sha256 and len(package.content) == row.size
    assert page.status_code == 200 and b"<!DOCTYPE html>" in page.content[:200]
    assert row.passphrase.encode() not in page.content and row.passphrase not in page_name
    _, body = mail_text(row, "de+en")
    assert "Der Link öffnet einen Ordner mit zwei Dateien" in body and "The link opens a folder with two files" in body
    assert body.index(PAGE_SUFFIX) < body.index("7-Zip")
    trash = nextcloud.trash()
    assert main(["shares", "--ledger", str(ledger), "revoke", row.id]) == 0
    assert niquests.get(row.link, timeout=30).status_code == 404
    assert nextcloud.files(root) == [] and nextcloud.trash() == trash
    assert not NextcloudDestination(load_credentials(config_dir() / "credentials.json")).exists(row.id)


def test_an_old_share_of_the_zip_alone_still_revokes_and_cleans_up(
        nextcloud: NextcloudServer, tmp_path: Path) -> None:
    """A ledger from before the folder shares: its rows name the zip, and their link reaches the zip alone."""
    creds = default_credentials(nextcloud)
    root = json.loads(creds.read_text())["remote_path"]
    cloud = NextcloudDestination(load_credentials(creds), attempts=2, backoff_s=0.05)
    ledger = tmp_path / "share-list.xlsx"
    with Ledger.open(ledger) as book:
        for row_id in ("s0old1", "s0old2"):
            local = tmp_path / f"{row_id}.zip"
            local.write_bytes(b"PK" + bytes(3000))
            drain(cloud.upload(local, f"{row_id}/sub-x.zip"))
            info = cloud.share(f"{row_id}/sub-x.zip", 3, row_id)
            book.upsert(LedgerRow(row_id, participant=row_id, destination="nextcloud", remote_path=info.remote_path,
                                  share_id=info.share_id, link=info.url, status="shared", expires=info.expires))
        book.save()
    cloud.close()
    assert PAGE_SUFFIX not in mail_text(rows(ledger)[0], "de+en")[1]  # no page was delivered with it
    assert main(["shares", "--ledger", str(ledger), "revoke", "s0old1"]) == 0
    assert nextcloud.files(root) == ["s0old2/sub-x.zip"]
    [old2] = [r for r in rows(ledger) if r.id == "s0old2"]
    nextcloud.sql(f"UPDATE oc_share SET expiration='2000-01-01 00:00:00' WHERE id={old2.share_id}")
    assert main(["shares", "--ledger", str(ledger), "cleanup"]) == 0
    assert nextcloud.files(root) == []


def _two_philips_heads(shared_data: Path, folder: Path) -> Path:
    """One participant folder holding the Philips 1 mm head twice: the copy as a second series (new UIDs)."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    source = shared_data / "head-mri" / "philips_ingenia_elitionx_adni_mprage_1mm" / "dicom"
    shutil.copytree(source, folder / "first")
    (folder / "second").mkdir()
    series = generate_uid()
    for path in sorted(source.iterdir()):
        ds = dcmread(path)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = 1401
        ds.save_as(folder / "second" / path.name)
    return folder


def _chunks_on_server(server: NextcloudServer) -> int:
    """Complete 5 MiB chunks in the uploader's chunked-upload folders on the server's disk."""
    uploads = server.workdir / "data" / server.user / "uploads"
    return sum(1 for p in uploads.glob("*/*") if p.is_file() and p.stat().st_size == 5 << 20)


def test_kill_9_of_the_server_during_a_chunked_share_then_share_again_gives_one_file_link_and_row(
        nextcloud: NextcloudServer, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mrishare share` (a child process) of two Philips heads in 5 MiB chunks; the server is killed (SIGKILL to
    its process group) once two chunks are on it. The run gives up with the upload failed (after its ~15 s of
    retries); after a restart the next run resumes from the chunks the server kept: one file, one link, one
    ledger row. Measured 77-96 s on the shared 2-core machine (load 8-9), most of it the first run's processing."""
    creds = default_credentials(nextcloud)  # chunk_mib 5, single_put_mib 5: the ~23 MB package goes in chunks
    root = json.loads(creds.read_text())["remote_path"]
    person = _two_philips_heads(shared_data, tmp_path / "sub-philips")
    ledger = tmp_path / "share-list.xlsx"
    run = subprocess.Popen([sys.executable, "-m", "tui", "share", str(person), "--deface", "off", "--ledger",
                            str(ledger)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while _chunks_on_server(nextcloud) < 2:
            assert run.poll() is None, f"the share ended before two chunks were up: {run.communicate()}"
            time.sleep(0.02)
        # the client is held while the server dies, so a fast machine cannot finish the upload in between
        os.kill(run.pid, signal.SIGSTOP)
        nextcloud.kill9()
        os.kill(run.pid, signal.SIGCONT)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, out + err
    assert " upload failed: " in " ".join(err.split()), err
    [failed] = rows(ledger)
    assert failed.status == "failed" and failed.last_action == "upload failed"

    nextcloud.restart()
    capsys.readouterr()
    assert share(person, ledger) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(r"resuming: [1-9]\d* chunk\(s\) already on the server", err), err
    [row] = rows(ledger)
    assert row.id == failed.id and row.status == "shared"
    assert nextcloud.files(root) == package_files(row)
    assert [s["token"] for s in nextcloud.shares() if s["file_target"] == f"/{Path(row.remote_path).name}"] == [
        row.link.rsplit("/", 1)[1]]
    assert _chunks_on_server(nextcloud) == 0
    zip_name = next(name.split("/")[1] for name in package_files(row) if name.endswith(".zip"))
    assert hashlib.sha256(public_dav(row.link, "GET", zip_name).content).hexdigest() == row.sha256
