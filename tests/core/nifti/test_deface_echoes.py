"""Phase and multi-echo series take the magnitude's face mask; MP2RAGE UNI pairs with INV2 or is denoised."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from heads import HEADS

from tui.core.errors import MrishareError
from tui.core.events import drain
from tui.core.nifti.deface import apply_to_echoes, deface
from tui.core.nifti.deface_pairs import SeriesGeometry, denoise_uni, pair, plan
from tui.core.nifti.facecheck import face_check

pytestmark = pytest.mark.xdist_group("heads")

TE_MS = (4.0, 12.0, 20.0, 28.0)
PHASE_SLOPE, PHASE_INTER = 2 * np.pi / 4096, -np.pi  # Siemens-style: stored 0..4095 is -pi..pi


def _geometry(key: str, role_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M"), description: str = "",
              frame: str = "1.2.3", shift: float = 0.0) -> SeriesGeometry:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[0, 3] = shift
    return SeriesGeometry(key, frame, (96, 128, 128, 4), affine, role_type, description)


def test_phase_pairs_with_the_magnitude_on_its_grid_and_says_so() -> None:
    magnitude, phase = _geometry("3"), _geometry("4", ("ORIGINAL", "PRIMARY", "P"))
    other_frame = _geometry("5", frame="9.9")
    result = pair(phase, [other_frame, magnitude, phase])
    assert result.source is magnitude and "same FrameOfReferenceUID and grid" in result.rule
    assert pair(phase, [phase, other_frame]) is None  # no magnitude on its grid: withheld
    assert pair(phase, [phase, _geometry("6", shift=1.0)]) is None  # same frame of reference, moved grid
    assert pair(magnitude, [magnitude, phase]).source is magnitude


def test_uni_takes_inv2_when_it_is_there_else_a_denoised_uni() -> None:
    uni = _geometry("7", description="t1_mp2rage_sag_UNI_Images")
    inv2 = _geometry("6", description="t1_mp2rage_sag_INV2")
    inv1 = _geometry("5", description="t1_mp2rage_sag_INV1")
    with_inv2 = pair(uni, [inv1, inv2, uni])
    assert with_inv2.source is inv2 and with_inv2.rule.startswith("INV2 6") and not with_inv2.denoise
    alone = pair(uni, [inv1, uni])
    assert alone.source is uni and alone.denoise and "denoised UNI" in alone.rule


def test_later_echoes_take_the_first_and_the_plan_puts_mask_sources_first() -> None:
    echo2, echo1 = replace(_geometry("e2"), echo=2), replace(_geometry("e1"), echo=1)
    phase2 = replace(_geometry("p2", ("ORIGINAL", "PRIMARY", "M")), echo=2, part="phase")  # dcm2niix's _ph
    inv1 = _geometry("i1", description="t1_mp2rage_sag_INV1")
    inv2 = _geometry("i2", description="t1_mp2rage_sag_INV2")
    uni = _geometry("u", ("DERIVED", "PRIMARY", "M", "UNI", "ND"), frame="4.5.6")  # no INV2 on its grid
    lone_phase = _geometry("p9", ("ORIGINAL", "PRIMARY", "P"), frame="7.8.9")
    pairings, unpaired = plan([phase2, echo2, inv1, uni, echo1, inv2, lone_phase])
    sources = {p.target.key: p.source.key for p in pairings}
    assert sources == {"p2": "e1", "e2": "e1", "e1": "e1", "i1": "i2", "i2": "i2", "u": "u"}
    assert [p.target.key for p in pairings[:3]] == ["u", "e1", "i2"]  # each mask source before its partners
    assert next(p for p in pairings if p.target.key == "u").denoise
    assert [u.key for u in unpaired] == ["p9"]


def test_geometry_of_a_nifti_reads_only_its_header(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((20, 21, 22), np.int16), np.diag([2.0, 2.0, 3.0, 1.0])), tmp_path / "a.nii.gz")
    geometry = SeriesGeometry.of_nifti("a", tmp_path / "a.nii.gz", "1.2", ("ORIGINAL",), "x", 1, None)
    assert geometry.shape == (20, 21, 22) and geometry.affine[2, 2] == 3.0 and geometry.role == "magnitude"
    (tmp_path / "b.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(MrishareError, match="not a readable NIfTI"):
        SeriesGeometry.of_nifti("b", tmp_path / "b.nii.gz", "1.2")


def test_denoising_clears_a_uni_like_background_and_keeps_the_head(shared_data: Path) -> None:
    img = nib.load(shared_data / HEADS["siemens"])
    head = np.asanyarray(img.dataobj).astype(np.float32)
    level = 0.35 * np.percentile(head[head > np.percentile(head, 50)], 50)
    inside = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray((head > level).astype(np.uint8)))) > 0
    rng = np.random.default_rng(1)
    uni = np.where(inside, head, rng.uniform(0, head.max(), head.shape)).astype(np.int16)  # salt-and-pepper air
    clean = denoise_uni(uni, img.header.get_zooms()[:3])
    assert np.mean(clean[~inside] == 0) > 0.9
    assert np.mean(clean[inside] == uni[inside]) > 0.97


def _echoes(shared_data: Path, tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """A 4-echo magnitude and a 4-echo phase (stored 0..4095 with a -pi offset) made from the real Siemens head."""
    img = nib.load(shared_data / HEADS["siemens"])
    magnitude = np.asanyarray(img.dataobj).astype(np.float32)
    grid = np.indices(magnitude.shape).astype(np.float32)
    mags, phases = [], []
    for te in TE_MS:
        mags.append(magnitude * np.exp(-te / 40.0))
        field = 0.02 * grid[0] + 0.015 * grid[1] - 0.01 * grid[2] + 0.5 * np.sin(grid[2] / 9.0)  # rad per ms
        phase = np.angle(np.exp(1j * field * te / 4.0))
        phases.append(np.rint((phase - PHASE_INTER) / PHASE_SLOPE).clip(0, 4095))
    mag_img = nib.Nifti1Image(np.stack(mags, -1).astype(np.int16), img.affine)
    phase_img = nib.Nifti1Image(np.stack(phases, -1).astype(np.int16), img.affine)
    phase_img.header.set_slope_inter(PHASE_SLOPE, PHASE_INTER)
    nib.save(mag_img, tmp_path / "mag.nii.gz")
    nib.save(phase_img, tmp_path / "phase.nii.gz")
    return tmp_path / "mag.nii.gz", tmp_path / "phase.nii.gz", magnitude


@pytest.mark.slow
def test_every_echo_of_magnitude_and_phase_takes_the_magnitude_mask(shared_data: Path, tmp_path: Path) -> None:
    reference = drain(deface(shared_data / HEADS["siemens"], tmp_path / "first_echo.nii.gz", "deface"))
    mag_path, phase_path, _ = _echoes(shared_data, tmp_path)
    mag = drain(apply_to_echoes(reference, mag_path, tmp_path / "mag_d.nii.gz"))
    phase = drain(apply_to_echoes(reference, phase_path, tmp_path / "phase_d.nii.gz", phase=True))
    before_m, after_m = (np.asanyarray(nib.load(p).dataobj) for p in (mag_path, mag.output))
    before_p = np.asanyarray(nib.load(phase_path).dataobj.get_unscaled())
    after_img = nib.load(phase.output)
    after_p, after_real = np.asanyarray(after_img.dataobj.get_unscaled()), after_img.get_fdata()
    source = np.asanyarray(nib.load(shared_data / HEADS["siemens"]).dataobj)
    defaced_first = np.asanyarray(nib.load(reference.output).dataobj) != source  # where the reference changed
    for echo in range(len(TE_MS)):
        changed = after_m[..., echo] != before_m[..., echo]
        assert changed.sum() > 10_000 and not (changed & ~defaced_first & (before_m[..., echo] != 0)).any()
        zeroed = after_p[..., echo] != before_p[..., echo]
        region = np.abs(after_real[..., echo]) < 1e-3
        assert zeroed.sum() > 10_000 and region[zeroed].all()  # phase 0 (real value) where it changed...
        assert (zeroed | (before_p[..., echo] == after_p[..., echo])).all()
        assert region[defaced_first].all()  # ...and everywhere the magnitude was defaced
    assert np.allclose((after_img.dataobj.slope, after_img.dataobj.inter), (PHASE_SLOPE, PHASE_INTER))  # float32 header
    nib.save(nib.Nifti1Image(after_m[..., 0], nib.load(mag.output).affine), tmp_path / "echo1.nii.gz")
    assert face_check(tmp_path / "echo1.nii.gz", "deface").passed
