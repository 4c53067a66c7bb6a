"""The share list `share-list.xlsx`: one row per package handed out (link, passphrase, expiry, status).

Staff open this workbook in Excel or LibreOffice, add their own columns, sheets and colours, and
delete a row to mean "share this participant again". So the ledger:
  - maps columns by header name and touches only its own cells: other columns, sheets and formats stay;
  - writes back only rows that were upserted in this session, so a row deleted meanwhile stays deleted
    and nothing re-creates it from elsewhere (the pipeline treats a missing row as "not shared");
  - keeps a share that ends as a row with status 'expired' or 'revoked'; only `delete` (the user asked
    to share again) removes a row: it moves the rows below up when nothing in the workbook points at
    cells by position, and otherwise blanks the row in place (moving rows rewrites no formulas,
    ranges, names or hyperlinks, so they would point at other shares);
  - saves atomically (temp file in the same folder, fsync, os.replace) with mode 0600, and only after
    the temp file reads back with every row of this session: a failed check keeps the previous file;
  - stays fast at 10,000 rows (about 0.5 s of CPU to open, 0.2 s to save a change): the sheet is read
    and rewritten by `xlsx_sheet` (raw XML, rows spliced in place), never loaded cell by cell into openpyxl,
    and a file whose bytes this process last read or wrote is not parsed again (kept in memory only);
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
import html
import io
import json
import os
import re
import socket
import time
import zipfile
from copy import copy
from dataclasses import MISSING, dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast
from xml.parsers import expat

from openpyxl.utils import get_column_letter

from tui.core.config import fsync_path, private_temp
from tui.core.delivery.xlsx_sheet import Book, Sheet, XlsxError, write_parts
from tui.core.errors import MrishareError
from tui.core.safetext import disk_error, shown

STATUSES = ("new", "scanned", "de-identified", "converted", "defaced", "packed", "uploaded", "shared",
            "expired", "revoked", "failed")
STALE_UNREADABLE_S = 60
"""An unreadable lock older than this is taken over (writing a lock takes microseconds)."""
SHEET = "shares"
FILE_NAME = "share-list.xlsx"


def column(header: str, default: Any = MISSING, *, number_format: str = "", secret: bool = False) -> Any:
    """A LedgerRow field and its workbook column: the header shown, the number format of dates, and
    whether the value is a secret (kept out of repr). Adding a column is one line in LedgerRow."""
    return field(default=default, repr=not secret, metadata={"header": header, "format": number_format})


@dataclass
class LedgerRow:
    """One package handed out, and the ledger's columns in their order; times are naive local times."""

    id: str = column("ID")
    participant: str = column("Participant", "")
    pseudonym: str = column("Pseudonym", "")
    source_folder: str = column("Source folder", "")
    series: int = column("Series", 0)
    size: int = column("Size (bytes)", 0)
    sha256: str = column("SHA-256", "")
    destination: str = column("Destination", "")
    remote_path: str = column("Remote path", "")
    share_id: str = column("Share ID", "")
    link: str = column("Link", "")
    passphrase: str = column("Passphrase", "", secret=True)
    expires: date | None = column("Expires", None, number_format="yyyy-mm-dd")
    status: str = column("Status", "new")
    mode: str = column("Mode", "aes")
    created: datetime | None = column("Created", None, number_format="yyyy-mm-dd hh:mm")
    revealed: datetime | None = column("Revealed", None, number_format="yyyy-mm-dd hh:mm")
    communicated: datetime | None = column("Communicated", None, number_format="yyyy-mm-dd hh:mm")
    last_action: str = column("Last action", "")
    note: str = column("Note", "")
    share_password: str = column("Share password", "", secret=True)
    """Second secret that Nextcloud asks for before the download (zipcrypto mode, or when configured)."""
    job: str = column("Job", "")
    """A processing job (issue 14): `queued`, `running`, `done` or `failed`, then `: ` and where the result is."""


# Header shown in the workbook for each field; headers are matched case- and punctuation-blind,
# and the seed's names are accepted too.
HEADERS = {f.name: f.metadata["header"] for f in fields(LedgerRow)}
ALIASES = {"password": "passphrase", "expiration": "expires", "expiry": "expires", "expirationdate": "expires",
           "sizebytes": "size", "url": "link", "sharelink": "link", "folder": "source_folder"}
