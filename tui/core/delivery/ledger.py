"""The share list `share-list.xlsx`: one row per package handed out (link, passphrase, expiry, status).

Staff open this workbook in Excel or LibreOffice, add their own columns, sheets and colours, and
delete a row to mean "share this participant again". So the ledger:
  - maps columns by header name and touches only its own cells: other columns, sheets and formats stay;
  - writes back only rows that were upserted in this session, so a row deleted meanwhile stays deleted
    and nothing re-creates it from elsewhere (the pipeline treats a missing row as "not shared");
  - keeps a share that ends as a row with status 'expired' or 'revoked'; only `delete` (the user asked
    to share again) removes a row: it moves the rows below up when nothing in the workbook points at
    cells by position, and otherwise blanks the row in place (openpyxl's delete_rows rewrites no
    formulas, ranges, names or hyperlinks, so moving rows would make them point at other shares);
  - saves atomically (temp file in the same folder, fsync, os.replace) with mode 0600, and only after
    the temp file reads back with every row of this session: a failed check keeps the previous file;
  - stores text XML-safe: a character XML 1.0 cannot hold (an undecodable byte of a folder name,
    a control character) is written as an escape such as `\xff`, never as a broken character reference;
  - refuses to open while LibreOffice or Excel has the file open (their lock files), while another
    mrishare holds our lock, or if it is not a readable xlsx -- in every case without writing to it.
    Our lock is written whole or not at all (temp file + link); a lock whose process is gone, or an
    unreadable one older than a minute (left by an older version on a full disk), is taken over with
    a note in `Ledger.notes`.
Times are stored as local time without zone (xlsx has none).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import socket
import time
import zipfile
from copy import copy
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Self, cast
from xml.etree import ElementTree

import openpyxl
from openpyxl.cell.cell import MergedCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from tui.core.config import fsync_path
from tui.core.errors import MrishareError
from tui.core.safetext import disk_error, shown

STATUSES = ("new", "scanned", "de-identified", "converted", "defaced", "packed", "uploaded", "shared",
            "expired", "revoked", "failed")
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STALE_UNREADABLE_S = 60
"""An unreadable lock older than this is taken over (writing a lock takes microseconds)."""
SHEET = "shares"
FILE_NAME = "share-list.xlsx"


@dataclass
class LedgerRow:
    """One package handed out. `passphrase` is kept out of repr; times are naive local times."""

    id: str
    participant: str = ""
    pseudonym: str = ""
    source_folder: str = ""
    series: int = 0
    size: int = 0
    sha256: str = ""
    destination: str = ""
    remote_path: str = ""
    share_id: str = ""
    link: str = ""
    passphrase: str = field(default="", repr=False)
    expires: date | None = None
    status: str = "new"
    mode: str = "aes"
    created: datetime | None = None
    revealed: datetime | None = None
    communicated: datetime | None = None
    last_action: str = ""
    note: str = ""
    share_password: str = field(default="", repr=False)
    """Second secret that Nextcloud asks for before the download (zipcrypto mode, or when configured)."""
    job: str = ""
    """A processing job (issue 14): `queued`, `running`, `done` or `failed`, then `: ` and where the result is."""


# Header shown in the workbook for each field; headers are matched case- and punctuation-blind,
# and the seed's names are accepted too.
HEADERS = {
    "id": "ID", "participant": "Participant", "pseudonym": "Pseudonym", "source_folder": "Source folder",
    "series": "Series", "size": "Size (bytes)", "sha256": "SHA-256", "destination": "Destination",
    "remote_path": "Remote path", "share_id": "Share ID", "link": "Link", "passphrase": "Passphrase",
    "expires": "Expires", "status": "Status", "mode": "Mode", "created": "Created", "revealed": "Revealed",
    "communicated": "Communicated", "last_action": "Last action", "note": "Note",
    "share_password": "Share password", "job": "Job",
}
ALIASES = {"password": "passphrase", "expiration": "expires", "expiry": "expires", "expirationdate": "expires",
           "sizebytes": "size", "url": "link", "sharelink": "link", "folder": "source_folder"}
_TYPES = {f.name: f.type for f in fields(LedgerRow)}
_FORMATS = {"expires": "yyyy-mm-dd", "created": "yyyy-mm-dd hh:mm", "revealed": "yyyy-mm-dd hh:mm",
            "communicated": "yyyy-mm-dd hh:mm"}


def _key(header: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(header).lower())


_FIELD_BY_KEY = ({_key(name): name for name in HEADERS} | {_key(label): name for name, label in HEADERS.items()}
                 | ALIASES)


class Ledger:
    """An open, locked share list; `with Ledger.open(path) as ledger:` releases the lock on exit."""

    def __init__(self, path: Path, lock: Path) -> None:
        self.path = path
        self._lock: Path | None = lock
        self._wb: Workbook | None = None
        self._stat: tuple[int, int] | None = None
        self._rows: dict[str, LedgerRow] = {}
        self._dirty: dict[str, LedgerRow] = {}
        self._deleted: set[str] = set()
        self.notes: list[str] = []
        """Things the user should know about the opening (a stale lock taken over)."""

    @classmethod
    def open(cls, path: Path) -> Ledger:
        """Lock and read the ledger at `path`, creating it (mode 0600) if missing."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_foreign_locks(path)
        notes: list[str] = []
        ledger = cls(path, _acquire_lock(path, notes))
        ledger.notes = notes
        try:
            if path.exists():
                ledger._load()
            else:
                ledger._wb = _new_workbook()
                ledger._write(ledger._wb)
        except BaseException:
            ledger.close()
            raise
        return ledger

    @property
    def owner_tag(self) -> str:
        """A short tag of this ledger's location (a hash, no name): a run keeps its work folder and
        journal per ledger, so it never withdraws or overwrites a package another ledger owns."""
        return hashlib.sha256(os.fsencode(self.path.resolve())).hexdigest()[:8]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def rows(self) -> list[LedgerRow]:
        """All rows in sheet order (rows without an ID are the user's own notes and are skipped)."""
        return list(self._rows.values())

    def get(self, row_id: str) -> LedgerRow | None:
        """The row with this ID, or None."""
        return self._rows.get(row_id)

    def find_by_participant(self, participant: str) -> LedgerRow | None:
        """The last (most recent) row for this participant, whatever its status, or None."""
        found = [row for row in self._rows.values() if row.participant == shown(participant)]
        return found[-1] if found else None

    def upsert(self, row: LedgerRow) -> None:
        """Add or replace the row with `row.id` (written by the next `save`)."""
        if not row.id:
            raise MrishareError("a ledger row needs an ID", self.path)
        if row.status not in STATUSES:
            raise MrishareError(f"unknown status {row.status!r}; use one of {', '.join(STATUSES)}", self.path)
        stored = copy(row)
        for item in fields(stored):  # text as it reads back from the sheet (XML-safe, escapes)
            value = getattr(stored, item.name)
            if isinstance(value, str):
                setattr(stored, item.name, shown(value))
        for name in ("created", "revealed", "communicated"):  # as they read back from the sheet
            value = getattr(stored, name)
            if value is not None:
                setattr(stored, name, cast(datetime, _to_cell(value)).replace(microsecond=0))
        self._rows[row.id] = stored
        self._dirty[row.id] = copy(stored)
        self._deleted.discard(row.id)

    def delete(self, row_id: str) -> None:
        """Remove the row with this ID (by the next `save`): the pipeline then treats it as not shared."""
        if self._rows.pop(row_id, None) is None:
            raise MrishareError("no such row in the ledger", row_id)
        self._dirty.pop(row_id, None)
        self._deleted.add(row_id)

    def save(self) -> None:
        """Write the upserted rows into the workbook on disk, atomically, mode 0600."""
        if self._lock is None:
            raise MrishareError("ledger is closed", self.path)
        if not self._dirty and not self._deleted:
            return
        _check_foreign_locks(self.path)
        if not self.path.exists():  # moved away or deleted while open: start a fresh workbook
            self._wb = _new_workbook()
        elif self._must_reload():
            self._reload_full()
        assert self._wb is not None
        sheet = _sheet(self._wb, self.path)
        columns = _columns(sheet, self.path, add_missing=True)
        index = _id_index(sheet, columns["id"])
        gone = sorted((index[row_id] for row_id in self._deleted if row_id in index), reverse=True)
        if gone:
            _remove_rows(self._wb, sheet, gone)
            index = _id_index(sheet, columns["id"])
        last = sheet.max_row
        styles = _row_styles(sheet, last) if last >= 2 else {}
        for row in self._dirty.values():
            number = index.get(row.id)
            if number is None:
                last = number = index[row.id] = last + 1
                for col, style in styles.items():
                    sheet.cell(number, col)._style = copy(style)
            for name, col in columns.items():
                cell = sheet.cell(number, col)
                cell.value = _to_cell(getattr(row, name))
                if name in _FORMATS:
                    cell.number_format = _FORMATS[name]
        self._write(self._wb, expect=set(self._dirty))
        self._dirty.clear()
        self._deleted.clear()

    def close(self) -> None:
        """Release the lock (unsaved upserts are dropped)."""
        if self._lock is not None:
            self._lock.unlink(missing_ok=True)
            self._lock = None
        self._wb = None

    def _must_reload(self) -> bool:
        """Reload when the file changed on disk, or holds images (openpyxl saves those only once)."""
        if self._wb is None or _stat(self.path) != self._stat:
            return True
        return any(getattr(ws, "_images", None) or getattr(ws, "_charts", None) for ws in self._wb.worksheets)

    def _load(self) -> None:
        """Read the rows from disk (a fast read-only pass; the full workbook waits for `save`)."""
        wb = self._read(read_only=True)
        try:
            self._rows = self._parse(wb)
        finally:
            wb.close()
        self._wb, self._stat = None, _stat(self.path)

    def _reload_full(self) -> None:
        """Load the whole workbook (formatting, other sheets) for saving, keeping this session's upserts."""
        stat = _stat(self.path)
        wb = self._read(read_only=False)
        rows = self._parse(wb)
        rows.update(self._dirty)
        for row_id in self._deleted:
            rows.pop(row_id, None)
        self._wb, self._rows, self._stat = wb, rows, stat

    def _read(self, read_only: bool) -> Workbook:
        try:
            return openpyxl.load_workbook(self.path, read_only=read_only)
        except Exception as exc:
            raise MrishareError(f"cannot read the workbook ({type(exc).__name__}); it is left untouched - "
                                "repair it or move it away", self.path) from None

    def _parse(self, wb: Workbook) -> dict[str, LedgerRow]:
        """ID -> row for every row of the shares sheet that has an ID."""
        sheet = _sheet(wb, self.path)
        columns = _columns(sheet, self.path, add_missing=False)
        rows: dict[str, LedgerRow] = {}
        try:
            for number, values in enumerate(sheet.iter_rows(min_row=2, values_only=True), start=2):
                row = _from_cells(values, columns, number, self.path)
                if row is None:
                    continue
                if row.id in rows:
                    raise MrishareError(f"ID {row.id!r} appears twice (second time in row {number})", self.path)
                rows[row.id] = row
        except MrishareError:
            raise
        except Exception as exc:
            raise MrishareError(f"cannot read the workbook ({type(exc).__name__}); it is left untouched - "
                                "repair it or move it away", self.path) from None
        return rows

    def _write(self, wb: Workbook, expect: set[str] | None = None) -> None:
        """Save to a 0600 temp file beside the ledger, fsync, read it back (rows in `expect` present),
        rename over the ledger, fsync the folder. Any failure leaves the previous file as it was."""
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                wb.save(handle)
                handle.flush()
                os.fsync(handle.fileno())
            self._read_back(tmp, expect or set())
            os.replace(tmp, self.path)
        except OSError as error:
            raise disk_error(error, self.path, _size(self.path)) from None
        finally:
            tmp.unlink(missing_ok=True)
        fsync_path(self.path.parent)
        self._stat = _stat(self.path)

    def _read_back(self, written: Path, expect: set[str]) -> None:
        """Refuse a saved workbook whose XML parts do not parse or whose text lacks an ID just written.

        Every part goes through expat (what broke before: an undecodable byte of a folder name became
        an invalid character reference); a full openpyxl read would cost ten times as much per save.
        """
        texts: set[str] = set()
        try:
            with zipfile.ZipFile(written) as archive:
                for name in archive.namelist():
                    if name.endswith((".xml", ".rels")):
                        root = ElementTree.fromstring(archive.read(name))
                        if name == "xl/sharedStrings.xml" or name.startswith("xl/worksheets/"):
                            texts.update(e.text or "" for e in root.iter(f"{{{_MAIN_NS}}}t"))
        except (zipfile.BadZipFile, ElementTree.ParseError, KeyError) as error:
            raise MrishareError(f"the saved ledger did not read back ({type(error).__name__}); the previous "
                                "file is kept", self.path) from None
        if expect - texts:
            raise MrishareError(f"the saved ledger lacks {len(expect - texts)} row(s) just written; the "
                                "previous file is kept", self.path)

