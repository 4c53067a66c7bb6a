"""Tag editing: edits land in a copy with new SOP Instance UIDs; the originals never change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest

from tui.core.demo import make_demo_study
from tui.core.dicom.tag_edit import (
    Edit,
    apply_edits,
    parent_of,
    parse_tag,
    required,
    required_by_iod,
    save_edited_copy,
)
from tui.core.errors import MrishareError
from tui.core.events import drain

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


# -- nested elements (secureDICOM): add, edit and delete at any depth, on real files -------------------------

XA30 = "head-mri/siemens_prisma_xa30_mprage_2mm/dicom"  # enhanced MR: functional groups three levels deep
ORIENT = "realworld/siemens_orientation_2slice/sag/sagdesc36"  # classic MR: a ReferencedImageSequence


def test_nested_edit_delete_and_add_in_a_real_enhanced_image(shared_data: Path) -> None:
    from tui.core.dicom.tags import flatten

    ds = pydicom.dcmread(min((shared_data / XA30).iterdir()), stop_before_pixels=True)
    frame40 = "(5200,9230)[39](0028,9132)[0]"  # PerFrameFunctionalGroups[39].FrameVOILUT[0]
    reference = "(5200,9229)[0](0008,1140)[1]"  # SharedFunctionalGroups[0].ReferencedImage[1]
    before = ds.PerFrameFunctionalGroupsSequence[38].FrameVOILUTSequence[0].WindowCenter
    apply_edits(ds, [Edit(parse_tag("WindowCenter"), "600", parent=frame40),
                     Edit(parse_tag("ReferencedSOPInstanceUID"), None, parent=reference),
                     Edit(parse_tag("ReferencedFrameNumber"), "7", parent=reference)])
    assert ds.PerFrameFunctionalGroupsSequence[39].FrameVOILUTSequence[0].WindowCenter == 600
    assert ds.PerFrameFunctionalGroupsSequence[38].FrameVOILUTSequence[0].WindowCenter == before
    item = ds.SharedFunctionalGroupsSequence[0].ReferencedImageSequence[1]
    assert "ReferencedSOPInstanceUID" not in item and item.ReferencedFrameNumber == 7
    assert "ReferencedSOPInstanceUID" in ds.SharedFunctionalGroupsSequence[0].ReferencedImageSequence[0]
    paths = {row.path for row in flatten(ds)}
    assert Edit(parse_tag("WindowCenter"), "600", parent=frame40).path in paths  # the inspector's own paths
    assert parent_of(f"{reference}(0008,1160)") == reference


def test_nested_warnings_follow_the_item_macro_not_the_iod() -> None:
    uid = parse_tag("ReferencedSOPInstanceUID")
    assert required(uid, MR, "(0008,1140)[0]") == "Type 1 in the SOP Instance Reference Macro (PS3.3 Table 10-11)"
    assert required(parse_tag("PatientID"), MR) == "Type 2 in MR Image"
    assert required(parse_tag("PatientID"), MR, "(0040,0275)[0]") is None
    assert required(parse_tag("CodeMeaning"), MR, "(0008,1032)[0]").startswith("Type 1 in the Basic Code")


def test_nested_edit_saved_as_copies_with_new_uids(shared_data: Path, tmp_path: Path) -> None:
    files = sorted((shared_data / ORIENT).iterdir())
    digests = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    edits = [Edit(parse_tag("ReferencedSOPInstanceUID"), "1.2.3.4", parent="(0008,1140)[0]"),
             Edit(parse_tag("ReferencedSOPClassUID"), None, parent="(0008,1140)[0]")]
    written = drain(save_edited_copy(files, edits, tmp_path / "copy"))
    for source, copy in zip(files, written, strict=True):
        original, edited = pydicom.dcmread(source), pydicom.dcmread(copy)
        assert edited.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.2.3.4"
        assert "ReferencedSOPClassUID" not in edited.ReferencedImageSequence[0]
        assert edited.SOPInstanceUID != original.SOPInstanceUID
        assert edited.file_meta.MediaStorageSOPInstanceUID == edited.SOPInstanceUID
        assert edited.PixelData == original.PixelData
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == digests


def test_nested_edit_of_a_missing_item_or_a_sequence_is_a_clear_error(shared_data: Path, tmp_path: Path) -> None:
    source = min((shared_data / ORIENT).iterdir())
    with pytest.raises(MrishareError) as missing:
        drain(save_edited_copy([source], [Edit(parse_tag("PatientID"), "x", parent="(0008,1140)[9]")], tmp_path))
    assert str(missing.value) == f"{source}: this file has no item (0008,1140)[9]"
    ds = pydicom.dcmread(source)
    with pytest.raises(MrishareError, match="not an item path"):
        apply_edits(ds, [Edit(parse_tag("PatientID"), "x", parent="(0008,1140)")])
    with pytest.raises(MrishareError, match="edit the elements inside it"):
        apply_edits(ds, [Edit(parse_tag("ReferencedImageSequence"), "x")])
    apply_edits(ds, [Edit(parse_tag("ReferencedImageSequence"), None)])  # a whole sequence can go
    assert "ReferencedImageSequence" not in ds
