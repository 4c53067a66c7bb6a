"""The whole pipeline on the demo study: folder and Nextcloud destinations, resume after kill -9, re-share."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from itertools import pairwise
from pathlib import Path

import openpyxl
import pytest
from nextcloud_standin import StandinNextcloud

from tui.core.credentials import parse_credentials
from tui.core.delivery.folder import FolderDestination
from tui.core.delivery.ledger import Ledger
from tui.core.delivery.unlock_page import page_path
from tui.core.demo import make_demo_study
from tui.core.dicom.scan import scan
from tui.core.errors import MrishareError
from tui.core.events import StepFailed, StepFinished, StepNote, drain
from tui.core.pipeline import PipelineSettings, bids_label, run_batch

pytestmark = pytest.mark.slow

PHASES = ("deidentify", "convert", "pack", "upload")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One invented participant (localizer, 3D T1, T2), made once for the module."""
    out = tmp_path_factory.mktemp("demo")
    drain(make_demo_study(out, participants=1, seed=7))
    return out


def participant_dir(demo: Path) -> Path:
    return next(p for p in demo.iterdir() if p.is_dir())


def settings(tmp_path: Path, dest: str, **kw: object) -> PipelineSettings:
    return PipelineSettings(destination=dest, work_dir=tmp_path / "work", **kw)  # type: ignore[arg-type]