_TYPES = {f.name: f.type for f in fields(LedgerRow)}
_TEXT_FIELDS = frozenset(name for name, kind in _TYPES.items() if kind == "str")
_FORMATS = {f.name: f.metadata["format"] for f in fields(LedgerRow) if f.metadata["format"]}


def _key(header: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(header).lower())


_FIELD_BY_KEY = ({_key(name): name for name in HEADERS} | {_key(label): name for name, label in HEADERS.items()}
                 | ALIASES)


@dataclass(frozen=True)
class _Known:
    """A ledger file's content (by SHA-256) and what parsing it gave."""

    digest: bytes
    book: Book
    sheet: Sheet
    columns: dict[str, int]
    numbers: dict[str, int]
    rows: dict[str, LedgerRow]


def _copied(rows: dict[str, LedgerRow]) -> dict[str, LedgerRow]:
    """A shallow copy of every row (the fields are immutable values; copy.copy takes 5x as long)."""
    copies = {}
    for row_id, row in rows.items():
        twin = object.__new__(LedgerRow)
        twin.__dict__.update(row.__dict__)
        copies[row_id] = twin
    return copies


_KNOWN: dict[Path, _Known] = {}
"""Per ledger path, the file as this process last read or wrote it. The app opens the ledger again
for every change and after every save; an unchanged file (same bytes) is then not parsed again.
In memory only: no second copy of the passphrases on disk."""


