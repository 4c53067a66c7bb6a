"""Non-identifying keys for participants: a keyed hash, so a folder name never leaves as an id."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from tui.core.config import site_secret


def participant_key(folder: Path, secret: bytes | None = None) -> str:
    """A stable, non-identifying id for a participant folder: keyed hash of its resolved path
    (its bytes: a name that is not UTF-8 hashes as it is on disk)."""
    digest = hmac.new(secret or site_secret(), os.fsencode(folder.resolve()), hashlib.sha256).hexdigest()
    return "p-" + digest[:10]