def _new_workbook() -> Workbook:
    """A workbook with the 'shares' sheet and a bold, frozen header row."""
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = SHEET
    for col, (name, label) in enumerate(HEADERS.items(), start=1):
        cell = sheet.cell(1, col, label)
        cell.font = Font(bold=True)
        sheet.column_dimensions[get_column_letter(col)].width = 22 if name in ("link", "passphrase") else 14
    sheet.freeze_panes = "A2"
    return wb


def _sheet(wb: Workbook, where: Path) -> Worksheet:
    """The 'shares' sheet, or the first sheet whose header has an ID column (a seed-era file)."""
    if SHEET in wb.sheetnames:
        return wb[SHEET]
    for sheet in wb.worksheets:
        header = next(sheet.iter_rows(max_row=1, values_only=True), ())
        if any(_FIELD_BY_KEY.get(_key(v)) == "id" for v in header if v is not None):
            return sheet
    raise MrishareError(f"no sheet named {SHEET!r} and no sheet with an ID column", where)


def _columns(sheet: Worksheet, where: Path, add_missing: bool) -> dict[str, int]:
    """Field -> column number from the header row; missing fields appended at the right if asked."""
    columns: dict[str, int] = {}
    last = 0
    for col, value in enumerate(next(sheet.iter_rows(max_row=1, values_only=True), ()), start=1):
        if value is None:
            continue
        last = col
        name = _FIELD_BY_KEY.get(_key(value))
        if name and name not in columns:
            columns[name] = col
    if "id" not in columns and not add_missing:
        raise MrishareError(f"sheet {sheet.title!r} has no ID column", where)
    if add_missing:
        for name, label in HEADERS.items():
            if name not in columns:
                last += 1
                sheet.cell(1, last, label).font = Font(bold=True)
                columns[name] = last
    return columns


