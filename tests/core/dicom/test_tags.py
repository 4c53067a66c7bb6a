"""Flattening real corpus files into inspection rows."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from tui.core.dicom.tags import flatten, mask

SYNTH_A = "files/synthetic/KANARIENVOGEL_ADELHEID_19230405"
IM0001 = f"{SYNTH_A}/01_t1_mprage_sag/IM0001"
ENHANCED = f"{SYNTH_A}/02_ep2d_diff_enhanced/MR_enhanced_10frames.dcm"
SR = f"{SYNTH_A}/05_report_sr/SR_basic_text.dcm"


def _by_path(rows):
    return {r.path: r for r in rows}


@pytest.fixture(scope="module")
def im0001(shared_data: Path) -> Dataset:
    return pydicom.dcmread(shared_data / "phi-corpus" / IM0001)


def test_done_when_actions_on_participant_a(im0001: Dataset) -> None:
    basic = _by_path(flatten(im0001))
    assert basic["(0010,0010)"].decision.action == "Z"
    assert basic["(0008,0020)"].decision.action == "Z"
    full_dates = _by_path(flatten(im0001, frozenset({"rtn_long_full_dates"})))
    assert full_dates["(0008,0020)"].decision.action == "K"
    assert "identifying" not in full_dates["(0008,0020)"].flags
    canary = [r for r in basic.values() if r.private_creator == "CANARY CORP 1.0"]
    assert len(canary) == 8 and all(r.decision.action == "X" for r in canary)
    safe = _by_path(flatten(im0001, frozenset({"rtn_safe_priv"})))
    for path in ("(0019,100C)", "(0019,100D)", "(0019,100E)"):
        assert basic[path].decision.action == "X"
        assert (safe[path].decision.action, safe[path].private_creator) == ("C", "SIEMENS MR HEADER")
    assert safe["(0019,0010)"].decision.action == "K"  # the creator stays with its safe block
    assert all(r.decision.action == "X" for r in safe.values() if r.private_creator == "CANARY CORP 1.0")


def test_paths_nesting_and_private_names(im0001: Dataset) -> None:
    rows = _by_path(flatten(im0001))
    acc = rows["(0040,0275)[0](0008,0050)"]
    assert (acc.keyword_path, acc.keyword, acc.depth, acc.decision.action) == (
        "RequestAttributesSequence[0].AccessionNumber", "AccessionNumber", 1, "Z")
    nested = rows["(0009,1003)[0](0011,1001)"]
    assert nested.keyword_path == "[CANARY CORP 1.0]03[0].[CANARY CORP 1.0]01"
    assert (nested.private_creator, nested.keyword, nested.depth) == ("CANARY CORP 1.0", "", 1)
    assert {"private", "free_text", "identifying"} <= nested.flags
    assert rows["(0009,1003)"].flags >= {"private", "sequence"} and rows["(0009,1003)"].value == "<1 items>"
    assert rows["(0009,1010)"].value == "<188 bytes>"
    assert rows["(0002,0010)"].depth == 0 and "(0002,0010)" not in _by_path(flatten(im0001, include_meta=False))
    assert rows["(6000,0022)"].decision.review and "review" in rows["(6000,0022)"].flags
    assert rows["(6000,3000)"].decision.action == "X"
    assert rows["(0008,0020)"].flags == frozenset({"date", "identifying"})
    assert rows["(0020,000D)"].flags == frozenset({"uid", "identifying"})
    assert rows["(0028,0010)"].flags == frozenset()


@pytest.mark.parametrize("relpath", [IM0001, ENHANCED, SR])
def test_every_manifest_element_is_flagged_identifying(shared_data: Path, relpath: str) -> None:
    corpus = shared_data / "phi-corpus"
    with open(corpus / "MANIFEST.csv", newline="", encoding="utf-8") as f:
        wanted = [r for r in csv.DictReader(f) if r["file"] == relpath and " " not in r["tag_path"]]
    rows = _by_path(flatten(pydicom.dcmread(corpus / relpath)))
    assert len(wanted) > 40
    for entry in wanted:
        row = rows[entry["tag_path"]]
        assert "identifying" in row.flags, entry["tag_path"]
        if not row.keyword_path.startswith("("):
            assert row.keyword_path == entry["keyword_path"]


def test_functional_groups_are_walked(shared_data: Path) -> None:
    rows = flatten(pydicom.dcmread(shared_data / "phi-corpus" / ENHANCED))
    deep = [r for r in rows if r.path.startswith("(5200,9230)") and r.depth == 2]
    assert deep and any(r.flags & {"date"} for r in deep)


def test_values_are_plain_bounded_text(tmp_path: Path) -> None:
    ds = Dataset()
    ds.PatientName = "[/bold]Evil[red]x"
    ds.StudyDescription = "line1\nline2\x1b[31m"
    ds.ImageComments = "y" * 300
    ds.PixelSpacing = [0.5, 0.75]
    ds.OtherPatientIDsSequence = Sequence([Dataset(), Dataset()])
    ds.add_new(0x00291010, "OB", b"\x00" * 33)
    ds.add_new(0x00290010, "LO", "ACME 1.0")
    ds.file_meta = FileMetaDataset()
    rows = _by_path(flatten(ds))
    assert rows["(0010,0010)"].value == "[/bold]Evil[red]x"
    assert rows["(0008,1030)"].value == "line1\\nline2\\x1b[31m"
    assert len(rows["(0020,4000)"].value) == 120 and rows["(0020,4000)"].value.endswith("…")
    assert rows["(0028,0030)"].value == "0.5\\0.75"
    assert rows["(0010,1002)"].value == "<2 items>"
    assert rows["(0029,1010)"].value == "<33 bytes>" and rows["(0029,1010)"].keyword_path == "[ACME 1.0]10"


def test_mask() -> None:
    assert mask("PID-CANARY-4711") == "••••• (15 chars)"
    assert mask("") == ""
    assert mask("<188 bytes>") == "<188 bytes>"
    assert mask("1.2.840.10008.5.1.4.1.1.4") == "1.2.840.10008.5.1.4.1.1.4"
    assert mask("1.2.826.0.1.3680043.8.498.19230405") == "••••• (34 chars)"
