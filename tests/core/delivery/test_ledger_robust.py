"""Issue 21 points 3 and 5: text that XML cannot hold, the read-back before replacing, locks that
cannot be left half-made, and a full disk (a real 1 MB tmpfs when the tests run as root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.core.delivery.ledger import STALE_UNREADABLE_S, Ledger, LedgerRow
from tui.core.errors import MrishareError


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "share-list.xlsx"


def lock_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.mrishare-lock")


def test_undecodable_bytes_and_control_characters_are_stored_as_escapes(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.upsert(LedgerRow("s1", participant="P\udcff01", source_folder="/data/P\udcff01\x01x",
                                note="tab\tok", status="shared"))
        ledger.save()
        assert ledger.find_by_participant("P\udcff01") is not None
    with Ledger.open(path) as ledger:
        [row] = ledger.rows()
    assert (row.participant, row.source_folder, row.note) == ("P\\xff01", "/data/P\\xff01\\u0001x", "tab\tok")


def test_a_save_that_does_not_read_back_keeps_the_previous_file(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.upsert(LedgerRow("s1", status="shared"))
        ledger.save()
    with Ledger.open(path) as ledger:
        ledger.upsert(LedgerRow("s2", status="shared"))
        ledger.save()
        saved = path.read_bytes()
        parts = dict(ledger._book.parts)  # type: ignore[union-attr]
        sheet = ledger._sheet.part  # type: ignore[union-attr]
        # what a folder name wrote before text was made XML-safe: a character reference XML 1.0 forbids
        bad_cell = b'<t>s2</t></is></c><c r="B3" t="inlineStr"><is><t>P&#1;</t>'
        parts[sheet] = parts[sheet].replace(b"<t>s2</t>", bad_cell)
        assert b"P&#1;" in parts[sheet]
        with pytest.raises(MrishareError, match=r"did not read back .*previous file is kept"):
            ledger._write(parts)
    assert path.read_bytes() == saved
    with Ledger.open(path) as ledger:
        assert [r.id for r in ledger.rows()] == ["s1", "s2"]
    assert not list(path.parent.glob(".*.tmp"))


def test_unreadable_lock_is_refused_while_fresh_and_taken_over_when_old(path: Path) -> None:
    Ledger.open(path).close()
    lock = lock_of(path)
    lock.write_bytes(b"")  # what a full disk left before locks were written whole
    with pytest.raises(MrishareError, match="unreadable"):
        Ledger.open(path)
    old = time.time() - STALE_UNREADABLE_S - 1
    os.utime(lock, (old, old))
    with Ledger.open(path) as ledger:
        assert ledger.notes == [f"took over the unreadable lock file {lock.name} (left by an interrupted run)"]
    assert not lock.exists()


def test_lock_of_a_dead_process_is_taken_over_with_a_note(path: Path) -> None:
    import socket

    Ledger.open(path).close()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_of(path).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": 0}))
    with Ledger.open(path) as ledger:
        assert ledger.notes == [f"took over the lock of mrishare pid {dead.pid}, which is no longer running"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (needs root); unmounted afterwards."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of `folder` until `leave` bytes are free; return the filler file."""
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, shutil.disk_usage(folder).free - leave))
    return filler


def test_full_disk_at_the_lock_leaves_nothing_behind(small_disk: Path) -> None:
    path = small_disk / "share-list.xlsx"
    filler = fill(small_disk, 0)
    with pytest.raises(MrishareError) as raised:
        Ledger.open(path)
    assert "disk full" in str(raised.value) and str(small_disk) in str(raised.value)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no 0-byte lock, no temp file
    filler.unlink()
    Ledger.open(path).close()


def test_full_disk_at_a_save_keeps_the_ledger_and_says_how_much_is_needed(small_disk: Path) -> None:
    path = small_disk / "share-list.xlsx"
    with Ledger.open(path) as ledger:
        ledger.upsert(LedgerRow("s1", status="shared", note="x" * 2000))
        ledger.save()
        before = path.read_bytes()
        filler = fill(small_disk, 1024)
        ledger.upsert(LedgerRow("s2", status="shared", note="y" * 30000))
        with pytest.raises(MrishareError) as raised:
            ledger.save()
        message = str(raised.value)
        assert message.startswith(f"{path}: disk full: need ") and " free; nothing was left half-written" in message
        assert path.read_bytes() == before
        filler.unlink()
        ledger.save()
    with Ledger.open(path) as ledger:
        assert [r.id for r in ledger.rows()] == ["s1", "s2"]
    assert sorted(p.name for p in small_disk.iterdir()) == ["share-list.xlsx"]
