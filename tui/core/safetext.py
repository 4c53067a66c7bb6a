"""Text that can always be shown, stored in XML and explained: escapes for undecodable bytes,
XML 1.0-safe strings, one-line messages for OS errors (full disk, permissions), and the private
crash report behind an "internal error" line.

A file name with a byte that is not UTF-8 reaches Python as a lone surrogate (PEP 383); printed,
written to a UTF-8 file or to the ledger's XML it raises or corrupts. Here it becomes `\\xff`.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import secrets
import shutil
import traceback
from datetime import UTC, datetime
from pathlib import Path

from tui.core.errors import MrishareError

ESCAPE_ERRORS = "mrishare-escape"
"""Codec error handler: lone surrogates of undecodable bytes as `\\xNN`, anything else as `\\uNNNN`."""

# XML 1.0 Char production: tab, LF, CR, U+0020-D7FF, U+E000-FFFD, U+10000-10FFFF.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _handler(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    chunk = error.object[error.start:error.end]
    return "".join(_escape(c) for c in chunk), error.end


codecs.register_error(ESCAPE_ERRORS, _handler)


def shown(value: object) -> str:
    """`value` as text safe to print or store: undecodable bytes and non-XML characters escaped."""
    return _NOT_XML.sub(lambda m: _escape(m.group()), str(value))


def disk_error(error: OSError, path: str | Path | None = None, need: int | None = None) -> MrishareError:
    """One line for an OS error: the path, what went wrong and, for a full disk, the space needed and free."""

    where = path if path is not None else error.filename
    where_text = shown(where) if where is not None else None
    reason = error.strerror or type(error).__name__
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        free = _free_space(Path(str(where))) if where is not None else None
        reason = "disk full"
        if need is not None:
            reason += f": need {human_bytes(need)}"
        if free is not None:
            reason += f"{',' if need is not None else ':'} {human_bytes(free)} free"
        reason += "; nothing was left half-written"
    return MrishareError(reason, where_text)


def _free_space(path: Path) -> int | None:
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def crash_report(error: BaseException) -> str:
    """Write the traceback to `<data dir>/crash/<time>-<pid>.txt` (0600); say where, or that it failed."""
    from tui.core.config import data_dir, write_private  # platformdirs only when something broke

    text = "".join(traceback.format_exception(error))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = data_dir() / "crash" / f"{stamp}-{os.getpid()}-{secrets.token_hex(2)}.txt"
    try:
        write_private(path, text.encode("utf-8", "backslashreplace"))
    except OSError:
        return "no report could be written"
    return f"full report (may hold file names): {path}"


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as file managers show them)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def counted(n: int, noun: str) -> str:
    """'1 participant', '2 participants' (English plural by -s: the nouns we count take it)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
