"""Where mrishare keeps its local state, and the site secret behind pseudonyms and UID remapping.

Paths come from platformdirs; `MRISHARE_HOME` overrides all of them (tests, portable installs).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from platformdirs import user_config_path, user_data_path

from tui.core.errors import MrishareError

APP_NAME = "mrishare"
HOME_ENV = "MRISHARE_HOME"


def config_dir() -> Path:
    """Folder for credentials.json, settings and the site secret."""
    home = os.environ.get(HOME_ENV)
    return Path(home) / "config" if home else user_config_path(APP_NAME)


def data_dir() -> Path:
    """Folder for journals, audit records and the pseudonym mapping."""
    home = os.environ.get(HOME_ENV)
    return Path(home) / "data" if home else user_data_path(APP_NAME)


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder entry after a rename, to disk (folders: POSIX only; else a no-op)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def private_temp(path: Path, data: bytes) -> Iterator[Path]:
    """A temp file beside `path` (mode 0600, created exclusively) holding `data`, written and fsynced; removed
    on leaving unless the caller renamed or linked it into place. For writes that must be whole or absent."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` atomically to `path` with mode 0600 (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with private_temp(path, data) as tmp:
        os.replace(tmp, path)
    fsync_path(path.parent)


def check_private(path: Path) -> None:
    """Refuse a secret file that group or others can read, naming the fix."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MrishareError(f"readable by group/others (mode {mode & 0o777:o}); fix: chmod 600 {path}", path)


def site_secret(path: Path | None = None) -> bytes:
    """The site's 32-byte secret key, created on first use (mode 0600).

    It keys pseudonyms, UID remapping and date shifts, so that nobody without it
    can recompute them by guessing PatientIDs. Losing it breaks consistency with
    earlier runs; back it up with the ledger.
    """
    path = path or config_dir() / "site-secret"
    if not path.exists():
        write_private(path, secrets.token_hex(32).encode() + b"\n")
    check_private(path)
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise MrishareError("site secret is not hex", path) from None
    if len(key) < 16:
        raise MrishareError("site secret is shorter than 16 bytes", path)
    return key