class Ledger:
    """An open, locked share list; `with Ledger.open(path) as ledger:` releases the lock on exit."""

    def __init__(self, path: Path, lock: Path) -> None:
        self.path = path
        self._lock: Path | None = lock
        self._book: Book | None = None
        """The workbook as last read or written; None until read, and after a failed save."""
        self._sheet: Sheet | None = None
        self._columns: dict[str, int] = {}
        self._numbers: dict[str, int] = {}
        """ID -> row number in the sheet on disk."""
        self._stat: tuple[int, int] | None = None
        self._key = path.resolve()
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
                book = Book(_new_workbook())
                digest = ledger._write(book.parts)
                ledger._rows = ledger._parse(book)
                ledger._remember(digest, ledger._rows)
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
        if self._book is None or not self.path.exists() or _stat(self.path) != self._stat:
            self._reload()
        book, sheet = self._book, self._sheet
        assert book is not None and sheet is not None
        header = sheet.rows[0] if sheet.rows and sheet.rows[0].number == 1 else None
        last = max(header.values, default=0) if header is not None else 0
        added = {name: last + n for n, name in enumerate((n for n in HEADERS if n not in self._columns), start=1)}
        columns = self._columns | added
        changes: dict[int, dict[int, object]] = {1: {col: HEADERS[n] for n, col in added.items()}} if added else {}
        id_style = header.styles.get(self._columns["id"], 0) if header is not None else 0
        appended: list[dict[int, object]] = []
        for row in self._dirty.values():
            cells = {col: _to_cell(getattr(row, name)) for name, col in columns.items()}
            if row.id in self._numbers:
                changes[self._numbers[row.id]] = cells
            else:
                appended.append(cells)
        deleted = {self._numbers[row_id] for row_id in self._deleted if row_id in self._numbers}
        move = bool(deleted) and not book.refers_by_position(sheet)
        formats = {columns[name]: code for name, code in _FORMATS.items()}
        try:
            parts = book.parts | {sheet.part: sheet.apply(changes, appended, deleted, move, formats,
                                                          {1: dict.fromkeys(added.values(), id_style)})}
            if book.styles.changed and book.styles.xml is not None:
                parts[book.styles_part] = book.styles.xml
            digest = self._write(parts, expect=set(self._dirty))
        except BaseException:
            self._book = None  # memory is ahead of the disk now: the next save reads the file again
            _KNOWN.pop(self._key, None)
            raise
        book.parts, book.styles.changed = parts, False
        self._columns, self._numbers = columns, _numbers(sheet, columns["id"])
        self._remember(digest, self._as_written(sheet))
        self._dirty.clear()
        self._deleted.clear()

    def close(self) -> None:
        """Release the lock (unsaved upserts are dropped)."""
        if self._lock is not None:
            self._lock.unlink(missing_ok=True)
            self._lock = None
        self._book = self._sheet = None

    def _load(self) -> None:
        """Read the rows from disk."""
        stat = _stat(self.path)
        self._rows = self._read()
        self._stat = stat

    def _reload(self) -> None:
        """Read the workbook again (changed on disk, or gone: start a fresh one), keeping this session's
        upserts and deletions."""
        stat = _stat(self.path)
        rows = self._read() if stat is not None else self._parse(Book(_new_workbook()))
        rows.update(self._dirty)
        for row_id in self._deleted:
            rows.pop(row_id, None)
        self._rows, self._stat = rows, stat

    def _read(self) -> dict[str, LedgerRow]:
        """The rows on disk. A file whose content this process last read or wrote is not parsed again."""
        try:
            data = self.path.read_bytes()
        except OSError as error:
            raise _unreadable(XlsxError(type(error).__name__), self.path) from None
        digest = hashlib.sha256(data).digest()
        known = _KNOWN.get(self._key)
        if known is not None and known.digest == digest:
            self._book, self._sheet = known.book, known.sheet
            self._columns, self._numbers = dict(known.columns), dict(known.numbers)
            return _copied(known.rows)
        try:
            book = Book.from_bytes(data)
        except XlsxError as error:
            raise _unreadable(error, self.path) from None
        rows = self._parse(book)
        self._remember(digest, rows)
        return rows

    def _as_written(self, sheet: Sheet) -> dict[str, LedgerRow]:
        """The rows as the file just saved reads back (text stripped, as a parse gives it)."""
        lines = {line.number: line for line in sheet.rows}
        rows = dict(self._rows)
        for row_id in self._dirty:
            line = lines.get(self._numbers.get(row_id, 0))
            row = _from_cells(line.values, self._columns, line.number, self.path) if line is not None else None
            if row is not None:
                rows[row_id] = row
        return rows

    def _remember(self, digest: bytes, rows: dict[str, LedgerRow]) -> None:
        """Keep the parsed workbook of the file with this content for the next open in this process."""
        assert self._book is not None and self._sheet is not None
        _KNOWN[self._key] = _Known(digest, self._book, self._sheet, dict(self._columns), dict(self._numbers),
                                   _copied(rows))

    def _parse(self, book: Book) -> dict[str, LedgerRow]:
        """ID -> row for every row of the shares sheet that has an ID; the workbook is kept for `save`."""
        try:
            sheet = _sheet(book, self.path)
            header = sheet.rows[0].values if sheet.rows and sheet.rows[0].number == 1 else {}
            columns = _columns(header, sheet.name, self.path)
            rows: dict[str, LedgerRow] = {}
            for line in sheet.rows:
                if line.number < 2:
                    continue
                row = _from_cells(line.values, columns, line.number, self.path)
                if row is None:
                    continue
                if row.id in rows:
                    raise MrishareError(f"ID {row.id!r} appears twice (second time in row {line.number})",
                                        self.path)
                rows[row.id] = row
        except XlsxError as error:
            raise _unreadable(error, self.path) from None
        self._book, self._sheet, self._columns = book, sheet, columns
        self._numbers = _numbers(sheet, columns["id"])
        return rows

    def _write(self, parts: dict[str, bytes], expect: set[str] | None = None) -> bytes:
        """Save to a 0600 temp file beside the ledger, fsync, read it back (rows in `expect` present),
        rename over the ledger, fsync the folder; returns the SHA-256 of the file. Any failure leaves
        the previous file as it was."""
        buffer = io.BytesIO()
        write_parts(parts, buffer)
        data = buffer.getvalue()
        try:
            with private_temp(self.path, data) as tmp:
                self._read_back(tmp, expect or set())
                os.replace(tmp, self.path)
        except OSError as error:
            raise disk_error(error, self.path, _size(self.path)) from None
        fsync_path(self.path.parent)
        self._stat = _stat(self.path)
        return hashlib.sha256(data).digest()

    def _read_back(self, written: Path, expect: set[str]) -> None:
        """Refuse a saved workbook whose parts fail their CRC or do not parse as XML, or whose sheet
        text lacks an ID just written (what broke before: an undecodable byte of a folder name became
        an invalid character reference). expat without handlers checks 10 MB in a fraction of a second."""
        texts: list[bytes] = []
        try:
            with zipfile.ZipFile(written) as archive:
                for name in archive.namelist():
                    data = archive.read(name)
                    if name.endswith((".xml", ".rels")):
                        _parse_xml(data)
                        if name.startswith("xl/worksheets/") or name.endswith("sharedStrings.xml"):
                            texts.append(data)
        except (zipfile.BadZipFile, expat.ExpatError, KeyError) as error:
            raise MrishareError(f"the saved ledger did not read back ({type(error).__name__}); the previous "
                                "file is kept", self.path) from None
        wanted = {b">" + html.escape(row_id, quote=False).encode() + b"</" for row_id in expect}
        if len(wanted) > 32:  # many rows: one pass collecting every text beats a search per ID
            found = {b">" + text + b"</" for data in texts for text in _TEXT.findall(data)}
            missing = wanted - found
        else:
            missing = {want for want in wanted if not any(want in data for data in texts)}
        if missing:
            raise MrishareError(f"the saved ledger lacks {len(missing)} row(s) just written; the "
                                "previous file is kept", self.path)


