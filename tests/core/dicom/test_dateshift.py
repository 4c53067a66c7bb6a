"""Date shifting: one keyed offset per participant, intervals kept, every DA/DT form handled."""

from __future__ import annotations

from datetime import date

from tui.core.dicom.dateshift import MAX_SHIFT_DAYS, MIN_SHIFT_DAYS, offset_days, offset_seconds, shift

SECRET = b"s" * 32


def _days(a: str, b: str) -> int:
    return (date(int(b[:4]), int(b[4:6]), int(b[6:8])) - date(int(a[:4]), int(a[4:6]), int(a[6:8]))).days


def test_offset_is_stable_keyed_and_in_range() -> None:
    first = offset_days(SECRET, "PID-CANARY-0815")
    assert first == offset_days(SECRET, "PID-CANARY-0815")
    assert -MAX_SHIFT_DAYS <= first <= -MIN_SHIFT_DAYS
    others = {offset_days(SECRET, f"P{i}") for i in range(50)}
    assert len(others) > 40
    assert offset_days(b"t" * 32, "PID-CANARY-0815") != first or offset_days(b"u" * 32, "PID-CANARY-0815") != first


def test_interval_between_studies_is_kept() -> None:
    days = offset_days(SECRET, "PID-CANARY-0815")
    a, b = shift("DA", "20230110", days), shift("DA", "20240215", days)
    assert a != "20230110" and _days(a, b) == 401
    birth, study = shift("DA", "19230405", days), shift("DA", "20230405", days)
    assert _days(birth, study) == 36525


def test_multi_values_ranges_and_old_format() -> None:
    assert shift("DA", "20230110\\20230111", -1) == "20230109\\20230110"
    assert shift("DA", "20230110-20230112", -1) == "20230109-20230111"
    assert shift("DA", "-20230112", -1) == "-20230111"
    assert shift("DA", "20230110-", -1) == "20230109-"
    assert shift("DA", "2023.01.10", -1) == "20230109"


def test_unparseable_dates_are_emptied_not_kept() -> None:
    assert shift("DA", "05.04.1923", -1) == ""
    assert shift("DA", "", -1) == ""


def test_datetime_keeps_precision_and_utc_offset() -> None:
    assert shift("DT", "20230405101500.123456+0100", -1) == "20230404101500.123456+0100"
    assert shift("DT", "20230405101500-0500", -1, -3600) == "20230404091500-0500"
    assert shift("DT", "202304", -40) == "202302"
    assert shift("DT", "20230405-20230406", -1) == "20230404-20230405"


def test_times_move_by_the_seconds_modulo_a_day() -> None:
    assert shift("TM", "101500.00", -1234, -3600) == "091500.00"
    assert shift("TM", "0030", 0, -3600) == "2330"
    assert shift("TM", "10:15:00", 0, 60) == "101600"
    assert shift("TM", "101500\\111500", 0, -7200) == "081500\\091500"
    assert shift("TM", "xx", 0, -60) == ""
    seconds = offset_seconds(SECRET, "PID-CANARY-0815")
    assert -6 * 3600 <= seconds <= -3600 and seconds == offset_seconds(SECRET, "PID-CANARY-0815")
