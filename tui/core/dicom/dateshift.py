"""Per-participant date shifting for "Retain Longitudinal Temporal Information with Modified Dates".

Every DA value of one participant moves back by the same whole number of days, and every TM value
by the same number of seconds (1 to 6 hours back, modulo 24 h, never carried into the date), both
derived from a keyed hash of the participant's stripped PatientID: the same in every run, nobody
without the site secret can undo it, and intervals between dates stay exact in days. Times of
day only wrap for events between midnight and 6 a.m. DT values get both: date part by the days,
time part by the seconds, the same way, so DT and DA/TM pairs stay consistent.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

MIN_SHIFT_DAYS = 365
MAX_SHIFT_DAYS = 3650
MIN_SHIFT_SECONDS = 3600
MAX_SHIFT_SECONDS = 6 * 3600
_TM = re.compile(r"^(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?(\.\d{1,6})?$")

_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$")


def offset_days(secret: bytes, participant_key: str) -> int:
    """The (negative) day offset for one participant: between -3650 and -365, same every run."""
    digest = hmac.new(secret, b"mrishare dateshift v1\x00" + participant_key.encode("utf-8"), hashlib.sha256)
    span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
    return -(MIN_SHIFT_DAYS + int.from_bytes(digest.digest()[:8], "big") % span)


def offset_seconds(secret: bytes, participant_key: str) -> int:
    """The (negative) time-of-day offset for one participant: 1 to 6 hours back, same every run."""
    digest = hmac.new(secret, b"mrishare timeshift v1\x00" + participant_key.encode("utf-8"), hashlib.sha256)
    span = MAX_SHIFT_SECONDS - MIN_SHIFT_SECONDS + 1
    return -(MIN_SHIFT_SECONDS + int.from_bytes(digest.digest()[:8], "big") % span)


def _shift_time(text: str, seconds: int) -> str:
    """One TM value moved by `seconds` modulo 24 h, keeping its precision; '' when unparseable."""
    text = text.strip()
    if not text:
        return ""
    match = _TM.match(text)
    if not match:
        return ""
    hours, minutes, secs, fraction = match.groups()
    if int(hours) > 23 or int(minutes or 0) > 59 or int(secs or 0) > 60:
        return ""
    total = (int(hours) * 3600 + int(minutes or 0) * 60 + min(int(secs or 0), 59) + seconds) % 86400
    out = f"{total // 3600:02d}"
    if minutes is not None:
        out += f"{total // 60 % 60:02d}"
    if secs is not None:
        out += f"{total % 60:02d}" + (fraction or "")
    return out


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


def _shift_datetime(text: str, days: int, seconds: int = 0) -> str:
    """One DT value shifted (date by days, time of day by seconds), keeping precision and UTC offset."""
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
    if clock:
        clock = _shift_time(clock, seconds) or clock[:2]
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


def _valid_time(text: str) -> bool:
    """True for one TM value."""
    return bool(_TM.match(text.strip()))


def shift(vr: str, value: str, days: int, seconds: int = 0) -> str:
    """A DA/DT/TM value (multi-valued or a range) moved by `days` and `seconds`; other VRs unchanged."""
    if vr == "DA":
        return _shift_values(value, days, _shift_date, _valid_date)
    if vr == "DT":
        return _shift_values(value, days, lambda v, d: _shift_datetime(v, d, seconds), _valid_datetime)
    if vr == "TM":
        return _shift_values(value, seconds, _shift_time, _valid_time)
    return value
