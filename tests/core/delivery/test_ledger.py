"""share-list.xlsx: round trip, the user's columns/sheets/formatting, locks, corruption, deleted rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from openpyxl.drawing.image import Image
from openpyxl.styles import PatternFill
from PIL import Image as PILImage

from tui.core.delivery.ledger import STATUSES, Ledger, LedgerRow
from tui.core.errors import MrishareError

SECRET = "quartz-walrus-tundra-lagoon-zephyr"


def _row(row_id: str, **kw: object) -> LedgerRow:
    base: dict[str, object] = {
        "participant": f"P-{row_id}", "pseudonym": f"ps{row_id}", "source_folder": f"/data/{row_id}",
        "series": 3, "size": 123456789, "sha256": "ab" * 32, "destination": "folder",
        "remote_path": f"/share/{row_id}.zip", "share_id": "42", "link": f"https://cloud.example/s/{row_id}",
        "passphrase": SECRET, "expires": date(2026, 12, 24), "status": "shared", "mode": "aes",
        "created": datetime(2026, 11, 20, 9, 30), "last_action": "share", "note": "",
    }
    base.update(kw)
    return LedgerRow(row_id, **base)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "share-list.xlsx"


def test_round_trip_all_fields_and_mode_0600(path: Path) -> None:
    rows = [_row("a"), _row("b", status="revoked", expires=None, created=None, revealed=datetime(2026, 11, 21, 8, 0))]
    with Ledger.open(path) as ledger:
        assert path.exists() and ledger.rows() == []
        for row in rows:
            ledger.upsert(row)
        ledger.save()
    assert path.stat().st_mode & 0o777 == 0o600
    with Ledger.open(path) as ledger:
        assert ledger.rows() == rows
        assert ledger.get("b") == rows[1] and ledger.get("zz") is None
        assert ledger.find_by_participant("P-a") == rows[0]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp or lock left


def test_passphrase_not_in_repr(path: Path) -> None:
    assert SECRET not in repr(_row("a"))


def test_save_makes_an_existing_0644_file_private(path: Path) -> None:
    with Ledger.open(path):
        pass
    os.chmod(path, 0o644)
    with Ledger.open(path) as ledger:
        ledger.upsert(_row("a"))
        ledger.save()
    assert path.stat().st_mode & 0o777 == 0o600


def test_user_columns_sheets_and_formatting_survive(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.upsert(_row("a"))
        ledger.save()
    wb = openpyxl.load_workbook(path)
    ws = wb["shares"]
    ws.cell(1, 25, "Called on")
    ws.cell(2, 25, "Tuesday, left a message")
    yellow = PatternFill("solid", fgColor="FFFF00")
    for cell in ws[2]:
        cell.fill = yellow
    ws.column_dimensions["K"].width = 60
    notes = wb.create_sheet("notes")
    notes["A1"] = "ethics approval 2026-17"
    wb.save(path)

    with Ledger.open(path) as ledger:
        ledger.upsert(_row("a", status="expired"))
        ledger.upsert(_row("b"))
        ledger.save()

    wb = openpyxl.load_workbook(path)
    ws = wb["shares"]
    assert wb.sheetnames == ["shares", "notes"] and wb["notes"]["A1"].value == "ethics approval 2026-17"
    assert ws.cell(2, 25).value == "Tuesday, left a message" and ws.cell(3, 25).value is None
    assert ws.column_dimensions["K"].width == 60
    assert ws.cell(2, 1).fill.fgColor.rgb.endswith("FFFF00")
    assert ws.cell(3, 1).fill.fgColor.rgb.endswith("FFFF00")  # new row takes the row above's style
    with Ledger.open(path) as ledger:
        assert [r.status for r in ledger.rows()] == ["expired", "shared"]


def test_a_row_the_user_deleted_stays_deleted(path: Path) -> None:
    with Ledger.open(path) as ledger:
        for row_id in "abc":
            ledger.upsert(_row(row_id))
        ledger.save()
    wb = openpyxl.load_workbook(path)
    wb["shares"].delete_rows(2)  # the user deletes participant a: "share again"
    wb.save(path)
    with Ledger.open(path) as ledger:
        assert ledger.get("a") is None and ledger.find_by_participant("P-a") is None
        ledger.upsert(_row("b", status="expired"))
        ledger.save()
    with Ledger.open(path) as ledger:
        assert [r.id for r in ledger.rows()] == ["b", "c"]


def test_edit_on_disk_while_open_is_kept(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.upsert(_row("a"))
        ledger.save()
        time.sleep(0.01)
        wb = openpyxl.load_workbook(path)
        wb["shares"].cell(2, 20, "called back")  # column T = Note
        wb.save(path)
        ledger.upsert(_row("b"))
        ledger.save()
    with Ledger.open(path) as ledger:
        assert ledger.get("a").note == "called back" and ledger.get("b") is not None


def test_workbook_with_an_image_can_be_saved_repeatedly(path: Path, tmp_path: Path) -> None:
    with Ledger.open(path):
        pass
    logo = tmp_path / "logo.png"
    PILImage.new("RGB", (8, 8), "red").save(logo)
    wb = openpyxl.load_workbook(path)
    wb.create_sheet("logo").add_image(Image(str(logo)), "B2")
    wb.save(path)
    with Ledger.open(path) as ledger:
        for row_id in "abc":
            ledger.upsert(_row(row_id))
            ledger.save()
    wb = openpyxl.load_workbook(path)
    assert len(wb["logo"]._images) == 1 and wb["shares"].max_row == 4


def test_second_open_is_refused_until_the_first_closes(path: Path) -> None:
    first = Ledger.open(path)
    with pytest.raises(MrishareError, match="another mrishare"):
        Ledger.open(path)
    first.close()
    Ledger.open(path).close()


def test_stale_lock_of_a_dead_process_is_taken_over(path: Path) -> None:
    with Ledger.open(path):
        pass
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = path.with_name(f".{path.name}.mrishare-lock")
    import json
    import socket
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": 0}))
    with Ledger.open(path) as ledger:
        assert ledger.rows() == []


def test_lock_held_by_another_live_process(path: Path) -> None:
    script = ("import sys, time; sys.path.insert(0, sys.argv[2]); from tui.core.delivery.ledger import Ledger; "
              "l = Ledger.open(__import__('pathlib').Path(sys.argv[1])); print('ok', flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", script, str(path), str(Path(__file__).parents[3])],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ok"
        with pytest.raises(MrishareError, match=f"pid {child.pid}"):
            Ledger.open(path)
    finally:
        child.kill()
        child.wait()
    with Ledger.open(path):  # the killed child's lock is stale now
        pass


@pytest.mark.parametrize("lock_name", [".~lock.share-list.xlsx#", "~$share-list.xlsx"])
def test_office_lock_refuses_open_and_save_without_touching_the_file(path: Path, lock_name: str) -> None:
    with Ledger.open(path) as ledger:
        ledger.upsert(_row("a"))
        ledger.save()
        before = path.read_bytes()
        lock = path.with_name(lock_name)
        lock.write_text(",someone,host,01.01.2026 10:00,file:///home/someone/.config/libreoffice/4;")
        ledger.upsert(_row("b"))
        with pytest.raises(MrishareError, match="LibreOffice or Excel"):
            ledger.save()
    with pytest.raises(MrishareError, match="LibreOffice or Excel"):
        Ledger.open(path)
    assert path.read_bytes() == before
    lock.unlink()
    with Ledger.open(path) as ledger:
        assert [r.id for r in ledger.rows()] == ["a"]


@pytest.mark.parametrize("content", [b"", b"not a workbook at all", b"PK\x03\x04 truncated zip"])
def test_corrupt_file_is_refused_and_left_untouched(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    with pytest.raises(MrishareError, match="cannot read the workbook"):
        Ledger.open(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # lock released


def test_bad_cells_are_named_without_their_value(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.upsert(_row("a"))
        ledger.save()
    wb = openpyxl.load_workbook(path)
    wb["shares"]["M2"] = "next tuesday"  # Expires
    wb.save(path)
    with pytest.raises(MrishareError, match="cell M2") as info:
        Ledger.open(path)
    assert "tuesday" not in str(info.value)
    wb["shares"]["M2"] = None
    wb["shares"]["N2"] = "sent"  # Status
    wb.save(path)
    with pytest.raises(MrishareError, match="cell N2: unknown status"):
        Ledger.open(path)


def test_seed_style_headers_are_understood(path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(["ID", "Participant", "Link", "Password", "Expiration"])
    ws.append(["s1", "P01", "https://cloud.example/s/x", SECRET, datetime(2026, 12, 1)])
    wb.save(path)
    with Ledger.open(path) as ledger:
        row = ledger.get("s1")
        assert row.passphrase == SECRET and row.expires == date(2026, 12, 1) and row.status == "new"
        ledger.upsert(_row("s2"))
        ledger.save()
    ws = openpyxl.load_workbook(path)["Sheet1"]
    assert [c.value for c in ws[1]][:5] == ["ID", "Participant", "Link", "Password", "Expiration"]
    assert "Status" in [c.value for c in ws[1]]


def test_upsert_validates(path: Path) -> None:
    with Ledger.open(path) as ledger:
        with pytest.raises(MrishareError):
            ledger.upsert(_row(""))
        with pytest.raises(MrishareError, match="unknown status"):
            ledger.upsert(_row("a", status="done"))
    assert "shared" in STATUSES


@pytest.mark.slow
def test_ten_thousand_rows(path: Path) -> None:
    with Ledger.open(path) as ledger:
        for i in range(10_000):
            ledger.upsert(_row(f"r{i:05d}"))
        start = time.perf_counter()
        ledger.save()
        first_save = time.perf_counter() - start
    cold = path.with_name("copy.xlsx")  # a path this process never read: parsed, as in a new process
    cold.write_bytes(path.read_bytes())
    start = time.perf_counter()
    with Ledger.open(cold) as ledger:
        assert len(ledger.rows()) == 10_000
    opened = time.perf_counter() - start
    ledger = Ledger.open(path)
    ledger.upsert(_row("r00042", status="expired"))
    start = time.perf_counter()
    ledger.save()
    one_row_save = time.perf_counter() - start
    ledger.close()
    print(f"\n10k rows: save all {first_save:.2f} s, open {opened:.2f} s, save after one change {one_row_save:.2f} s")
    with Ledger.open(path) as ledger:
        assert len(ledger.rows()) == 10_000 and ledger.get("r00042").status == "expired"  # type: ignore[union-attr]
    # issue 15: about 0.5 s each on a loaded 2-core machine (openpyxl took 48 s to open and 49-98 s to save);
    # the bound is generous so that only a return to per-cell objects fails it
    assert opened < 5 and one_row_save < 5


def _with_note_column(path: Path, ids: str) -> None:
    """A ledger with rows `ids` and the user's own 'Called on' column filled per row."""
    with Ledger.open(path) as ledger:
        for row_id in ids:
            ledger.upsert(_row(row_id))
        ledger.save()
    wb = openpyxl.load_workbook(path)
    ws = wb["shares"]
    ws.cell(1, 25, "Called on")
    for number, row_id in enumerate(ids, start=2):
        ws.cell(number, 25, f"called {row_id}")
    wb.save(path)