def test_folder_destination_end_to_end(demo: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    participants = scan(demo).participants
    events: list[object] = []
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        result = drain(run_batch(participants, settings(tmp_path, f"folder:{outbox}"), ledger), events.append)
        row = ledger.rows()[0]
    assert [o.status for o in result.outcomes] == ["shared"], result.outcomes
    finished = [e.step for e in events if isinstance(e, StepFinished) and e.subject == participants[0].key]
    assert finished == ["deidentify", "convert", "deface", "pack", "upload", "share"]
    assert row.status == "shared" and row.link.startswith("file://") and row.expires is not None
    assert len(row.passphrase.split("-")) >= 7
    zips = list(outbox.rglob("*.zip"))
    assert len(zips) == 1 and row.link.endswith(zips[0].name)
    listing = subprocess.run(["7z", "l", "-slt", f"-p{row.passphrase}", str(zips[0])], capture_output=True,
                             text=True, check=True).stdout
    names = [line.removeprefix("Path = ") for line in listing.splitlines() if line.startswith("Path = ")]
    label = bids_label(row.pseudonym)
    assert not label.startswith("sub")  # the package is sub-<label>, never sub-sub…
    assert any(n.endswith(f"sub-{label}_ses-1_T1w.nii.gz") for n in names), names
    assert any(n.endswith("README.txt") for n in names) and any(n.endswith("index.html") for n in names)
    assert any(n.endswith(".png") for n in names)
    assert "Method = AES-256 Deflate" in listing or "Method = AES-256 Store" in listing
    test = subprocess.run(["7z", "t", "-pwrong-words-here", str(zips[0])], capture_output=True, text=True)
    assert test.returncode != 0
    # the passphrase page lies beside the zip, holds no passphrase, and goes when the share is revoked
    assert sorted(p.name for p in zips[0].parent.iterdir()) == sorted([zips[0].name, page_path(zips[0]).name])
    assert row.passphrase not in page_path(zips[0]).read_text(encoding="utf-8")
    assert any(n.endswith(".js") and "/viewer/" in n for n in names)
    FolderDestination(outbox).revoke(row.share_id, row.remote_path)
    assert not zips[0].parent.exists()
    # nothing of the participant's folder name (an invented "real" name) reaches the outbox
    name_parts = [p for p in participant_dir(demo).name.split("_") if p.isalpha()]
    for path in outbox.rglob("*"):
        assert not any(part.lower() in str(path.relative_to(outbox)).lower() for part in name_parts)
    assert oct((tmp_path / "share-list.xlsx").stat().st_mode & 0o777) == "0o600"


def test_no_passphrase_in_events(demo: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    events: list[object] = []
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        drain(run_batch(scan(demo).participants, settings(tmp_path, f"folder:{outbox}"), ledger), events.append)
        phrase = ledger.rows()[0].passphrase
    assert phrase
    text = "\n".join(repr(e) for e in events).lower()
    words = phrase.lower().split("-")
    # Single common words may occur in any text (and in the temp folder's name): look for the phrase and for
    # every pair of its words, as any leak of it would show them, whatever the separator.
    pairs = [sep.join(pair) for pair in pairwise(words) for sep in ("-", " ", "", "_")]
    assert not [found for found in [phrase.lower(), *pairs] if found in text]


def run_cli(args: list[str], home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MRISHARE_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "tui", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.mark.slow
def test_a_reface_that_is_no_stranger_falls_back_to_deface_and_says_so(demo: Path, tmp_path: Path) -> None:
    """The demo T1 *is* the template head: refacing it keeps its face, so the run defaces it instead."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    participants = scan(demo).participants
    events: list[object] = []
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        result = drain(run_batch(participants, settings(tmp_path, f"folder:{outbox}", preset="research",
                                                        keep_work=True), ledger), events.append)
    assert [o.status for o in result.outcomes] == ["shared"], result.outcomes
    notes = [e.message for e in events if isinstance(e, StepNote) and e.step == "deface"]
    assert any("is not a stranger" in n and "falling back to deface" in n for n in notes), notes
    journal = json.loads(next((tmp_path / "work").glob("*/journal.json")).read_text())
    checks = journal["done"]["deface-files"]["checks"]
    t1 = next(v for k, v in checks.items() if k.endswith("_T1w.nii.gz"))
    assert t1.startswith("deface: "), checks  # the deface's own check decides what is held back...
    # ...and the demo head is recognised as the template itself (nobody's face), so the demo T1 is shared
    assert "deface template's own head" in t1 and "faces in " in t1, checks
    assert journal["done"]["deface"]["held"] == 0
    assert any(k.endswith("_T1w.nii.gz") for k in journal["done"]["deface-files"]["files"])


def journal_steps(home: Path) -> set[str]:
    steps: set[str] = set()
    for path in (home / "data" / "work").glob("*/journal.json"):
        with contextlib.suppress(ValueError, KeyError):
            steps |= set(json.loads(path.read_text())["done"])
    return steps


@pytest.mark.parametrize("kill_after", PHASES)
def test_kill_9_then_resume_completes_without_duplicates(demo: Path, tmp_path: Path, kill_after: str) -> None:
    home, outbox, ledger = tmp_path / "home", tmp_path / "outbox", tmp_path / "share-list.xlsx"
    outbox.mkdir()
    args = ["share", str(participant_dir(demo)), "--dest", f"folder:{outbox}", "--ledger", str(ledger)]
    proc = run_cli(args, home)
    deadline = time.monotonic() + 240
    while kill_after not in journal_steps(home) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"finished before it could be killed after {kill_after}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    openpyxl.load_workbook(ledger)  # still parseable after the kill
    again = run_cli(args, home)
    _out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()
    with Ledger.open(ledger) as book:
        rows = book.rows()
    assert [r.status for r in rows] == ["shared"]
    zips = list(outbox.rglob("*.zip"))
    assert len(zips) == 1, zips
    assert not list(outbox.rglob("*.part"))
    assert rows[0].link.endswith(zips[0].name)
    subprocess.run(["7z", "t", f"-p{rows[0].passphrase}", str(zips[0])], capture_output=True, check=True)


def test_deleted_row_means_share_again(demo: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    conf = settings(tmp_path, f"folder:{outbox}")
    path = tmp_path / "share-list.xlsx"
    with Ledger.open(path) as ledger:
        drain(run_batch(scan(demo).participants, conf, ledger))
        first = ledger.rows()[0]
    wb = openpyxl.load_workbook(path)  # the user deletes the row in their spreadsheet program
    wb.active.delete_rows(2)
    wb.save(path)
    os.chmod(path, 0o600)
    with Ledger.open(path) as ledger:
        result = drain(run_batch(scan(demo).participants, conf, ledger))
        rows = ledger.rows()
    assert result.outcomes[0].status == "shared"
    assert len(rows) == 1 and rows[0].id != first.id and rows[0].passphrase != first.passphrase
    zips = list(outbox.rglob("*.zip"))
    assert len(zips) == 1 and first.share_id not in str(zips[0]), "the old remote file was not withdrawn"


@pytest.fixture
def nextcloud():
    with StandinNextcloud(users={"lab": "app-password-1234"}) as server:
        yield server


def nc_credentials(server: StandinNextcloud, tmp_path: Path):
    return parse_credentials({"destination": "nextcloud", "nextcloud_baseurl": server.base_url, "username": "lab",
                              "password": "app-password-1234", "remote_path": "MRI"}, tmp_path / "c.json")


def test_nextcloud_link_share(demo: Path, tmp_path: Path, nextcloud: StandinNextcloud) -> None:
    conf = settings(tmp_path, "nextcloud", credentials=nc_credentials(nextcloud, tmp_path), expiry_days=7)
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        result = drain(run_batch(scan(demo).participants, conf, ledger))
        row = ledger.rows()[0]
    assert result.outcomes[0].status == "shared", result.outcomes
    assert "/s/" in row.link and row.expires is not None
    remote = [f for f in nextcloud.remote_files("lab") if f.startswith("MRI/")]
    # the share's own folder holds the zip and its passphrase page, and the link is to that folder
    assert [Path(f).suffix for f in remote] == [".zip", ".html"] and row.share_id
    assert {str(Path(f).parent) for f in remote} == {f"MRI/{row.remote_path}"} and row.remote_path == row.id
    assert [s.path for s in nextcloud.shares.values()] == [f"/MRI/{row.id}"]
    assert all(row.passphrase not in str(r) for r in nextcloud.requests)


def test_dead_server_fails_cleanly_then_resumes(demo: Path, tmp_path: Path, nextcloud: StandinNextcloud) -> None:
    conf = settings(tmp_path, "nextcloud", credentials=nc_credentials(nextcloud, tmp_path))
    nextcloud.maintenance = True
    events: list[object] = []
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        result = drain(run_batch(scan(demo).participants, conf, ledger), events.append)
        assert result.outcomes[0].status == "failed"
        assert ledger.rows()[0].status == "failed"
        failed = [e for e in events if isinstance(e, StepFailed)]
        assert failed and failed[0].step == "upload" and "\n" not in failed[0].reason
        nextcloud.maintenance = False
        again = drain(run_batch(scan(demo).participants, conf, ledger))
        assert again.outcomes[0].status == "shared"
        assert len(ledger.rows()) == 1
    assert len([f for f in nextcloud.remote_files("lab") if f.startswith("MRI/")]) == 2  # the zip and its page


def test_zipcrypto_needs_nextcloud_and_gets_a_share_password(demo: Path, tmp_path: Path,
                                                             nextcloud: StandinNextcloud) -> None:
    with pytest.raises(MrishareError, match="zipcrypto"):
        settings(tmp_path, f"folder:{tmp_path}", encryption="zipcrypto")
    conf = settings(tmp_path, "nextcloud", credentials=nc_credentials(nextcloud, tmp_path), encryption="zipcrypto")
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        result = drain(run_batch(scan(demo).participants, conf, ledger))
        row = ledger.rows()[0]
    assert result.outcomes[0].status == "shared", result.outcomes
    assert row.mode == "zipcrypto" and len(row.share_password.split("-")) >= 5
    share = next(iter(nextcloud.shares.values()))
    assert share.password_hash and share.password_hash != row.share_password  # stored hashed, like Nextcloud
    sent = [r for r in nextcloud.requests if "shares" in r.path]
    assert all(row.share_password not in (r.query or "") for r in sent)


STATUS_AFTER = {"deidentify": "de-identified", "convert": "converted", "pack": "packed", "upload": "uploaded",
                "share": "shared"}


def ledger_status(path: Path) -> str | None:
    """The status cell of the only row, read without taking the ledger's lock."""
    try:
        sheet = openpyxl.load_workbook(path, read_only=True)["shares"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    rows = list(sheet.iter_rows(values_only=True))
    if len(rows) < 2:
        return None
    return str(rows[1][rows[0].index("Status")])


def test_journal_never_runs_ahead_of_the_ledger(demo: Path, tmp_path: Path) -> None:
    """Whatever moment a kill -9 hits, the ledger already shows every step the journal claims."""
    from tui.core.delivery.ledger import STATUSES

    home, outbox, ledger = tmp_path / "home", tmp_path / "outbox", tmp_path / "share-list.xlsx"
    outbox.mkdir()
    proc = run_cli(["share", str(participant_dir(demo)), "--dest", f"folder:{outbox}", "--ledger", str(ledger)],
                   home)
    seen: set[str] = set()
    checked = 0
    while proc.poll() is None or (journal_steps(home) & set(STATUS_AFTER)) - seen:
        steps = journal_steps(home) & set(STATUS_AFTER)
        if steps - seen:
            status = ledger_status(ledger)  # read after the journal: must already be as far
            latest = max(steps, key=lambda s: STATUSES.index(STATUS_AFTER[s]))
            assert status is not None and STATUSES.index(status) >= STATUSES.index(STATUS_AFTER[latest]), \
                (latest, status)
            seen |= steps
            checked += 1
        time.sleep(0.005)
    assert proc.returncode == 0 and seen == set(STATUS_AFTER) and checked >= 2
