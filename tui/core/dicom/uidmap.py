"""Deterministic UID replacement: `2.25.<int>` from a keyed hash of the original UID.

The same site secret maps the same UID to the same new UID in every run, so all files of a
study stay consistent and references (ReferencedSOPInstanceUID, FrameOfReferenceUID...) still
resolve. Without the secret nobody can link a new UID back to a guessed original.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

# PS3.5 9.1: UIDs under the DICOM root name standard classes, transfer syntaxes and codes.
WELL_KNOWN_ROOT = "1.2.840.10008."


def is_well_known(uid: str) -> bool:
    """True for UIDs defined by the standard itself (never remapped)."""
    return uid.startswith(WELL_KNOWN_ROOT)


class UidMap:
    """Maps original UIDs to `2.25.<128-bit int>` (PS3.5 B.2, UUID-derived form), keyed by the site secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"mrishare uid v1" + secret).digest()
        self.remap = lru_cache(maxsize=65536)(self._remap)

    def _remap(self, uid: str) -> str:
        """The replacement for `uid` (padding stripped); well-known and empty UIDs pass through."""
        uid = uid.rstrip("\x00 ")
        if not uid or is_well_known(uid):
            return uid
        digest = hmac.new(self._key, uid.encode("ascii", "replace"), hashlib.sha256).digest()
        # 2.25 requires a UUID-sized integer: take 128 bits, set the RFC 4122 version 4/variant bits
        # so the number is a valid UUID as PS3.5 B.2 asks.
        raw = bytearray(digest[:16])
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        return f"2.25.{int.from_bytes(raw, 'big')}"
