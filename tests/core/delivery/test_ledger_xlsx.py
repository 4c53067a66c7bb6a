"""share-list.xlsx as files other programs write and read (issue 15 point 5: the ledger is read and
rewritten as raw sheet XML): the look openpyxl and LibreOffice see after our saves, workbooks in
another dialect (namespace prefix, shared and rich strings, attributes in another order, formulas),
and a real LibreOffice round trip when `soffice` is installed (CI installs libreoffice-calc-nogui)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import zipfile
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from tui.core.delivery.ledger import HEADERS, Ledger, LedgerRow

SECRET = "quartz-walrus-tundra-lagoon-zephyr"


def _row(row_id: str, **kw: object) -> LedgerRow:
    base: dict[str, object] = {
        "participant": f"P-{row_id}", "source_folder": f"/data/{row_id}", "series": 3, "size": 123456789,
        "link": f"https://cloud.example/s/{row_id}", "passphrase": SECRET, "expires": date(2026, 12, 24),
        "status": "shared", "created": datetime(2026, 11, 20, 9, 30), "last_action": "share",
        "note": " spaced & <marked> ",
    }
    base.update(kw)
    return LedgerRow(row_id, **base)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "share-list.xlsx"


def _values(ws: object, number: int) -> dict[str, object]:
    """Header -> value of sheet row `number` as openpyxl's full load reads it."""
    header = [cell.value for cell in ws[1]]  # type: ignore[index]
    return {str(h): cell.value for h, cell in zip(header, ws[number], strict=False) if h}  # type: ignore[index]