def test_delete_removes_the_row_and_moves_the_users_cells_with_theirs(path: Path) -> None:
    _with_note_column(path, "abc")
    with Ledger.open(path) as ledger:
        ledger.delete("b")
        assert ledger.get("b") is None and [r.id for r in ledger.rows()] == ["a", "c"]
        with pytest.raises(MrishareError, match="no such row"):
            ledger.delete("b")
        ledger.save()
    assert path.stat().st_mode & 0o777 == 0o600
    ws = openpyxl.load_workbook(path)["shares"]
    assert [ws.cell(n, 1).value for n in (2, 3)] == ["a", "c"] and ws.max_row == 3
    assert [ws.cell(n, 25).value for n in (2, 3)] == ["called a", "called c"]  # the user's cells stay with the row
    with Ledger.open(path) as ledger:
        assert [r.id for r in ledger.rows()] == ["a", "c"]


def test_delete_blanks_the_row_in_place_when_a_formula_points_below_it(path: Path) -> None:
    _with_note_column(path, "abc")
    wb = openpyxl.load_workbook(path)
    wb.create_sheet("summary")["A1"] = "=shares!Y4"  # the user's formula on participant c's note
    wb.save(path)
    with Ledger.open(path) as ledger:
        ledger.delete("b")
        ledger.save()
        ledger.upsert(_row("d"))
        ledger.save()
    wb = openpyxl.load_workbook(path)
    ws = wb["shares"]
    assert wb["summary"]["A1"].value == "=shares!Y4" and ws.cell(4, 25).value == "called c"  # nothing moved
    assert all(cell.value is None for cell in ws[3])
    assert ws.cell(5, 1).value == "d"
    with Ledger.open(path) as ledger:
        assert [r.id for r in ledger.rows()] == ["a", "c", "d"]


def test_delete_of_a_row_changed_on_disk_meanwhile_and_of_an_unsaved_row(path: Path) -> None:
    _with_note_column(path, "ab")
    with Ledger.open(path) as ledger:
        time.sleep(0.01)
        wb = openpyxl.load_workbook(path)
        wb["shares"].cell(3, 20, "edited in LibreOffice")
        wb.save(path)
        ledger.upsert(_row("x"))
        ledger.delete("x")
        ledger.delete("a")
        ledger.save()
    with Ledger.open(path) as ledger:
        assert [r.id for r in ledger.rows()] == ["b"] and ledger.get("b").note == "edited in LibreOffice"
