"""FolderDestination (atomic copies, full disk, shares with expiry) and the shared helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from tui.core.delivery.base import Delivered, check_remote_name, expiry_date
from tui.core.delivery.destinations import destination_from
from tui.core.delivery.folder import FolderDestination
from tui.core.errors import MrishareError
from tui.core.events import StepFinished, StepProgress, StepStarted, drain

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def package(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "package.zip"
    path.parent.mkdir()
    path.write_bytes(os.urandom(300_000))
    return path


@pytest.fixture
def dest(tmp_path: Path) -> FolderDestination:
    (tmp_path / "stick").mkdir()
    return FolderDestination(tmp_path / "stick")


def test_upload_copies_with_progress_and_returns_delivered(dest: FolderDestination, package: Path) -> None:
    events: list = []
    delivered = drain(dest.upload(package, "a1b2c3/sub-01.zip"), events.append)
    assert delivered == Delivered("a1b2c3/sub-01.zip", 300_000, None)
    assert (dest.root / "a1b2c3/sub-01.zip").read_bytes() == package.read_bytes()
    assert isinstance(events[0], StepStarted) and events[0].total == 300_000
    progress = [e for e in events if isinstance(e, StepProgress)]
    assert progress and progress[-1].done == 300_000 and progress[-1].unit == "bytes"
    assert isinstance(events[-1], StepFinished)
    assert [p.name for p in (dest.root / "a1b2c3").iterdir()] == ["sub-01.zip"]  # no temp file left
    assert dest.exists("a1b2c3/sub-01.zip") and not dest.exists("a1b2c3/sub-02.zip")


def test_upload_refuses_to_overwrite(dest: FolderDestination, package: Path) -> None:
    drain(dest.upload(package, "x/sub-01.zip"))
    before = (dest.root / "x/sub-01.zip").read_bytes()
    other = package.with_name("other.zip")
    other.write_bytes(b"different")
    with pytest.raises(MrishareError, match="refusing to overwrite"):
        drain(dest.upload(other, "x/sub-01.zip"))
    assert (dest.root / "x/sub-01.zip").read_bytes() == before


def test_cancel_leaves_no_partial_file(dest: FolderDestination, tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    big.write_bytes(os.urandom(20 << 20))
    cancel = threading.Event()
    stream = dest.upload(big, "c/sub-01.zip", cancel)
    with pytest.raises(MrishareError, match="cancelled"):
        for event in stream:
            if isinstance(event, StepProgress):
                cancel.set()
    assert not (dest.root / "c/sub-01.zip").exists()
    assert list((dest.root / "c").iterdir()) == []


@pytest.mark.parametrize("name", ["/abs/x.zip", "../x.zip", "a/../../x.zip", "", "a//b.zip", "a\\b.zip", "./x"])
def test_bad_remote_names_are_refused(name: str) -> None:
    with pytest.raises(MrishareError, match="relative path"):
        check_remote_name(name)


def test_expiry_gives_full_days() -> None:
    """A link dies at 00:00 of its expiry date: N full days need today + N + 1."""
    assert expiry_date(7, date(2026, 11, 21)) == date(2026, 11, 29)
    with pytest.raises(MrishareError):
        expiry_date(0)


def test_share_extend_list_revoke(dest: FolderDestination, package: Path) -> None:
    delivered = drain(dest.upload(package, "r1/sub-01.zip"))
    info = dest.share(delivered.remote_path, 7, "ledger-3")
    assert info.url == (dest.root / "r1/sub-01.zip").as_uri()
    assert info.expires == date.today() + timedelta(days=8) and info.last_day == date.today() + timedelta(days=7)
    assert (info.has_password, info.label, info.remote_path) == (False, "ledger-3", "r1/sub-01.zip")
    assert dest.list_shares() == [info]
    longer = dest.extend(info.share_id, 30)
    assert longer.expires == date.today() + timedelta(days=31) and dest.list_shares() == [longer]
    dest.revoke(info.share_id, info.remote_path)
    assert dest.list_shares() == [] and not (dest.root / "r1").exists()


def test_share_password_and_missing_file_are_refused(dest: FolderDestination, package: Path) -> None:
    delivered = drain(dest.upload(package, "p/sub-01.zip"))
    with pytest.raises(MrishareError, match="cannot protect"):
        dest.share(delivered.remote_path, 7, "x", password="Correct-Horse-Battery-42")
    with pytest.raises(MrishareError, match="nothing to share"):
        dest.share("p/missing.zip", 7, "x")


def test_cleanup_removes_only_expired(dest: FolderDestination, package: Path) -> None:
    short = dest.share(drain(dest.upload(package, "s/sub-01.zip")).remote_path, 1, "a")
    long = dest.share(drain(dest.upload(package, "l/sub-02.zip")).remote_path, 30, "b")
    assert dest.cleanup_expired(date.today()) == []
    assert dest.cleanup_expired(short.expires) == ["s/sub-01.zip"]
    assert not (dest.root / "s").exists() and (dest.root / "l/sub-02.zip").exists()
    assert dest.list_shares() == [long]


def test_check_reports_folder_and_space(dest: FolderDestination, tmp_path: Path) -> None:
    items = dict((name, (ok, detail)) for name, ok, detail in dest.check())
    assert items["folder"][0] and items["free space"][0] and "free" in items["free space"][1]
    assert FolderDestination(tmp_path / "absent").check()[0][1] is False


def test_destination_from_specs(tmp_path: Path) -> None:
    folder = destination_from(f"folder:{tmp_path}", None)
    assert folder.kind == "folder" and folder.root == tmp_path.resolve()
    with pytest.raises(MrishareError, match="needs a credentials file"):
        destination_from("nextcloud", None)
    with pytest.raises(MrishareError, match="must be"):
        destination_from("ftp:x", None)


FULL_DISK_SCRIPT = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from tui.core.delivery.folder import FolderDestination
from tui.core.errors import MrishareError
from tui.core.events import StepProgress
stick, src = Path(sys.argv[2]), Path(sys.argv[3])
dest = FolderDestination(stick)
# 1. too big from the start: refused before any byte is written
(src / "big.zip").write_bytes(os.urandom(30 << 20))
try:
    for _ in dest.upload(src / "big.zip", "a/sub-01.zip"): pass
except MrishareError as exc: print("precheck:", exc.reason)
# 2. disk fills up during the copy: ENOSPC, partial file removed
(src / "mid.zip").write_bytes(os.urandom(12 << 20))
try:
    for event in dest.upload(src / "mid.zip", "b/sub-01.zip"):
        if isinstance(event, StepProgress) and not (stick / "filler").exists():
            with open(stick / "filler", "wb") as f:
                try: f.write(os.urandom(20 << 20))
                except OSError: pass
except MrishareError as exc: print("midway:", exc.reason)
print("left:", sorted(str(p.relative_to(stick)) for p in stick.rglob("*") if p.is_file()))
"""


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root + unshare for a tmpfs")
def test_full_disk_gives_clear_error_and_no_partial_file(tmp_path: Path) -> None:
    stick, src = tmp_path / "stick", tmp_path / "src"
    stick.mkdir()
    src.mkdir()
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK_SCRIPT)
    mount = f"mount -t tmpfs -o size=20m none {stick} && exec {sys.executable} {script} {REPO} {stick} {src}"
    out = subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("precheck: not enough space: need 31.5 MB")
    assert lines[1] == "midway: destination is full; the partial copy was removed"
    assert lines[2] == "left: ['filler']"