def _from_cells(values: tuple[object, ...], columns: dict[str, int], number: int, where: Path) -> LedgerRow | None:
    """A LedgerRow from one sheet row, or None for a row without ID."""
    raw = {name: values[col - 1] if col - 1 < len(values) else None for name, col in columns.items()}
    row_id = _cell_text(raw.get("id"))
    if not row_id:
        return None
    kwargs: dict[str, object] = {"id": row_id}
    for name, value in raw.items():
        if name == "id" or value is None or value == "":
            continue
        ref = f"{get_column_letter(columns[name])}{number}"
        kwargs[name] = _from_cell(name, value, ref, where)
    row = LedgerRow(**kwargs)  # type: ignore[arg-type]
    if row.status not in STATUSES:
        ref = f"{get_column_letter(columns['status'])}{number}"
        raise MrishareError(f"cell {ref}: unknown status {row.status!r}; use one of {', '.join(STATUSES)}", where)
    return row


def _from_cell(name: str, value: object, ref: str, where: Path) -> object:
    """Convert a cell value to the field's type; the error names the cell, never the value."""
    kind = _TYPES[name]
    try:
        if kind == "int":
            return int(value)  # type: ignore[call-overload]
        if kind == "date | None":
            if isinstance(value, datetime):
                return value.date()
            return value if isinstance(value, date) else date.fromisoformat(str(value).strip()[:10])
        if kind == "datetime | None":
            return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
    except (TypeError, ValueError):
        raise MrishareError(f"cell {ref}: not a valid {HEADERS[name].lower()}", where) from None
    return _cell_text(value)


