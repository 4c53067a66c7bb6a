"""Defaced voxels go back into the DICOM pixel data: same geometry, new instance UIDs, marked as defaced."""

from __future__ import annotations

from pathlib import Path

import dicom2nifti
import nibabel as nib
import numpy as np
import pydicom
import pytest
from heads import HEADS

from tui.core.errors import MrishareError
from tui.core.events import drain
from tui.core.nifti.conversion import SeriesInput
from tui.core.nifti.dicom_deface import (
    CLEAN_VISUAL_FEATURES,
    deface_dicom,
    deface_for_release,
)
from tui.core.nifti.facecheck import face_check

pytestmark = pytest.mark.xdist_group("heads")


def _dicom(shared_data: Path, head: str) -> list[Path]:
    return sorted((shared_data / HEADS[head]).parent.parent.glob("dicom/*.dcm"))


def _back_to_nifti(folder: Path, out: Path) -> np.ndarray:
    """Convert the written DICOM again, as the shared NIfTI was made (dicom2nifti, reoriented)."""
    dicom2nifti.dicom_series_to_nifti(str(folder), str(out), reorient_nifti=True)
    return np.asanyarray(nib.load(out).dataobj)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["siemens", "philips"])  # enhanced multi-frame, classic slices
def test_changed_voxels_land_in_the_right_pixels_and_files_are_marked(shared_data: Path, head: str,
                                                                      tmp_path: Path) -> None:
    source = nib.load(shared_data / HEADS[head])
    data = np.asanyarray(source.dataobj).copy()
    corner = (slice(0, data.shape[0] // 3), slice(0, data.shape[1] // 4), slice(data.shape[2] // 2, None))
    data[corner] = 0  # an asymmetric block: a flipped or shifted axis would put it elsewhere
    nib.save(nib.Nifti1Image(data, source.affine, source.header), tmp_path / "edited.nii.gz")
    files = _dicom(shared_data, head)
    result = deface_dicom(files, shared_data / HEADS[head], tmp_path / "edited.nii.gz", tmp_path / "dicom", "deface")
    assert result.pixels_changed == np.count_nonzero(np.asanyarray(source.dataobj)[corner])
    back = _back_to_nifti(tmp_path / "dicom", tmp_path / "back.nii.gz")
    assert np.array_equal(back.astype(np.float64), data.astype(np.float64))
    for original, written in zip(files, result.files, strict=True):
        before, after = pydicom.dcmread(original), pydicom.dcmread(written)
        assert after.SOPInstanceUID != before.SOPInstanceUID
        assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
        assert after.SeriesInstanceUID == before.SeriesInstanceUID
        assert after.BurnedInAnnotation == "NO" and "face removed" in after.DerivationDescription
        assert CLEAN_VISUAL_FEATURES[0] in [c.CodeValue for c in after.DeidentificationMethodCodeSequence]
    assert len({pydicom.dcmread(f).SOPInstanceUID for f in result.files}) == len(files)


def test_a_nifti_off_the_frames_grid_is_refused(shared_data: Path, tmp_path: Path) -> None:
    source = nib.load(shared_data / HEADS["siemens"])
    shifted = source.affine.copy()
    shifted[0, 3] += 0.5 * source.header.get_zooms()[0]  # half a voxel: pixel centres miss voxel centres
    nib.save(nib.Nifti1Image(np.asanyarray(source.dataobj), shifted, source.header), tmp_path / "shifted.nii.gz")
    with pytest.raises(MrishareError, match="voxel grid"):
        deface_dicom(_dicom(shared_data, "siemens"), tmp_path / "shifted.nii.gz", tmp_path / "shifted.nii.gz",
                     tmp_path / "out", "deface")
    assert not (tmp_path / "out").exists()


def test_a_nifti_of_other_pixels_is_refused(shared_data: Path, tmp_path: Path) -> None:
    source = nib.load(shared_data / HEADS["siemens"])
    flipped = np.ascontiguousarray(np.asanyarray(source.dataobj)[::-1])  # same grid, mirrored content
    nib.save(nib.Nifti1Image(flipped, source.affine, source.header), tmp_path / "flipped.nii.gz")
    with pytest.raises(MrishareError, match="does not match the DICOM pixels"):
        deface_dicom(_dicom(shared_data, "siemens"), tmp_path / "flipped.nii.gz", tmp_path / "flipped.nii.gz",
                     tmp_path / "out", "deface")


@pytest.mark.slow
@pytest.mark.parametrize("head", ["siemens", "philips"])
def test_defaced_dicom_converts_back_to_a_head_without_a_face(processed_heads, shared_data: Path, head: str,
                                                              tmp_path: Path) -> None:
    defaced = processed_heads[(head, "deface")].output
    deface_dicom(_dicom(shared_data, head), shared_data / HEADS[head], defaced, tmp_path / "dicom", "deface")
    _back_to_nifti(tmp_path / "dicom", tmp_path / "back.nii.gz")
    assert face_check(shared_data / HEADS[head], "deface").faces_found > 0  # the source has a face...
    check = face_check(tmp_path / "back.nii.gz", "deface")
    assert check.faces_found == 0 and check.passed  # ...the DICOM that leaves has none


@pytest.mark.slow
def test_an_anatomical_series_leaves_only_defaced(shared_data: Path, tmp_path: Path) -> None:
    """Convert, deface, write back, convert back, check: what the pipeline sends instead of the series."""
    files = _dicom(shared_data, "siemens")
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    series = SeriesInput("5", files, ds.SeriesDescription, "MR", "\\".join(ds.ImageType), {ds.SOPClassUID})
    written = drain(deface_for_release(series, "deface", tmp_path / "work", frozenset({"T1w"})))
    assert written is not None and written.pixels_changed > 10_000
    assert [p.parent for p in written.files] == [tmp_path / "work" / "dicom"]
    assert drain(deface_for_release(series, "deface", tmp_path / "other", frozenset({"FLAIR"}))) is None
