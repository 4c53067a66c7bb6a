"""Study-variables CSV (seed workflow): the same pseudonym and date shift as the DICOM data.

`deidentify_csv` replaces the ID column with the participant's pseudonym (same scheme and site
secret as `mrishare deid`) and moves each date column by the participant's offset, so ages at
scan, intervals and the link to the imaging stay right. Date cells keep their format
(YYYYMMDD, YYYY-MM-DD, DD.MM.YYYY or DD/MM/YYYY); other columns are copied as they are.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

from tui.core.config import site_secret
from tui.core.deid.pseudonym import Pseudonymizer, parse_scheme, record_mapping, strip_padding
from tui.core.dicom.dateshift import offset_days
from tui.core.errors import MrishareError

DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y")


def shift_cell(text: str, days: int) -> str | None:
    """A date cell moved by `days` in its own format; None if it is not a date ('' stays '')."""
    value = text.strip()
    if not value:
        return text
    for fmt in DATE_FORMATS:
        try:
            when = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return (when + timedelta(days=days)).strftime(fmt)
    return None


def deidentify_csv(source: Path, out: Path, id_column: str, date_columns: list[str], pseudonym: str = "keyed",
                   delimiter: str | None = None) -> int:
    """Write a copy of `source` with pseudonymized IDs and shifted dates to `out`; returns the row count."""
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise MrishareError("OUT must differ from IN", out)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise MrishareError(f"cannot read CSV ({type(error).__name__})", source) from None
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text.splitlines()[0] if text else ",", delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    columns = reader.fieldnames or []
    for name in [id_column, *date_columns]:
        if name not in columns:
            raise MrishareError(f"no column named {name!r}", source)
    secret = site_secret()
    scheme = parse_scheme(pseudonym)
    names = Pseudonymizer(scheme, secret)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    seen: dict[str, str] = {}
    count = 0
    for number, row in enumerate(reader, start=2):
        pid = strip_padding(row[id_column])
        if not pid:
            raise MrishareError(f"line {number}: empty {id_column}", source)
        if pid not in seen:
            seen[pid] = names.pseudonym(pid, where=f"{source}:{number}")
        days = offset_days(secret, pid)
        row[id_column] = seen[pid]
        for name in date_columns:
            shifted = shift_cell(row[name] or "", days)
            if shifted is None:
                raise MrishareError(f"line {number}, column {name!r}: not a date in a known format", source)
            row[name] = shifted
        writer.writerow(row)
        count += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(buffer.getvalue(), encoding="utf-8")
    for pid, value in seen.items():
        record_mapping(scheme, pid, value)
    return count
