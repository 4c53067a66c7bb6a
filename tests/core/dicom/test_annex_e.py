"""Annex E lookups checked against every row of the shipped PS3.15 2025e tables."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tui.core.dicom import annex_e
from tui.core.dicom.annex_e import OPTIONS, lookup
from tui.core.errors import MrishareError

MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
PET = "1.2.840.10008.5.1.4.1.1.128"
SAFE_CREATOR = "SIEMENS MR HEADER"
SAFE_TAG = 0x0019100C  # B Value, E.3.10-1


def _rows(name: str) -> list[dict[str, str]]:
    with open(annex_e.TABLE_DIR / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


E11 = _rows("annex_e_table_e1_1.csv")
SAFE = _rows("annex_e_table_e3_10_1_safe_private.csv")


def _concrete_tags(pattern: str) -> list[tuple[int, str | None]]:
    """Tags (and creator) that a table row stands for; patterns give first and last group."""
    group, element = pattern.split(",")
    if group == "gggg":
        return [(SAFE_TAG, SAFE_CREATOR)]
    if group == "60xx":
        return [(0x6000 << 16 | int(element, 16), None), (0x601E << 16 | int(element, 16), None)]
    if group == "50xx":
        return [(0x50000000, None), (0x501E0020, None)]
    return [(int(group, 16) << 16 | int(element, 16), None)]


def test_shipped_tables_match_the_corpus(shared_data: Path) -> None:
    corpus = shared_data / "phi-corpus"
    for name in ("annex_e_table_e1_1.csv", "annex_e_table_e3_10_1_safe_private.csv",
                 "annex_e_table_e1_1a_action_codes.csv"):
        assert (annex_e.TABLE_DIR / name).read_bytes() == (corpus / name).read_bytes(), name
    assert len(E11) == 655 and len(annex_e.all_rules()) == 655
    assert annex_e.TABLE_EDITION == "PS3.15 2025e"


@pytest.mark.parametrize("row", E11, ids=[r["tag"] for r in E11])
def test_every_row_basic_and_every_option_cell(row: dict[str, str]) -> None:
    basic = row["basic"]
    choices = basic.replace("*", "").split("/")
    for tag, creator in _concrete_tags(row["tag"]):
        rule = annex_e.rule_for(tag)
        assert rule is not None and rule.tag == row["tag"] and rule.basic == basic
        assert rule.retired == (row["retired"] == "Y") and rule.in_std_comp_iod == (row["in_std_comp_iod"] == "Y")
        d = lookup(tag, None, creator)
        assert d.code == basic and d.action in choices and not d.review
        assert row["tag"] in d.reason or row["tag"] == "gggg,eeee"
        if len(choices) > 1:
            # Table E.1-1a: Type 3 -> the first (most removing) choice, Type 1 -> the last.
            assert lookup(tag, required_type="3").action == choices[0]
            assert lookup(tag, required_type="1").action == choices[-1]
            assert lookup(tag, required_type="2").action == ("Z" if "Z" in choices else choices[-1])
        for option in OPTIONS:
            d = lookup(tag, None, creator, frozenset({option}))
            if row[option]:
                assert (d.action, d.code) == (row[option], row[option]), option
                assert option in d.reason
            else:
                assert d.code == basic, option


@pytest.mark.parametrize("row", SAFE, ids=[f"{r['private_creator']} {r['tag']}" for r in SAFE])
def test_every_safe_private_row(row: dict[str, str]) -> None:
    group = int(row["tag"][:4], 16)
    low = int(row["tag"][-2:], 16)
    creator = row["private_creator"]
    for block in (0x10, 0x42, 0xFF):
        tag = group << 16 | block << 8 | low
        assert annex_e.is_safe_private(tag, creator)
        assert lookup(tag, None, creator, frozenset({"rtn_safe_priv"})).action == "C"
        assert lookup(tag, None, creator).action == "X"
        creator_tag = group << 16 | block
        assert lookup(creator_tag, "LO", creator, frozenset({"rtn_safe_priv"})).action == "K"
        assert lookup(creator_tag, "LO", creator).action == "X"
    assert not annex_e.is_safe_private(group << 16 | 0x1000 | low, creator + " X")


def test_done_when_examples() -> None:
    assert lookup(0x00100010, "PN").action == "Z"
    assert lookup(0x00080020, "DA").action == "Z"
    assert lookup(0x00080020, "DA", options=frozenset({"rtn_long_full_dates"})).action == "K"
    assert lookup(0x00080020, "DA", options=frozenset({"rtn_long_modif_dates"})).action == "C"
    assert lookup(0x00091010, "LO", "CANARY CORP 1.0", frozenset({"rtn_safe_priv"})).action == "X"
    assert lookup(0x00091010, "LO", "CANARY CORP 1.0").reason == "private, not safe: X"
    assert lookup(0x00090010, "LO", "CANARY CORP 1.0", frozenset({"rtn_safe_priv"})).action == "X"


def test_patterns_and_odd_groups() -> None:
    assert annex_e.rule_for(0x60023000).tag == "60xx,3000"
    assert annex_e.rule_for(0x601E4000).tag == "60xx,4000"
    assert annex_e.rule_for(0x60200000 | 0x3000) is None  # beyond 601E
    assert annex_e.rule_for(0x60000022) is None  # Overlay Description is not listed
    assert annex_e.rule_for(0x50100020).tag == "50xx,xxxx"
    assert annex_e.rule_for(0x50200020) is None
    for odd in (0x00090010, 0x00191234, 0x7FE10010, 0x60013000, 0x50110020):
        assert annex_e.rule_for(odd).tag == "gggg,eeee"
        assert lookup(odd, "LO", None, frozenset({"rtn_safe_priv"})).action == "X"
    assert lookup(0x60023000, "OW").action == "X"
    assert lookup(0x60023000, "OW", options=frozenset({"clean_graph"})).action == "C"
    assert lookup(0x50100020).action == "X"


def test_compound_codes_resolved_by_iod_type() -> None:
    content_date = 0x00080023  # Z/D
    assert lookup(content_date, sop_class=MR).action == "Z"  # Type 2C in General Image
    assert lookup(content_date, sop_class=ENHANCED_MR).action == "D"  # Type 1
    assert lookup(content_date, sop_class=BASIC_TEXT_SR).action == "D"
    assert lookup(content_date).action == "D"  # strictest of the IODs we know
    serial = 0x00181000  # X/Z/D
    assert lookup(serial, sop_class=MR).action == "X"
    assert lookup(serial, sop_class=ENHANCED_MR).action == "D"  # Enhanced General Equipment, Type 1
    assert lookup(0x00081140, sop_class=ENHANCED_MR).action == "U"  # X/Z/U*
    assert lookup(0x00081140, sop_class=MR).action == "X"
    assert lookup(0x00082112, sop_class=ENHANCED_MR).action == "Z"
    assert lookup(0x00100020, sop_class=MR).action == "Z"  # Patient ID Z/D, Type 2
    assert lookup(0x00180010, sop_class=ENHANCED_MR).action == "Z"  # not in that IOD: Z/D can't be X
    assert lookup(0x00080021, sop_class=PET).action == "D"  # unknown IOD: the choice every IOD accepts
    assert lookup(0x00080021, sop_class=PET, required_type="3").action == "X"
    assert "Type 1 in Enhanced MR Image" in lookup(serial, sop_class=ENHANCED_MR).reason
    with pytest.raises(MrishareError):
        lookup(serial, required_type="4")


def test_option_precedence_most_protective_wins() -> None:
    calibration = 0x0014407E  # rtn_dev_id K, rtn_long_modif_dates C
    assert lookup(calibration, options=frozenset({"rtn_dev_id"})).action == "K"
    both = lookup(calibration, options=frozenset({"rtn_dev_id", "rtn_long_modif_dates"}))
    assert (both.action, "rtn_long_modif_dates" in both.reason) == ("C", True)
    assert lookup(calibration, options=frozenset({"rtn_dev_id", "rtn_long_full_dates"})).action == "K"
    assert lookup(0x00181002, options=frozenset({"rtn_uids", "rtn_dev_id"})).action == "K"


def test_unlisted_attributes_are_kept_and_flagged() -> None:
    assert lookup(0x00280010, "US") == annex_e.Decision("K", "", "not in E.1-1: keep", False)
    for tag, vr, kind in [
        (0x00080016, "UI", "UID"),
        (0x00420010, "ST", "free text"),  # Document Title
        (0x60000022, "LO", "free text"),  # Overlay Description
        (0x00140102, "DA", "date/time"),  # Secondary Review Date
        (0x0008041F, None, "date/time"),  # Study Update DateTime, VR from the dictionary
    ]:
        d = lookup(tag, vr)
        assert (d.action, d.code, d.review) == ("K", "", True) and kind in d.reason
    assert lookup(0x00080016).review  # VR from the dictionary
    assert lookup(0x00080016, "UN").review
    assert not lookup(0x00280010, "UN").review


def test_validate_options() -> None:
    assert annex_e.validate_options(["clean_desc", "rtn_uids"]) == frozenset({"clean_desc", "rtn_uids"})
    assert annex_e.validate_options("rtn_uids") == frozenset({"rtn_uids"})
    with pytest.raises(MrishareError, match="unknown Annex E option bogus"):
        annex_e.validate_options(["bogus"])
    with pytest.raises(MrishareError, match="exclude each other"):
        annex_e.validate_options(["rtn_long_full_dates", "rtn_long_modif_dates"])
    with pytest.raises(MrishareError):
        lookup(0x00100010, options=frozenset({"nope"}))


def test_action_meanings() -> None:
    assert annex_e.action_meaning("X").startswith("remove")
    assert "Type 3 versus Type 2" in annex_e.action_meaning("X/Z")
    assert annex_e.action_meaning("Q") == ""
