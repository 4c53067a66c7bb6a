"""Tag editing: edits land in a copy with new SOP Instance UIDs; the originals never change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest

from tui.core.demo import make_demo_study
from tui.core.errors import MrishareError
from tui.core.events import drain
from tui.core.tag_edit import Edit, apply_edits, parse_tag, required_by_iod, save_edited_copy

MR = "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The demo localizer (3 files)."""
    out = tmp_path_factory.mktemp("demo")
    drain(make_demo_study(out, participants=1))
    return sorted(out.rglob("01_localizer/*.dcm"))


def test_parse_tag_accepts_numbers_and_keywords() -> None:
    assert parse_tag("(0010,0010)") == parse_tag("0010,0010") == parse_tag("00100010") == parse_tag("PatientName")
    with pytest.raises(MrishareError):
        parse_tag("NoSuchKeyword")


def test_required_by_iod_uses_the_mr_image_types() -> None:
    assert required_by_iod(parse_tag("PatientID"), MR) == "Type 2 in MR Image"
    assert required_by_iod(parse_tag("StudyDescription"), MR) is None
    assert required_by_iod(parse_tag("PatientID"), "1.2.3.4") is None


def test_apply_edits_sets_adds_deletes_and_converts_numbers(series: list[Path]) -> None:
    ds = pydicom.dcmread(series[0])
    apply_edits(ds, [Edit(parse_tag("PatientName"), "Anon^A"), Edit(parse_tag("StudyDescription"), None),
                     Edit(parse_tag("PatientComments"), "[/bold] literal"), Edit(parse_tag("Rows"), "128")])
    assert str(ds.PatientName) == "Anon^A" and "StudyDescription" not in ds
    assert ds.PatientComments == "[/bold] literal" and ds.Rows == 128
    with pytest.raises(MrishareError):
        apply_edits(ds, [Edit(parse_tag("Rows"), "many")])


def test_save_edited_copy_new_uids_and_originals_untouched(series: list[Path], tmp_path: Path) -> None:
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in series}
    written = drain(save_edited_copy(series, [Edit(parse_tag("PatientName"), "Anon^A")], tmp_path / "copy"))
    assert [p.name for p in written] == [p.name for p in series]
    for source, copy in zip(series, written, strict=True):
        old, new = pydicom.dcmread(source), pydicom.dcmread(copy)
        assert str(new.PatientName) == "Anon^A" and new.SOPInstanceUID != old.SOPInstanceUID
        assert new.file_meta.MediaStorageSOPInstanceUID == new.SOPInstanceUID
        assert new.SeriesInstanceUID == old.SeriesInstanceUID
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in series}
    with pytest.raises(MrishareError, match="already exist"):
        drain(save_edited_copy(series, [], tmp_path / "copy"))
    with pytest.raises(MrishareError, match="must not replace"):
        drain(save_edited_copy(series, [], series[0].parent))
