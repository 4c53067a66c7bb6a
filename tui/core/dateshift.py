"""Per-participant date shifting for "Retain Longitudinal Temporal Information with Modified Dates".

Every DA/DT value of one participant moves back by the same whole number of days, derived from a
keyed hash of the participant's stripped PatientID, so it is the same in every run, intervals
between studies stay exact, and nobody without the site secret can undo it. Times of day (TM, and
the time part of DT) are kept: a whole-day shift does not change them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

MIN_SHIFT_DAYS = 365
MAX_SHIFT_DAYS = 3650

_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$")


def offset_days(secret: bytes, participant_key: str) -> int:
    """The (negative) day offset for one participant: between -3650 and -365, same every run."""
    digest = hmac.new(secret, b"mrishare dateshift v1\x00" + participant_key.encode("utf-8"), hashlib.sha256)
    span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
    return -(MIN_SHIFT_DAYS + int.from_bytes(digest.digest()[:8], "big") % span)


def _shift_date(text: str, days: int) -> str:
    """One DA value (YYYYMMDD, or old YYYY.MM.DD) shifted; '' when it is not a date."""
    text = text.strip().replace(".", "")
    if not text:
        return ""
    try:
        moved = datetime.strptime(text, "%Y%m%d").date() + timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    return moved.strftime("%Y%m%d") if moved.year >= 1000 else ""


def _shift_datetime(text: str, days: int) -> str:
    """One DT value shifted, keeping its precision, time of day and UTC offset; '' when unparseable."""
    text = text.strip()
    if not text:
        return ""
    match = _DT.match(text)
    if not match:
        return ""
    year, month, day, clock, zone = match.groups()
    try:
        moved = date(int(year), int(month or 1), int(day or 1)) + timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    if moved.year < 1000:
        return ""
    head = moved.strftime("%Y%m%d")[: 4 + (2 if month else 0) + (2 if day else 0)]
    return head + (clock or "") + (zone or "")


def _split_range(item: str, one_valid: Callable[[str], bool]) -> tuple[str, str] | None:
    """(left, right) if `item` is an A-B range query of valid parts, else None."""
    if one_valid(item):
        return None
    for i, char in enumerate(item):
        if char == "-":
            left, right = item[:i], item[i + 1 :]
            if (left or right) and (not left or one_valid(left)) and (not right or one_valid(right)):
                return left, right
    return None


def _shift_values(
    value: str, days: int, one: Callable[[str, int], str], one_valid: Callable[[str], bool]
) -> str:
    """Apply `one` to each value of a multi-valued (backslash) element, keeping A-B range queries."""
    out = []
    for item in value.split("\\"):
        bounds = _split_range(item.strip(), one_valid)
        if bounds is None:
            out.append(one(item, days))
        else:
            left, right = bounds
            out.append(f"{one(left, days) if left else ''}-{one(right, days) if right else ''}")
    return "\\".join(out)


def _valid_date(text: str) -> bool:
    """True for one DA value."""
    return bool(re.fullmatch(r"\d{8}|\d{4}\.\d{2}\.\d{2}", text.strip()))


def _valid_datetime(text: str) -> bool:
    """True for one DT value."""
    return bool(_DT.match(text.strip()))


def shift(vr: str, value: str, days: int) -> str:
    """A DA/DT value (multi-valued or a range) moved by `days`; other VRs (TM...) are returned as is."""
    if vr == "DA":
        return _shift_values(value, days, _shift_date, _valid_date)
    if vr == "DT":
        return _shift_values(value, days, _shift_datetime, _valid_datetime)
    return value