def _to_cell(value: object) -> object:
    """Field value -> cell value (aware times to local naive; text XML-safe; empty text and None as empty)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone().replace(tzinfo=None)
    if isinstance(value, str):
        return shown(value) or None
    return value


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _id_index(sheet: Worksheet, id_col: int) -> dict[str, int]:
    """ID -> sheet row number."""
    ids = sheet.iter_rows(min_row=2, min_col=id_col, max_col=id_col, values_only=True)
    return {_cell_text(value): number for number, (value,) in enumerate(ids, start=2)}


def _remove_rows(wb: Workbook, sheet: Worksheet, numbers: list[int]) -> None:
    """Delete these sheet rows (highest first), or blank them where moving rows would break references."""
    if _refers_by_position(wb, sheet):
        for number in numbers:
            for cell in sheet[number]:
                if isinstance(cell, MergedCell):
                    continue
                cell.value = None
                cell.hyperlink = None
        return
    for number in numbers:
        sheet.delete_rows(number)


def _refers_by_position(wb: Workbook, sheet: Worksheet) -> bool:
    """True if anything points at cells by address: formulas, names, ranges, hyperlinks, tables, drawings."""
    if len(wb.defined_names) or any(len(ws.defined_names) for ws in wb.worksheets):
        return True
    if any(getattr(ws, "_images", None) or getattr(ws, "_charts", None) for ws in wb.worksheets):
        return True
    if (sheet.merged_cells.ranges or len(sheet.conditional_formatting) or sheet.data_validations.dataValidation
            or sheet.tables or sheet.auto_filter.ref or sheet.print_area):
        return True
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            if any(cell.data_type == "f" or (ws is sheet and cell.hyperlink) for cell in row):
                return True
    return False


def _row_styles(sheet: Worksheet, number: int) -> dict[int, object]:
    """Column -> formatting of one row's styled cells (new rows look like the last one)."""
    return {cell.column: cell._style for cell in sheet[number] if cell.has_style}


