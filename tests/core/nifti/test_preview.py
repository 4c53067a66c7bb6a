"""Preview PNGs: orientation (radiological, anterior/superior up), windowing, real heads."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from tui.core.nifti.preview import load_volume, make_previews, view_plane, window


def marked_volume(tmp_path: Path, flip_x: bool) -> Path:
    """A 40x50x30 RAS volume with one bright cube at the patient's right-anterior-superior corner.

    With `flip_x` the same anatomy is stored left-to-right (an LAS file), as many scanners write.
    """
    data = np.full((40, 50, 30), 10, dtype=np.int16)
    data[30:38, 40:48, 22:28] = 1000  # high x = right, high y = anterior, high z = superior
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    if flip_x:
        data = data[::-1]
        affine = np.diag([-1.0, 1.0, 1.0, 1.0])
        affine[0, 3] = 39
    path = tmp_path / f"marked_{flip_x}.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def bright_quadrant(plane: np.ndarray) -> tuple[str, str]:
    """('top'|'bottom', 'left'|'right') of the brightest pixels in a display plane."""
    rows, columns = np.nonzero(plane == plane.max())
    return ("top" if rows.mean() < plane.shape[0] / 2 else "bottom",
            "left" if columns.mean() < plane.shape[1] / 2 else "right")


def test_views_are_radiological_whatever_the_storage_order(tmp_path: Path) -> None:
    for flip in (False, True):
        volume, zooms = load_volume(marked_volume(tmp_path, flip))
        assert zooms == (1.0, 1.0, 1.0)
        # axial: anterior up, patient right on the viewer's left
        assert bright_quadrant(view_plane(volume, 2, 25)) == ("top", "left")
        # coronal: superior up, right on the left
        assert bright_quadrant(view_plane(volume, 1, 44)) == ("top", "left")
        # sagittal: superior up, anterior (nose) on the left
        assert bright_quadrant(view_plane(volume, 0, 34)) == ("top", "left")


def test_window_ignores_background_and_a_single_hot_voxel() -> None:
    volume = np.zeros((20, 20, 20), dtype=np.float32)
    volume[5:15, 5:15, 5:15] = np.linspace(100, 200, 1000).reshape(10, 10, 10)
    volume[0, 0, 0] = 1e6
    low, high = window(volume)
    assert 100 <= low < 110 and 190 < high <= 201


def test_previews_of_a_real_head(shared_data: Path, tmp_path: Path) -> None:
    nifti = next((shared_data / "head-mri/siemens_prisma_xa30_mprage_2mm/nifti").glob("*.nii.gz"))
    paths = make_previews(nifti, tmp_path / "previews")
    assert [p.name for p in paths] == ["anat-T1w_acq-tfl_dicom2nifti_views.png",
                                       "anat-T1w_acq-tfl_dicom2nifti_mosaic.png"]
    for path in paths:
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG" and image.mode == "L"
            assert 400 <= image.width <= 1400 and 200 <= image.height <= 1400
            assert set(image.info) <= {"dpi"}  # no text chunks
            pixels = np.asarray(image)
            assert pixels.std() > 20 and (pixels > 200).mean() > 0.01  # a picture, not a blank or a grey wash


def test_mosaic_spans_the_brain_and_previews_are_quick(shared_data: Path) -> None:
    import time

    from tui.core.nifti.preview import head_frame, mosaic, orthogonal_views

    nifti = shared_data / "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/nifti/adni_sag3d_mprage_dicom2nifti.nii.gz"
    volume, zooms = load_volume(nifti)
    started = time.perf_counter()
    frame = head_frame(volume, zooms)
    orthogonal_views(volume, zooms, frame), mosaic(volume, zooms, frame)
    elapsed = time.perf_counter() - started
    first, last = frame.bounds[2]
    # 1 mm axial slices: from the cerebellum (not the neck, which this field of view holds) to below the vertex
    assert 100 <= (last - first) * zooms[2] <= 130 and last < volume.shape[2] - 3
    head_rows = np.nonzero((volume > frame.low + 0.15 * (frame.high - frame.low)).any(axis=(0, 1)))[0]
    assert first - head_rows[0] > 40  # over 4 cm of neck and chin left out
    assert elapsed < 2.0  # 0.3 s here on a quiet machine (was 9 s: np.take copied the volume 27 times)
