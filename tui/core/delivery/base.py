"""Where finished packages go: one interface, a local folder (default) and Nextcloud.

Remote names are relative paths chosen by the caller, e.g. `<random-share-id>/sub-<pseudonym>.zip`;
they must carry no identifier and never the passphrase. Every path in and out of this API is relative
to the destination's root (the folder, or `remote_path` on Nextcloud). Nothing is ever overwritten.

Expiry convention (both destinations): a link dies at 00:00 of its expiry date and Nextcloud rejects
"today", so giving the participant N full days means expiry date = today + N + 1.
`ShareInfo.expires` is that date; `ShareInfo.last_day` is the last day the link works.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepProgress, Throttle

if TYPE_CHECKING:
    from threading import Event

STEP = "upload"
BLOCK = 8 << 20


@dataclass(frozen=True)
class Delivered:
    """A file that arrived completely at a destination."""

    remote_path: str
    """The remote name as given to `upload`, relative to the destination's root (also for `share`/`revoke`)."""
    size: int
    file_id: str | None
    """Nextcloud's `OC-FileId`; None for a folder."""


@dataclass(frozen=True)
class ShareInfo:
    """A link to a delivered file, as the destination reports it back."""

    share_id: str
    url: str
    expires: date | None
    """The link stops working at 00:00 of this date (None: never)."""
    has_password: bool
    label: str
    remote_path: str = ""

    @property
    def last_day(self) -> date | None:
        """The last calendar day on which the link still works."""
        return self.expires - timedelta(days=1) if self.expires else None


@dataclass(frozen=True)
class SharePolicy:
    """What the destination demands of a link, read before anything is uploaded."""

    password_required: bool = False
    """Links must carry a share password."""
    password_min_length: int = 0
    """The server's password policy: shortest share password it accepts."""
    max_expire_days: int | None = None
    """Most full days a link may give (None: no limit)."""

    def expire_days(self, wanted: int) -> int:
        """`wanted` full days, shortened to the server's limit."""
        if self.max_expire_days is None:
            return wanted
        if self.max_expire_days < 1:
            raise MrishareError("the server allows no link that stays valid for a full day")
        return min(wanted, self.max_expire_days)


class Destination(Protocol):
    """What the pipeline and the app need from any destination."""

    kind: str

    def check(self) -> list[tuple[str, bool, str]]:
        """Plain-words connection test: (what, ok, detail) per item."""
        ...

    def upload(self, local: Path, remote_name: str, cancel: Event | None = None) -> EventStream[Delivered]:
        """Copy `local` to `remote_name` (byte progress events); refuses to overwrite."""
        ...

    def exists(self, remote_name: str) -> bool:
        """True if `remote_name` is already there."""
        ...

    def share(self, delivered_path: str, expire_days: int, label: str, password: str | None = None) -> ShareInfo:
        """A read-only link giving `expire_days` full days."""
        ...

    def policy(self) -> SharePolicy:
        """The link rules of this destination (login and sharing rights checked on the way)."""
        ...

    def find_share(self, share_id: str) -> ShareInfo | None:
        """The link as the destination has it now; None once it expired or was deleted."""
        ...

    def revoke(self, share_id: str, remote_path: str) -> None:
        """Remove the link and the file."""
        ...

    def extend(self, share_id: str, expire_days: int) -> ShareInfo:
        """Give the link `expire_days` full days from today."""
        ...

    def list_shares(self) -> list[ShareInfo]:
        """All links this destination made that are still alive."""
        ...

    def cleanup_expired(self, today: date | None = None, owned: Collection[str] | None = None) -> list[str]:
        """Delete files whose links expired; return their remote paths. Given `owned` (the remote paths of one
        ledger's rows), nothing else is touched: several ledgers may deliver to one destination."""
        ...

    def close(self) -> None:
        """Release connections (call when done with the destination)."""
        ...


def expiry_date(expire_days: int, today: date | None = None) -> date:
    """Expiry date giving `expire_days` full days: the link dies at 00:00 of today + N + 1."""
    if expire_days < 1:
        raise MrishareError("a link must stay valid for at least 1 day")
    return (today or date.today()) + timedelta(days=expire_days + 1)


def check_remote_name(remote_name: str) -> str:
    """Normalise a relative remote name, refusing absolute paths, `..` and empty parts."""
    parts = remote_name.split("/")
    if not remote_name or any(p in ("..", ".", "") for p in parts) or "\\" in remote_name:
        raise MrishareError("remote name must be a relative path like <id>/sub-<pseudonym>.zip")
    return "/".join(parts)


def copy_with_progress(src: BinaryIO, dst: BinaryIO, subject: str, total: int,
                       cancel: Event | None) -> EventStream[int]:
    """Copy file object `src` into `dst` in large blocks, yielding throttled byte progress."""
    throttle, done = Throttle(), 0
    while block := src.read(BLOCK):
        if cancel is not None and cancel.is_set():
            raise MrishareError("upload cancelled", subject)
        dst.write(block)
        done += len(block)
        if throttle.ready(done, total):
            yield StepProgress(subject, STEP, done, total, unit="bytes")
    return done