def _check_foreign_locks(path: Path) -> None:
    """Refuse while LibreOffice or Excel has the workbook open (their lock/owner files)."""
    office = [path.with_name(f".~lock.{path.name}#"), path.with_name(f"~${path.name}"),
              path.with_name(f"~${path.name[2:]}")]
    for lock in office:
        if lock.exists():
            raise MrishareError(f"open in LibreOffice or Excel ({lock.name} exists); close it there first, "
                                "or delete that file if no office program has it open", path)


def _acquire_lock(path: Path, notes: list[str]) -> Path:
    """Create our lock file (pid, host), whole or not at all: written to a temp file, then hard-linked
    to the lock name (fails if one exists). A stale lock is taken over with a note in `notes`."""
    lock = path.with_name(f".{path.name}.mrishare-lock")
    me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode()
    tmp = lock.with_name(f"{lock.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(me)
            handle.flush()
            os.fsync(handle.fileno())
        for _ in range(2):
            try:
                _place(tmp, lock)
            except FileExistsError:
                _refuse_or_clear(lock, path, notes)
                continue
            return lock
    except OSError as error:
        raise disk_error(error, lock, len(me)) from None
    finally:
        tmp.unlink(missing_ok=True)
    raise MrishareError("could not take the ledger lock", path)


def _place(tmp: Path, lock: Path) -> None:
    """Give the finished temp file the lock's name; FileExistsError if a lock is there."""
    try:
        os.link(tmp, lock)
        return
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    # no hard links here (FAT, some network shares): exclusive create, removed again if the write fails
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, tmp.read_bytes())
        os.fsync(fd)
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _refuse_or_clear(lock: Path, path: Path, notes: list[str]) -> None:
    """Remove a lock whose process is gone (or an old unreadable one); otherwise say who holds it."""
    try:
        owner = json.loads(lock.read_text())
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        age = time.time() - lock.stat().st_mtime if lock.exists() else STALE_UNREADABLE_S
        if age < STALE_UNREADABLE_S:
            raise MrishareError(f"lock file {lock.name} is unreadable; if no mrishare is running, delete it "
                                f"or wait {STALE_UNREADABLE_S} s and it is taken over", path) from None
        lock.unlink(missing_ok=True)
        notes.append(f"took over the unreadable lock file {lock.name} (left by an interrupted run)")
        return
    if host == socket.gethostname() and not _alive(pid):
        lock.unlink(missing_ok=True)
        notes.append(f"took over the lock of mrishare pid {pid}, which is no longer running")
        return
    where = "this computer" if host == socket.gethostname() else f"computer {host}"
    raise MrishareError(f"in use by another mrishare (pid {pid} on {where}); wait for it to finish, "
                        f"or delete {lock.name} if it is not running", path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _size(path: Path) -> int | None:
    """The ledger's size now: about what a save needs again."""
    stat = _stat(path)
    return stat[1] if stat else None


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


