"""Defacing: the brain never changes, the output keeps its header, the sanity gates stop bad input."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from heads import HEADS

from tui.assets import ASSETS
from tui.core.errors import MrishareError
from tui.core.events import StepFinished, drain
from tui.core.nifti.deface import (
    BRAIN_MASK,
    FACE_MASK,
    HEAD_MASK,
    DefaceResult,
    apply_to_other,
    deface,
)

# both files use the session fixture `processed_heads`: keep them on one xdist worker, so it runs once
pytestmark = pytest.mark.xdist_group("heads")

REPO = Path(__file__).resolve().parents[3]


def _raw(path: Path) -> np.ndarray:
    """Stored voxel values, without scl_slope."""
    return np.asanyarray(nib.load(path).dataobj.get_unscaled())


def _brain_in_scan(result: DefaceResult, scan: Path) -> np.ndarray:
    """The template brain mask resampled into `scan` with the result's transform (any partial voxel)."""
    img = nib.load(scan)
    lps = np.diag([-1.0, -1.0, 1.0]) @ img.affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    grid = sitk.Image([int(n) for n in img.shape[:3]], sitk.sitkUInt8)
    grid.SetSpacing(spacing.tolist())
    grid.SetDirection((lps / spacing).flatten().tolist())
    grid.SetOrigin((np.diag([-1.0, -1.0, 1.0]) @ img.affine[:3, 3]).tolist())
    transform = sitk.AffineTransform(3)
    transform.SetCenter(result.transform[12:15])
    transform.SetParameters(result.transform[:12])
    brain = sitk.Resample(sitk.ReadImage(str(BRAIN_MASK), sitk.sitkFloat32), grid, transform, sitk.sitkLinear, 0.0)
    return sitk.GetArrayFromImage(brain).T > 0



def test_unknown_mode_is_refused(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(MrishareError, match="unknown deface mode"):
        drain(deface(shared_data / HEADS["siemens"], tmp_path / "x.nii.gz", "blur"))


def test_off_copies_the_file_unchanged(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / HEADS["siemens"]
    events = []
    result = drain(deface(source, tmp_path / "out.nii.gz", "off"), events.append)
    assert result.mode == "off" and result.face_voxels == 0
    assert (tmp_path / "out.nii.gz").read_bytes() == source.read_bytes()
    assert isinstance(events[-1], StepFinished)
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]  # no temp file left


def test_a_4d_series_is_refused_with_its_shape(tmp_path: Path) -> None:
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 20, 5), np.int16), np.eye(4)), path)
    with pytest.raises(MrishareError, match=r"3D head volume.*\(32, 32, 20, 5\)"):
        drain(deface(path, tmp_path / "out.nii.gz", "deface"))
    assert not (tmp_path / "out.nii.gz").exists()


def test_face_mask_asset_lies_in_front_of_and_below_the_brain_without_touching_it() -> None:
    face_img, brain_img = nib.load(FACE_MASK), nib.load(BRAIN_MASK)
    face, brain = np.asanyarray(face_img.dataobj) > 0, np.asanyarray(brain_img.dataobj) > 0
    assert not (face & brain).any()
    ml = np.prod(brain_img.header.get_zooms()) / 1000
    assert 1100 < brain.sum() * ml < 1900  # an adult brain with brainstem and some CSF
    assert 1000 < face.sum() * ml < 2500
    centre = {n: face_img.affine[:3, :3] @ np.argwhere(m).mean(axis=0) for n, m in (("face", face), ("brain", brain))}
    anterior, superior = (centre["face"] - centre["brain"])[1:]
    assert anterior > 50 and superior < 0
    # The sweep reaches the brows: pydeface's box stops about 40 mm lower.
    pydeface = np.asanyarray(nib.load(ASSETS / "pydeface" / "facemask.nii.gz").dataobj) < 0.5
    assert np.argwhere(face)[:, 2].max() - np.argwhere(pydeface)[:, 2].max() >= 35
    assert np.asanyarray(nib.load(HEAD_MASK).dataobj).any()


