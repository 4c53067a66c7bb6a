"""A local folder as destination (demo, USB stick, a lab share): atomic copies, `file://` links, expiry kept in
an index beside the packages. Imports only `base` (never the registry)."""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import threading
from collections.abc import Collection
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.config import fsync_path, write_private
from tui.core.delivery.base import (
    STEP,
    Delivered,
    ShareInfo,
    SharePolicy,
    check_remote_name,
    copy_with_progress,
    expiry_date,
)
from tui.core.delivery.unlock_page import page_path
from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepFinished, StepStarted
from tui.core.safetext import disk_error, human_bytes, shown

if TYPE_CHECKING:
    from threading import Event

class FolderDestination:
    """A local directory (demo, USB stick): atomic copies, `file://` links, expiry kept in an index."""

    kind = "folder"
    INDEX = ".mrishare-shares.json"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self._lock = threading.Lock()

    def check(self) -> list[tuple[str, bool, str]]:
        """Is the folder there and writable, and how much space is left."""
        if not self.root.is_dir():
            return [("folder", False, f"{self.root} does not exist")]
        writable = os.access(self.root, os.W_OK)
        result = [("folder", writable, f"{self.root} is {'writable' if writable else 'not writable'}")]
        free = shutil.disk_usage(self.root).free
        result.append(("free space", free > 0, f"{human_bytes(free)} free"))
        return result

    def exists(self, remote_name: str) -> bool:
        """True if the file is already in the folder."""
        return (self.root / check_remote_name(remote_name)).exists()

    def upload(self, local: Path, remote_name: str, cancel: Event | None = None) -> EventStream[Delivered]:
        """Copy via a temp file + fsync + rename, so a full disk or a crash leaves no partial file."""
        rel = check_remote_name(remote_name)
        target = self.root / rel
        size = Path(local).stat().st_size
        yield StepStarted(rel, STEP, total=size)
        if not self.root.is_dir():
            raise MrishareError("destination folder does not exist", self.root)
        if target.exists():
            raise MrishareError("already exists at the destination; refusing to overwrite", rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(target.parent).free
        if size > free:
            raise MrishareError(f"not enough space: need {human_bytes(size)}, {human_bytes(free)} free", self.root)
        for stale in target.parent.glob(f".{target.name}.*.part"):  # left by a killed earlier run
            stale.unlink(missing_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            with open(local, "rb") as src, open(tmp, "xb") as dst:
                yield from copy_with_progress(src, dst, rel, size, cancel)
                dst.flush()
                os.fsync(dst.fileno())
            if target.exists():
                raise MrishareError("already exists at the destination; refusing to overwrite", rel)
            os.rename(tmp, target)
            fsync_path(target.parent)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise MrishareError("destination is full; the partial copy was removed", self.root) from None
            raise MrishareError(f"copy failed ({exc.strerror or type(exc).__name__})", rel) from None
        finally:
            tmp.unlink(missing_ok=True)
        if target.stat().st_size != size:
            raise MrishareError("size after copy differs from the package", rel)
        yield StepFinished(rel, STEP, f"{human_bytes(size)} copied")
        return Delivered(rel, size, None)

    def share(self, delivered_path: str, expire_days: int, label: str, password: str | None = None) -> ShareInfo:
        """Record the file with its expiry; the link is its `file://` URL (no password possible)."""
        if password:
            raise MrishareError("a folder destination cannot protect a file with a share password")
        rel = check_remote_name(delivered_path)
        if not (self.root / rel).is_file():
            raise MrishareError("nothing to share: file is not at the destination", rel)
        info = ShareInfo(secrets.token_hex(6), (self.root / rel).as_uri(), expiry_date(expire_days), False, label, rel)
        with self._lock:
            index = self._read_index()
            index[info.share_id] = info
            self._write_index(index)
        return info

    def policy(self) -> SharePolicy:
        """A folder makes no demands (and cannot protect a file with a password)."""
        return SharePolicy()

    def find_share(self, share_id: str) -> ShareInfo | None:
        """The recorded share while its file is there and its expiry has not come.

        A folder that is not there (a USB stick or lab share not mounted) says nothing about its links: an error,
        so that no row is marked gone for it."""
        if not self.root.is_dir():
            raise MrishareError("destination folder not found; its links were not checked", self.root)
        with self._lock:
            info = self._read_index().get(share_id)
        if info is None or not (self.root / info.remote_path).is_file():
            return None
        return None if info.expires is not None and info.expires <= date.today() else info

    def revoke(self, share_id: str, remote_path: str) -> None:
        """Delete the file (and its now-empty folder) and forget the share."""
        rel = check_remote_name(remote_path)
        with self._lock:
            index = self._read_index()
            index.pop(share_id, None)
            self._remove(rel)
            self._write_index(index)

    def extend(self, share_id: str, expire_days: int) -> ShareInfo:
        """Move the recorded expiry to give `expire_days` full days from today."""
        with self._lock:
            index = self._read_index()
            if share_id not in index:
                raise MrishareError("no such share at this folder", share_id)
            old = index[share_id]
            index[share_id] = ShareInfo(old.share_id, old.url, expiry_date(expire_days), False, old.label,
                                        old.remote_path)
            self._write_index(index)
            return index[share_id]

    def list_shares(self) -> list[ShareInfo]:
        """Recorded shares, oldest first."""
        with self._lock:
            return list(self._read_index().values())

    def cleanup_expired(self, today: date | None = None, owned: Collection[str] | None = None) -> list[str]:
        """Delete files whose recorded expiry date has come (only `owned` remote paths, if given)."""
        today = today or date.today()
        removed = []
        with self._lock:
            index = self._read_index()
            for share_id, info in list(index.items()):
                mine = owned is None or info.remote_path in owned
                if mine and info.expires is not None and info.expires <= today:
                    self._remove(info.remote_path)
                    del index[share_id]
                    removed.append(info.remote_path)
            self._write_index(index)
        return removed

    def close(self) -> None:
        """Nothing to release for a local folder."""

    def _remove(self, rel: str) -> None:
        target = self.root / rel
        target.unlink(missing_ok=True)
        page_path(target).unlink(missing_ok=True)  # the passphrase page beside the zip goes with it
        for parent in target.parents:
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def _read_index(self) -> dict[str, ShareInfo]:
        path = self.root / self.INDEX
        if not path.exists():
            return {}
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
            return {
                r["share_id"]: ShareInfo(**{**r, "expires": date.fromisoformat(r["expires"]) if r["expires"] else None})
                for r in rows
            }
        except (ValueError, KeyError, TypeError):
            raise MrishareError("share index is damaged; fix or delete it", path) from None

    def _write_index(self, index: dict[str, ShareInfo]) -> None:
        rows = [{**asdict(i), "expires": i.expires.isoformat() if i.expires else None} for i in index.values()]
        write_private(self.root / self.INDEX, json.dumps(rows, indent=1).encode())


def make_folder(root: Path) -> Path:
    """Create the destination folder (and parents); a file in the way or an OS error is one clear line."""
    for part in (root, *root.parents):
        if part.exists() and not part.is_dir():
            raise MrishareError("is a file, not a folder: a folder destination needs a folder", shown(part))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise disk_error(error, root) from None
    return root