def test_openpyxl_reads_back_values_and_the_look(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.upsert(_row("a"))
        ledger.upsert(_row("b", expires=None))
        ledger.save()
        ledger.upsert(_row("a", status="revoked", revealed=datetime(2026, 11, 22, 8, 15)))
        ledger.upsert(_row("c"))
        ledger.save()
    wb = openpyxl.load_workbook(path)
    ws = wb["shares"]
    assert ws.freeze_panes == "A2" and ws.max_row == 4 and ws.max_column == len(HEADERS)
    assert all(cell.font.b for cell in ws[1]) and ws.column_dimensions["K"].width == 22
    assert ws.column_dimensions["A"].width == 14
    a = _values(ws, 2)
    assert a["ID"] == "a" and a["Status"] == "revoked" and a["Note"] == " spaced & <marked> "
    assert a["Expires"] == datetime(2026, 12, 24) and a["Revealed"] == datetime(2026, 11, 22, 8, 15)
    assert a["Size (bytes)"] == 123456789 and a["Passphrase"] == SECRET
    assert ws["M2"].number_format == "yyyy-mm-dd" and ws["P2"].number_format == "yyyy-mm-dd hh:mm"
    assert ws["Q2"].number_format == "yyyy-mm-dd hh:mm"
    assert _values(ws, 3)["Expires"] is None and _values(ws, 4)["ID"] == "c"
    assert ws["M4"].number_format == "yyyy-mm-dd"  # the new row is formatted like the one above
    with Ledger.open(path) as ledger:
        assert [r.status for r in ledger.rows()] == ["revoked", "shared", "shared"]
        assert ledger.get("a") == _row("a", status="revoked", revealed=datetime(2026, 11, 22, 8, 15), note=
                                       "spaced & <marked>")  # cells are read stripped, as before


def test_a_date_goes_into_a_cell_without_a_date_format(path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "shares"
    ws.append(["ID", "Status", "Expires"])
    ws.append(["s1", "shared", None])
    wb.save(path)
    with Ledger.open(path) as ledger:
        ledger.upsert(replace(ledger.get("s1"), expires=date(2027, 1, 31)))  # type: ignore[type-var]
        ledger.save()
    ws = openpyxl.load_workbook(path)["shares"]
    assert ws["C2"].value == datetime(2027, 1, 31) and ws["C2"].number_format == "yyyy-mm-dd"
    with Ledger.open(path) as ledger:
        assert ledger.get("s1").expires == date(2027, 1, 31)  # type: ignore[union-attr]


# A workbook as the Open XML SDK writes it: every tag with the x: prefix, shared strings (one rich,
# one with an entity), attributes in another order, a cell without r, a formula, a date by a
# built-in format (14), a user's column and a second sheet.
_DIALECT = {
    "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.'
    'xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override '
    'PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
    'worksheet+xml"/><Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="'
    'application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/><Override PartName="/xl/'
    'styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>',
    "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
    'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
    '2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
    "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8"?><x:workbook xmlns:x="http://schemas.openxmlformats.org/'
    'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<x:sheets><x:sheet name="Shares 2026" sheetId="1" r:id="rId1"/><x:sheet name="notes" sheetId="2" r:id="rId2"/>'
    '</x:sheets></x:workbook>',
    "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
    'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/worksheet" Target="/xl/worksheets/sheet1.xml"/><Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/'
    'sheet2.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rId4" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>',
    "xl/styles.xml": '<?xml version="1.0" encoding="UTF-8"?><x:styleSheet xmlns:x="http://schemas.openxmlformats.org/'
    'spreadsheetml/2006/main"><x:fonts count="1"><x:font/></x:fonts><x:fills count="1"><x:fill>'
    '<x:patternFill patternType="none"/></x:fill></x:fills>'
    '<x:borders count="1"><x:border/></x:borders><x:cellXfs count="2"><x:xf numFmtId="0" fontId="0" fillId="0" '
    'borderId="0"/><x:xf numFmtId="14" fontId="0" fillId="0" borderId="0" applyNumberFormat="1"/></x:cellXfs>'
    '</x:styleSheet>',
    "xl/sharedStrings.xml": '<?xml version="1.0" encoding="UTF-8"?><x:sst xmlns:x="http://schemas.openxmlformats.org/'
    'spreadsheetml/2006/main" count="8" uniqueCount="8"><x:si><x:t>ID</x:t></x:si><x:si><x:t>Participant</x:t>'
    '</x:si><x:si><x:t>Expires</x:t></x:si><x:si><x:t>Status</x:t></x:si><x:si><x:t>Called on</x:t></x:si>'
    '<x:si><x:r><x:rPr><x:b/></x:rPr><x:t>P-</x:t></x:r><x:r><x:t xml:space="preserve">01 </x:t></x:r><x:rPh '
    'sb="0" eb="1"><x:t>ignored</x:t></x:rPh></x:si><x:si><x:t>Tom &amp; Jerry</x:t></x:si><x:si><x:t>s1</x:t>'
    '</x:si></x:sst>',
    "xl/worksheets/sheet1.xml": '<?xml version="1.0" encoding="UTF-8"?><x:worksheet xmlns:x="http://schemas.'
    'openxmlformats.org/spreadsheetml/2006/main"><x:dimension ref="A1:E3"/><x:sheetData>'
    '<x:row r="1"><x:c r="A1" t="s"><x:v>0</x:v></x:c><x:c r="B1" t="s"><x:v>1</x:v></x:c><x:c t="s"><x:v>2</x:v>'
    '</x:c><x:c r="D1" t="s"><x:v>3</x:v></x:c><x:c r="E1" t="s"><x:v>4</x:v></x:c></x:row>'
    '<x:row r="2" spans="1:5"><x:c r="A2" t="s"><x:v>7</x:v></x:c><x:c r="B2" t="s"><x:v>5</x:v></x:c>'
    '<x:c r="C2" t="n" s="1"><x:v>46722</x:v></x:c><x:c r="D2" t="inlineStr"><x:is><x:t>shared</x:t></x:is></x:c>'
    '<x:c t="s" r="E2"><x:v>6</x:v></x:c></x:row>'
    '<x:row r="3"><x:c r="E3"><x:f>LEN(E2)</x:f><x:v>11</x:v></x:c></x:row>'
    '</x:sheetData></x:worksheet>',
    "xl/worksheets/sheet2.xml": '<?xml version="1.0" encoding="UTF-8"?><x:worksheet xmlns:x="http://schemas.'
    'openxmlformats.org/spreadsheetml/2006/main"><x:sheetData><x:row r="1"><x:c r="A1" t="inlineStr"><x:is><x:t>'
    'ethics 2026-17</x:t></x:is></x:c></x:row></x:sheetData></x:worksheet>',
}


def test_a_workbook_in_another_dialect_is_read_and_kept(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in _DIALECT.items():
            archive.writestr(name, text)
    with Ledger.open(path) as ledger:
        [row] = ledger.rows()
        assert (row.id, row.participant, row.status, row.expires) == ("s1", "P-01", "shared", date(2027, 12, 1))
        ledger.upsert(replace(row, status="revoked", note="gone"))
        ledger.upsert(_row("s2"))
        ledger.save()
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Shares 2026", "notes"] and wb["notes"]["A1"].value == "ethics 2026-17"
    ws = wb["Shares 2026"]
    assert ws["E2"].value == "Tom & Jerry" and ws["E3"].value == "=LEN(E2)"  # the user's cells stay
    assert ws["C2"].value == datetime(2027, 12, 1) and ws["C2"].number_format == "mm-dd-yy"  # their format stays
    assert [c.value for c in ws[1]][:5] == ["ID", "Participant", "Expires", "Status", "Called on"]
    assert "Passphrase" in [c.value for c in ws[1]]  # missing columns added at the right
    with Ledger.open(path) as ledger:
        assert [(r.id, r.status, r.note) for r in ledger.rows()] == [("s1", "revoked", "gone"),
                                                                     ("s2", "shared", "spaced & <marked>")]
        assert ledger.get("s2") == _row("s2", note="spaced & <marked>")


def _soffice(args: list[str], profile: Path) -> None:
    soffice = shutil.which("soffice")
    assert soffice is not None
    subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{profile}", *args], check=True,
                   capture_output=True, timeout=300)


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (libreoffice-calc-nogui) not installed")
def test_libreoffice_opens_what_we_write_and_we_read_what_it_writes(path: Path, tmp_path: Path) -> None:
    profile = tmp_path / "lo-profile"
    with Ledger.open(path) as ledger:
        for row_id in "abcd":
            ledger.upsert(_row(row_id))
        ledger.save()
    # a person opens it in LibreOffice and saves: shared strings, LibreOffice's own styles and XML
    _soffice(["--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(tmp_path / "lo"), str(path)], profile)
    shutil.copy(tmp_path / "lo" / path.name, path)
    with Ledger.open(path) as ledger:
        assert [r.id for r in ledger.rows()] == list("abcd")
        assert ledger.get("a") == _row("a", note="spaced & <marked>")
        ledger.delete("b")
        ledger.upsert(_row("c", status="expired"))
        ledger.upsert(_row("e", note="new & <fine>"))
        ledger.save()
    _soffice(["--convert-to", "csv", "--outdir", str(tmp_path / "csv"), str(path)], profile)
    with open(tmp_path / "csv" / "share-list.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    header = table[0]
    assert header[:3] == ["ID", "Participant", "Pseudonym"]
    rows = {line[0]: dict(zip(header, line, strict=False)) for line in table[1:]}
    assert list(rows) == ["a", "c", "d", "e"]  # b is gone, the rows below moved up, e appended
    assert rows["c"]["Status"] == "expired" and rows["e"]["Note"] == "new & <fine>"
    assert rows["e"]["Passphrase"] == SECRET and rows["e"]["Size (bytes)"] == "123456789"
    assert rows["e"]["Expires"] == "2026-12-24" and rows["e"]["Created"].startswith("2026-11-20 09:30")
    assert rows["e"]["Created"] == rows["a"]["Created"]  # shown like the rows LibreOffice wrote itself


def test_a_column_of_a_newer_version_is_added_with_the_headers_look(path: Path) -> None:
    newest, header = list(HEADERS.items())[-1]  # the column added last (a text column)
    with Ledger.open(path) as ledger:
        ledger.upsert(_row("a", **{newest: "older"}))
        ledger.save()
    wb = openpyxl.load_workbook(path)
    ws = wb["shares"]
    ws.delete_cols(len(HEADERS))  # a ledger written before the last column existed
    wb.save(path)
    with Ledger.open(path) as ledger:
        assert getattr(ledger.get("a"), newest) == ""
        ledger.upsert(_row("b", **{newest: "new"}))
        ledger.save()
    ws = openpyxl.load_workbook(path)["shares"]
    last = ws.cell(1, len(HEADERS))
    assert last.value == header and last.font.b  # bold like the ID header beside it
    assert ws.cell(3, len(HEADERS)).value == "new" and ws.cell(2, len(HEADERS)).value is None


@pytest.mark.parametrize("mark", ["hyperlink", "merged cells", "validation"])
def test_delete_blanks_in_place_when_the_sheet_points_at_cells(path: Path, mark: str) -> None:
    from openpyxl.worksheet.datavalidation import DataValidation

    with Ledger.open(path) as ledger:
        for row_id in "abc":
            ledger.upsert(_row(row_id))
        ledger.save()
    wb = openpyxl.load_workbook(path)
    ws = wb["shares"]
    if mark == "hyperlink":
        ws["Y4"].hyperlink = "https://example.org/c"
    elif mark == "merged cells":
        ws.merge_cells("Y4:Z4")
    else:
        check = DataValidation(type="list", formula1='"yes,no"')
        ws.add_data_validation(check)
        check.add("Y4")
    wb.save(path)
    with Ledger.open(path) as ledger:
        ledger.delete("b")
        ledger.save()
    ws = openpyxl.load_workbook(path)["shares"]
    assert [ws.cell(n, 1).value for n in (2, 3, 4)] == ["a", None, "c"]  # c stays where the mark points
    with Ledger.open(path) as ledger:
        assert [r.id for r in ledger.rows()] == ["a", "c"]


def test_an_unchanged_file_opens_from_memory_and_any_change_is_read(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.upsert(_row("a"))
        ledger.save()
        ledger.get("a").note = "changed in memory only"  # type: ignore[union-attr]
    with Ledger.open(path) as ledger:  # the file as this process wrote it: not parsed again
        warm = ledger.rows()
    cold_path = path.with_name("cold.xlsx")
    cold_path.write_bytes(path.read_bytes())
    with Ledger.open(cold_path) as ledger:
        assert ledger.rows() == warm == [_row("a", note="spaced & <marked>")]  # the same as a parse gives
    # a person's edit is read even with the modification time put back (the file is known by content)
    before = path.stat()
    wb = openpyxl.load_workbook(path)
    wb["shares"]["B2"] = "P-b"
    wb.save(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with Ledger.open(path) as ledger:
        assert ledger.get("a").participant == "P-b"  # type: ignore[union-attr]