@pytest.mark.slow
def test_assets_rebuild_identically(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_deface_assets", REPO / "scripts" / "build_deface_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for shipped in (FACE_MASK, BRAIN_MASK, HEAD_MASK):
        assert np.array_equal(_raw(tmp_path / shipped.name), _raw(shipped)), shipped.name


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reface", "deface"])
@pytest.mark.parametrize("head", sorted(HEADS))
def test_no_brain_voxel_changes_and_the_face_does(processed_heads, shared_data: Path, head: str, mode: str) -> None:
    result = processed_heads[(head, mode)]
    source = shared_data / HEADS[head]
    before, after = _raw(source), _raw(result.output)
    brain = _brain_in_scan(result, source)
    changed = before != after
    assert brain.sum() * np.prod(nib.load(source).header.get_zooms()) / 1000 > 1000  # the mask landed on the brain
    assert result.brain_voxels_changed == 0
    assert not (changed & brain).any()
    zooms_ml = np.prod(nib.load(source).header.get_zooms()) / 1000
    assert changed.sum() * zooms_ml > 300  # a face's worth of tissue changed...
    assert result.face_voxels * zooms_ml > 800
    affine = nib.load(source).affine
    offset = affine[:3, :3] @ (np.argwhere(changed).mean(axis=0) - np.argwhere(brain).mean(axis=0))
    assert offset[1] > 40 and offset[2] < 0  # ...in front of and below the brain
    assert result.checks == {"similarity": True, "scale": True, "face_volume": True, "face_position": True}
    assert result.metric >= 0.85
    assert result.template_likeness < 0.8 and not result.is_template  # a real face is never taken for the template


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reface", "deface"])
@pytest.mark.parametrize("head", sorted(HEADS))
def test_output_keeps_shape_affine_dtype_and_header(processed_heads, shared_data: Path, head: str, mode: str) -> None:
    source, output = nib.load(shared_data / HEADS[head]), nib.load(processed_heads[(head, mode)].output)
    assert output.shape == source.shape
    assert output.get_data_dtype() == source.get_data_dtype()
    assert np.array_equal(output.affine, source.affine)
    assert output.header.get_qform(coded=True)[1] == source.header.get_qform(coded=True)[1]
    assert output.header.get_sform(coded=True)[1] == source.header.get_sform(coded=True)[1]
    assert output.header.get_zooms() == source.header.get_zooms()


@pytest.mark.slow
def test_reface_blends_without_an_artificial_edge(processed_heads, shared_data: Path) -> None:
    source = shared_data / HEADS["philips"]
    before = _raw(source).astype(np.float32)
    after = _raw(processed_heads[("philips", "reface")].output).astype(np.float32)
    changed = before != after
    step = np.abs(np.diff(after, axis=1))  # along anterior-posterior, across the mask's back face
    border = changed[:, 1:, :] ^ changed[:, :-1, :]
    head = before[:, 1:, :] > np.percentile(before, 75)
    # At the border of the replaced region, steps are no larger than the head's ordinary texture.
    assert np.percentile(step[border], 99) <= np.percentile(np.abs(np.diff(before, axis=1))[head], 99)


@pytest.mark.slow
def test_scaled_int16_keeps_its_stored_values_and_scaling(processed_heads, shared_data: Path, tmp_path: Path) -> None:
    source = nib.load(shared_data / HEADS["siemens"])
    scaled = nib.Nifti1Image(np.asanyarray(source.dataobj).astype(np.int16), source.affine, source.header)
    scaled.header.set_data_dtype(np.int16)
    scaled.header.set_slope_inter(2.5, -3.0)
    nib.save(scaled, tmp_path / "scaled.nii.gz")
    result = drain(apply_to_other(processed_heads[("siemens", "reface")], tmp_path / "scaled.nii.gz",
                                  tmp_path / "out.nii.gz"))
    out = nib.load(result.output)
    assert out.get_data_dtype() == np.int16
    # nibabel keeps scl_slope/scl_inter on the array proxy of a loaded image
    assert (out.dataobj.slope, out.dataobj.inter) == (2.5, -3.0)
    before, after = _raw(tmp_path / "scaled.nii.gz"), _raw(result.output)
    assert np.array_equal(after[~(before != after)], before[~(before != after)])
    assert (before != after).sum() > 10_000
    assert not ((before != after) & _brain_in_scan(result, tmp_path / "scaled.nii.gz")).any()


@pytest.mark.slow
def test_a_series_far_from_the_registration_is_refused(processed_heads, shared_data: Path, tmp_path: Path) -> None:
    source = nib.load(shared_data / HEADS["siemens"])
    moved = source.affine.copy()
    moved[1, 3] += 150  # the participant's head 15 cm away from where the template was registered
    nib.save(nib.Nifti1Image(np.asanyarray(source.dataobj), moved, source.header), tmp_path / "moved.nii.gz")
    with pytest.raises(MrishareError, match=r"overlap|volume|in front"):
        drain(apply_to_other(processed_heads[("siemens", "deface")], tmp_path / "moved.nii.gz",
                             tmp_path / "out.nii.gz"))
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.slow
def test_a_volume_without_a_head_fails_a_gate(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(100, 30, (48, 48, 48)).astype(np.float32)
    nib.save(nib.Nifti1Image(noise, np.diag([4.0, 4.0, 4.0, 1.0])), tmp_path / "noise.nii.gz")
    with pytest.raises(MrishareError, match=r"overlap|stretched|volume|in front"):
        drain(deface(tmp_path / "noise.nii.gz", tmp_path / "out.nii.gz", "deface"))
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.slow
def test_cancel_stops_before_writing(shared_data: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(MrishareError, match="cancelled"):
        drain(deface(shared_data / HEADS["siemens"], tmp_path / "out.nii.gz", "reface", cancel))
    assert not list(tmp_path.iterdir())
