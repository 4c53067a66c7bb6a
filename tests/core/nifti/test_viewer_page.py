"""The viewer copy of a 1 mm head: coarser, same place in space, small; vendored files recognised exactly."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

from tui.core.nifti.preview import load_canonical
from tui.core.nifti.viewer_page import BUNDLE_DIR, _head_mask, is_vendored, viewer_volume

PHILIPS = "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/nifti/adni_sag3d_mprage_dicom2nifti.nii.gz"


def test_a_1mm_head_becomes_a_1_5mm_copy_in_the_same_place(shared_data: Path) -> None:
    nifti = shared_data / PHILIPS
    copy = viewer_volume(nifti)
    image = nib.Nifti1Image.from_bytes(gzip.decompress(copy))
    volume, zooms, affine = load_canonical(nifti)
    assert np.allclose(zooms, 1.0, atol=1e-4) and np.allclose(image.header.get_zooms(), 1.5, atol=0.02)
    far = np.array([*(n - 1 for n in volume.shape), 1])
    far_small = np.array([*(n - 1 for n in image.shape), 1])
    assert np.allclose(image.affine @ [0, 0, 0, 1], affine @ [0, 0, 0, 1])
    assert np.allclose(image.affine @ far_small, affine @ far, atol=1e-3)  # the same field of view
    assert len(copy) < 1.6e6  # 4.0 MB at 1 mm: the viewer's share of the zip stays under 30 %


def test_only_unchanged_vendored_files_count_as_vendored(tmp_path: Path) -> None:
    bundle = (BUNDLE_DIR / "niivue.umd.js").read_bytes()
    same, changed = tmp_path / "niivue.umd.js", tmp_path / "changed.js"
    same.write_bytes(bundle)
    changed.write_bytes(bundle[:-1] + b" ")
    assert is_vendored(same) and not is_vendored(changed)


def test_a_single_slice_keeps_its_one_slice_and_a_valid_affine(tmp_path: Path) -> None:
    """A 2D image (one thin sagittal slice, as a single-image series converts) is coarsened in-plane only."""
    rng = np.random.default_rng(3)
    image = nib.Nifti1Image(rng.normal(300, 80, (1, 256, 256)).astype(np.float32), np.diag([0.66, 0.66, 0.66, 1.0]))
    nib.save(image, tmp_path / "one.nii.gz")
    copy = nib.Nifti1Image.from_bytes(gzip.decompress(viewer_volume(tmp_path / "one.nii.gz")))
    assert copy.shape[0] == 1 and copy.shape[1] < 256
    assert abs(np.linalg.det(copy.affine[:3, :3])) > 0


def test_the_head_outline_is_the_one_scipys_morphology_gives(shared_data: Path) -> None:
    """The numpy opening/closing/hole filling pick exactly the voxels of scipy's, on noise and on a real head."""
    from scipy import ndimage

    def scipy_outline(mask: np.ndarray) -> np.ndarray:
        labels, count = ndimage.label(ndimage.binary_opening(mask))
        sizes = ndimage.sum_labels(labels > 0, labels, range(1, count + 1))
        return ndimage.binary_fill_holes(ndimage.binary_closing(labels == int(sizes.argmax()) + 1, iterations=2))

    rng = np.random.default_rng(20)
    for shape in ((20, 23, 17), (9, 31, 12)):
        for density in (0.5, 0.6):
            noise = rng.random(shape) < density
            assert np.array_equal(_head_mask(noise), scipy_outline(noise))
    siemens = shared_data / "head-mri/siemens_prisma_xa30_mprage_2mm/nifti"
    grey = load_canonical(siemens / "anat-T1w_acq-tfl_dicom2nifti.nii.gz")[0][::2, ::2, ::2]
    mask = grey > np.percentile(grey, 60)
    outline = _head_mask(mask)
    assert np.array_equal(outline, scipy_outline(mask)) and 0.3 < outline.mean() < 0.9