def _parse_xml(data: bytes, chunk: int = 1 << 18) -> None:
    """Raise ExpatError unless `data` is well-formed XML. Fed in pieces: expat holds the GIL while it
    parses, and a 10 MB sheet in one call would stall the app's screen for a few hundred ms."""
    parser = expat.ParserCreate()
    for start in range(0, len(data), chunk):
        parser.Parse(data[start:start + chunk], False)
    parser.Parse(b"", True)


_TEXT = re.compile(rb"<(?:\w+:)?t(?:\s[^>]*)?>([^<]*)</(?:\w+:)?t>")
"""The text of a string's <t> element (as stored: XML-escaped)."""


def _unreadable(error: XlsxError, where: Path) -> MrishareError:
    return MrishareError(f"cannot read the workbook ({error}); it is left untouched - repair it or move it away",
                         where)


def _numbers(sheet: Sheet, id_col: int) -> dict[str, int]:
    """ID -> sheet row number."""
    found = {}
    for row in sheet.rows:
        value = row.values.get(id_col)
        if row.number >= 2 and value is not None:
            found[_cell_text(value)] = row.number
    return found


def _new_workbook() -> dict[str, bytes]:
    """The parts of a workbook with the 'shares' sheet, a bold, frozen header row and set widths."""
    import openpyxl
    from openpyxl.styles import Font

    wb = openpyxl.Workbook()
    sheet = wb.active
    assert sheet is not None
    sheet.title = SHEET
    for col, (name, label) in enumerate(HEADERS.items(), start=1):
        cell = sheet.cell(1, col, label)
        cell.font = Font(bold=True)
        sheet.column_dimensions[get_column_letter(col)].width = 22 if name in ("link", "passphrase") else 14
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    wb.save(buffer)
    return Book.from_bytes(buffer.getvalue()).parts


def _sheet(book: Book, where: Path) -> Sheet:
    """The 'shares' sheet, or the first sheet whose header has an ID column (a seed-era file)."""
    names = [name for name, _ in book.sheets]
    if SHEET in names:
        return book.sheet(SHEET)
    for name in names:
        if any(_FIELD_BY_KEY.get(_key(v)) == "id" for v in book.header(name).values()):
            return book.sheet(name)
    raise MrishareError(f"no sheet named {SHEET!r} and no sheet with an ID column", where)


def _columns(header: dict[int, object], title: str, where: Path) -> dict[str, int]:
    """Field -> column number from the header row (column -> value)."""
    columns: dict[str, int] = {}
    for col in sorted(header):
        name = _FIELD_BY_KEY.get(_key(header[col]))
        if name and name not in columns:
            columns[name] = col
    if "id" not in columns:
        raise MrishareError(f"sheet {title!r} has no ID column", where)
    return columns


def _from_cells(values: dict[int, object], columns: dict[str, int], number: int, where: Path) -> LedgerRow | None:
    """A LedgerRow from one sheet row (column -> value), or None for a row without ID."""
    row_id = _cell_text(values.get(columns["id"]))
    if not row_id:
        return None
    kwargs: dict[str, object] = {"id": row_id}
    for name, col in columns.items():
        value = values.get(col)
        if value is None or value == "" or name == "id":
            continue
        if type(value) is str and name in _TEXT_FIELDS:  # most cells: text into a text field
            kwargs[name] = value.strip()
        else:
            kwargs[name] = _from_cell(name, value, f"{get_column_letter(col)}{number}", where)
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
    try:
        with private_temp(lock, me) as tmp:
            for _ in range(2):
                try:
                    _place(tmp, lock)
                except FileExistsError:
                    _refuse_or_clear(lock, path, notes)
                    continue
                return lock
    except OSError as error:
        raise disk_error(error, lock, len(me)) from None
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


