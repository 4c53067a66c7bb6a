"""Defacing and refacing of anatomical head scans by registering an average head with a face.

The template (pydeface's `mean_reg2mean`, MIT) is registered rigid-then-affine to the scan with
SimpleITK (Mattes mutual information, multi-resolution, on ~3 mm copies). Its face mask (extended
over eyes and brows by scripts/build_deface_assets.py) and brain mask are warped into the scan.
`deface` fades the face to zero; `off` copies the file. `reface` gives the head a stranger's face:
the average face alone stays about as close to everyone as two different people are (a face
recogniser still matched 5 of 9 views to the participant), so the new skin surface is a caricature
of the template *away from* the participant. With signed distances to the skin of the participant
(P) and of the template placed by a similarity fit (rigid + one scale, so it keeps the template's
proportions, not the participant's), the new surface is T + CARICATURE * (T - P). It is blended
into the participant's surface in the distance domain with a wide feather, so no artificial edge
appears. Voxels inside the warped brain mask, and a margin around it, are never changed.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import threading
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.arrayproxy import ArrayProxy
from nibabel.filebasedimages import ImageFileError

from tui.assets import ASSETS
from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepFinished, StepProgress, StepStarted
from tui.core.nifti.head_render import surface_level, volume_image
from tui.core.presets import DEFACE_MODES as MODES

TEMPLATE = ASSETS / "pydeface" / "mean_reg2mean.nii.gz"
FACE_MASK = ASSETS / "deface" / "face_mask.nii.gz"
BRAIN_MASK = ASSETS / "deface" / "brain_mask.nii.gz"
HEAD_MASK = ASSETS / "deface" / "head_mask.nii.gz"

STEP = "deface"
REGISTRATION_MM = 3.0  # both images are resampled to this grid for registration (speed; faces are large)
FEATHER_MM = 2.0  # Gaussian sigma of the blend between the face and the untouched scan
BRAIN_MARGIN_MM = 2.0  # no change at all within this distance of the warped brain mask
BRAIN_RAMP_MM = 3.0  # ...then the face weight rises to full over this distance
# Sanity gates. Seen on the two test heads: head Dice 0.89-0.91, axis scales 0.89-1.01, face 1910-1980 ml.
MIN_HEAD_DICE = 0.85  # overlap of the warped template head with the scan's head
MAX_AXIS_SCALE = 1.35  # the affine may not stretch or shrink any axis more than this
MIN_FACE_ML, MAX_FACE_ML = 150.0, 3000.0  # the template's face mask is ~1700 ml
MIN_FACE_ANTERIOR_MM = 30.0  # face centroid in front of the brain centroid (RAS +y) by at least this
MIN_FACE_INFERIOR_MM = 0.0  # ...and below it (RAS -z)
# Reface, measured on the two shared heads (tests/bench/bench_deface.py --distances): with 1.0 and no
# growth the Siemens head kept one view at 0.59 and a median of 0.66 (< 0.67 between the two people);
# 1.5 with growth: medians 0.76 (Philips) and 0.67 (Siemens), every view >= 0.6. 2.0 (cap 20 mm)
# distorts the Philips face until the detector finds it in only 1 of 9 views.
CARICATURE = 1.5  # the new skin lies this many times the participant-to-template difference past the template
CARICATURE_CAP_MM = 15.0  # ...but never moves more than this from the template's skin
REFACE_GROW_MM = 10.0  # the face mask grows by this for reface (cheeks and jaw line carry identity too)
REFACE_FEATHER_MM = 6.0  # blend sigma of the reface: wide, because it moves the surface, not just intensities
SKIN_RAMP_MM = 3.0  # the synthetic skin rises from air to tissue over this distance across the new surface
PUSH_SMOOTH_MM = 2.0  # the push is smoothed (two skins a few mm apart give ridges); 4 mm cost Siemens 3 views < 0.6
# The demo head is the template itself (with noise and gain): refacing cannot make it a stranger, and its face is
# an average of many people, no one's. Correlation with the registered template over the face's tissue: demo T1
# 0.999; the real heads of ../shared/data 0.61 (Philips), 0.65 (Siemens), 0.56 (Philips field map, 3 mm); the
# template with its face warped into another (wider, longer lower face, nose 8 mm forward) 0.90.
TEMPLATE_ITSELF = 0.97


@dataclass(frozen=True)
class DefaceResult:
    """What one defacing run did: `metric` is the head overlap (Dice) behind the similarity gate,
    `checks` each gate's outcome; `transform` lets `apply_to_other` reuse the registration."""

    output: Path
    mode: str
    face_voxels: int
    brain_voxels_changed: int
    metric: float
    checks: dict[str, bool]
    transform: tuple[float, ...] = field(default=(), repr=False)  # ITK AffineTransform params + centre
    face_mask: Path = field(default=FACE_MASK, repr=False)
    template_likeness: float = math.nan
    """Correlation of the face region's voxels with the registered template's (see TEMPLATE_ITSELF)."""

    @property
    def is_template(self) -> bool:
        """The scan's face is the template's own average face (the demo head), not a person's."""
        return self.template_likeness >= TEMPLATE_ITSELF


@dataclass(frozen=True)
class _Scan:
    """A loaded scan: the NIfTI image, its raw (unscaled) voxels and a SimpleITK image of them."""

    nifti: nib.Nifti1Image
    raw: np.ndarray
    image: sitk.Image


def deface(nifti: Path, out: Path, mode: str = "reface", cancel: threading.Event | None = None,
           subject: str = "scan", face_mask: Path = FACE_MASK) -> EventStream[DefaceResult]:
    """Register the template to `nifti`, then reface/deface it into `out` (atomic); `off` copies.

    `face_mask` (template space, 1 = face) defaults to the extended mask built by
    scripts/build_deface_assets.py.
    """
    nifti, out = Path(nifti), Path(out)
    _check_mode(mode)
    if mode == "off":
        return (yield from _copy(nifti, out, subject))
    total = 5
    yield StepStarted(subject, STEP, total)
    scan = _load(nifti)
    yield StepProgress(subject, STEP, 1, total, "stages")
    transform = yield from _register(scan.image, nifti, cancel, subject, total)
    return (yield from _apply(scan, transform, face_mask, nifti, out, mode, cancel, subject, total, done=3))


def apply_to_other(reference: DefaceResult, other_nifti: Path, out: Path, cancel: threading.Event | None = None,
                   subject: str = "scan", mode: str | None = None) -> EventStream[DefaceResult]:
    """Deface another series of the same session with `reference`'s registration (same scanner space).

    The masks are resampled through both series' scanner-space affines; the gates run again on the
    other series (they catch a participant who moved a lot between series). `mode` defaults to the
    reference's.
    """
    other_nifti, out = Path(other_nifti), Path(out)
    mode = reference.mode if mode is None else mode
    _check_mode(mode)
    if mode == "off":
        return (yield from _copy(other_nifti, out, subject))
    if not reference.transform:
        raise MrishareError("the reference result carries no registration", other_nifti)
    total = 3
    yield StepStarted(subject, STEP, total)
    scan = _load(other_nifti)
    yield StepProgress(subject, STEP, 1, total, "stages")
    transform = _transform_from(reference.transform)
    return (yield from _apply(scan, transform, reference.face_mask, other_nifti, out, mode, cancel,
                              subject, total, done=1))


def _check_mode(mode: str) -> None:
    """Refuse unknown modes."""
    if mode not in MODES:
        raise MrishareError(f"unknown deface mode {mode!r} (use {', '.join(MODES)})")


def _copy(nifti: Path, out: Path, subject: str) -> EventStream[DefaceResult]:
    """Mode `off`: copy the file unchanged (atomically)."""
    yield StepStarted(subject, STEP, 1)
    tmp = _temp_name(out)
    try:
        shutil.copyfile(nifti, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    yield StepFinished(subject, STEP, "off: copied unchanged")
    return DefaceResult(out, "off", 0, 0, math.nan, {})


def _load(nifti: Path, echoes: bool = False) -> _Scan:
    """Read a 3D NIfTI (a trailing singleton dimension is dropped) without applying scl_slope.

    With `echoes`, a 4D NIfTI (x, y, z, echo) is accepted too; the SimpleITK image is its first volume.
    """
    try:
        img = nib.load(nifti)
    except (OSError, ValueError, EOFError, zlib.error, ImageFileError) as exc:
        raise MrishareError(f"not a readable NIfTI file ({type(exc).__name__})", nifti) from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise MrishareError("not a NIfTI image", nifti)
    raw = np.asanyarray(_proxy(img).get_unscaled())
    while raw.ndim > 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim not in ((3, 4) if echoes else (3,)) or min(raw.shape[:3]) < 16:
        raise MrishareError(f"defacing needs a 3D head volume, got shape {raw.shape}", nifti)
    if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
        raise MrishareError(f"unsupported voxel type {raw.dtype}", nifti)
    return _Scan(img, raw, volume_image(raw if raw.ndim == 3 else raw[..., 0], img.affine))


@lru_cache(maxsize=1)
def _template() -> sitk.Image:
    """The average head, float32, LPS (read once per process)."""
    return sitk.ReadImage(str(TEMPLATE), sitk.sitkFloat32)


@lru_cache(maxsize=3)
def _mask(path: Path) -> sitk.Image:
    """A template-space mask as float32 (for linear warping)."""
    return sitk.ReadImage(str(path), sitk.sitkFloat32)


def _coarse(image: sitk.Image) -> sitk.Image:
    """Smooth and resample `image` to REGISTRATION_MM isotropic voxels on its own axes."""
    spacing = np.array(image.GetSpacing())
    size = np.maximum(np.round(np.array(image.GetSize()) * spacing / REGISTRATION_MM), 8).astype(int)
    smooth = sitk.SmoothingRecursiveGaussian(image, REGISTRATION_MM / 2)
    return sitk.Resample(smooth, [int(s) for s in size], sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                         (REGISTRATION_MM,) * 3, image.GetDirection(), 0.0, sitk.sitkFloat32)


def _registration(transform: sitk.Transform, cancel: threading.Event | None) -> sitk.ImageRegistrationMethod:
    """Mattes MI, random 25% sampling (seeded: reproducible), two levels, physical-shift scales."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25, 42)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.01, numberOfIterations=200,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(transform, inPlace=True)
    if cancel is not None:
        reg.AddCommand(sitk.sitkIterationEvent, lambda: cancel.is_set() and reg.StopRegistration())
    return reg


def _register(scan: sitk.Image, where: Path, cancel: threading.Event | None, subject: str,
              total: int) -> EventStream[sitk.AffineTransform]:
    """Rigid then affine transform mapping scan points to template points."""
    fixed, moving = _coarse(scan), _coarse(_template())
    rigid = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                              sitk.CenteredTransformInitializerFilter.MOMENTS)
    _registration(rigid, cancel).Execute(fixed, moving)
    _raise_if_cancelled(cancel, where)
    yield StepProgress(subject, STEP, 2, total, "stages")
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    _registration(affine, cancel).Execute(fixed, moving)
    _raise_if_cancelled(cancel, where)
    yield StepProgress(subject, STEP, 3, total, "stages")
    return affine


def _raise_if_cancelled(cancel: threading.Event | None, where: Path) -> None:
    """Stop with a one-line reason when the operator cancelled."""
    if cancel is not None and cancel.is_set():
        raise MrishareError("defacing cancelled", where)


def _transform_params(transform: sitk.AffineTransform) -> tuple[float, ...]:
    """Matrix + translation (12 values) followed by the centre (3)."""
    return tuple(transform.GetParameters()) + tuple(transform.GetCenter())


def _transform_from(params: tuple[float, ...]) -> sitk.AffineTransform:
    """Inverse of `_transform_params`."""
    transform = sitk.AffineTransform(3)
    transform.SetCenter(params[12:15])
    transform.SetParameters(params[:12])
    return transform


def _warp(template_image: sitk.Image, scan: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    """`template_image` resampled (linear) onto the scan's grid, as a numpy array in NIfTI (i, j, k) order."""
    warped = sitk.Resample(template_image, scan, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(warped).T


def _as_image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    """A numpy (i, j, k) array on `like`'s grid."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.T.astype(np.float32)))
    image.CopyInformation(like)
    return image


def _face_weight(face: np.ndarray, brain: np.ndarray, like: sitk.Image, feather_mm: float = FEATHER_MM) -> np.ndarray:
    """Blend weight in [0, 1]: the feathered face, exactly 0 within BRAIN_MARGIN_MM of the brain."""
    soft = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(_as_image(face, like), feather_mm)).T
    distance = sitk.SignedMaurerDistanceMap(sitk.Cast(_as_image(brain, like), sitk.sitkUInt8),
                                            insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    ramp = np.clip((sitk.GetArrayFromImage(distance).T - BRAIN_MARGIN_MM) / BRAIN_RAMP_MM, 0.0, 1.0)
    weight = np.clip(soft, 0.0, 1.0) * ramp
    weight[weight < 1e-3] = 0.0
    return weight


def _head_dice(scan: sitk.Image, transform: sitk.Transform) -> float:
    """Overlap (Dice) of the scan's head with the warped template head, on the coarse grid."""
    fixed = _coarse(scan)
    ours = sitk.GetArrayFromImage(fixed) > surface_level(fixed)
    theirs = sitk.GetArrayFromImage(sitk.Resample(_mask(HEAD_MASK), fixed, transform, sitk.sitkLinear)) > 0.5
    return float(2 * (ours & theirs).sum() / max(ours.sum() + theirs.sum(), 1))


def _centroid_ras(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World (RAS mm) centroid of a boolean (i, j, k) mask."""
    return affine[:3, :3] @ np.argwhere(mask).mean(axis=0) + affine[:3, 3]


def _gates(scan: _Scan, transform: sitk.AffineTransform, face: np.ndarray, brain: np.ndarray) -> tuple[float, dict]:
    """The head-overlap metric and the pass/fail of each sanity gate."""
    dice = _head_dice(scan.image, transform)
    scales = np.linalg.svd(np.array(transform.GetMatrix()).reshape(3, 3), compute_uv=False)
    face_ml = face.sum() * abs(np.linalg.det(scan.nifti.affine[:3, :3])) / 1000
    checks = {
        "similarity": dice >= MIN_HEAD_DICE,
        "scale": bool(scales.max() <= MAX_AXIS_SCALE and scales.min() >= 1 / MAX_AXIS_SCALE),
        "face_volume": bool(MIN_FACE_ML <= face_ml <= MAX_FACE_ML),
        "face_position": False,
    }
    if face.any() and brain.any():
        offset = _centroid_ras(face, scan.nifti.affine) - _centroid_ras(brain, scan.nifti.affine)
        checks["face_position"] = bool(offset[1] >= MIN_FACE_ANTERIOR_MM and -offset[2] >= MIN_FACE_INFERIOR_MM)
    return dice, checks


GATE_REASONS = {
    "similarity": "template and head do not overlap well (head Dice {dice:.2f} < {limit})",
    "scale": "registration stretched the template implausibly",
    "face_volume": "warped face mask has an implausible volume (face outside the field of view?)",
    "face_position": "warped face mask is not in front of and below the brain",
}


def _apply(scan: _Scan, transform: sitk.AffineTransform, face_mask: Path, where: Path, out: Path, mode: str,
           cancel: threading.Event | None, subject: str, total: int, done: int) -> EventStream[DefaceResult]:
    """Warp masks (and template), check the gates, blend, write `out` atomically."""
    face = _warp(_mask(face_mask), scan.image, transform) > 0.5
    brain = _warp(_mask(BRAIN_MASK), scan.image, transform) > 0.0  # any partial brain voxel counts as brain
    metric, checks = _gates(scan, transform, face, brain)
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise MrishareError(GATE_REASONS[failed[0]].format(dice=metric, limit=MIN_HEAD_DICE), where)
    _raise_if_cancelled(cancel, where)
    new_raw, weight = _blend(scan, transform, face, brain, mode)
    yield StepProgress(subject, STEP, done + 1, total, "stages")
    changed_in_brain = int(np.count_nonzero(new_raw[brain] != scan.raw[brain]))
    if changed_in_brain:
        raise MrishareError(f"{changed_in_brain} brain voxels would change; refusing to write", where)
    _write_like(scan.nifti, new_raw, out)
    yield StepProgress(subject, STEP, total, total, "stages")
    yield StepFinished(subject, STEP, f"{mode}: {int((weight >= 0.5).sum())} face voxels, head Dice {metric:.2f}")
    return DefaceResult(out, mode, int((weight >= 0.5).sum()), changed_in_brain, metric, checks,
                        _transform_params(transform), face_mask, _template_likeness(scan, transform, face))


def _template_likeness(scan: _Scan, transform: sitk.Transform, face: np.ndarray) -> float:
    """Pearson correlation of the scan's voxels with the registered template head's, over the face mask where
    the template has tissue (air against skin would make every well-registered head look alike)."""
    warped = _warp(template_head(), scan.image, transform)
    if not face.any():
        return math.nan
    tissue = face & (warped > 0.5 * np.percentile(warped[face], 90))
    template, values = warped[tissue], scan.raw[tissue].astype(np.float64)
    if values.size < 2 or values.std() == 0 or template.std() == 0:
        return math.nan
    return float(np.corrcoef(values, template)[0, 1])


def _blend(scan: _Scan, transform: sitk.AffineTransform, face: np.ndarray, brain: np.ndarray,
           mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The new raw voxels and the blend weight: `reface` (a stranger's face), `deface` (faded to air) or
    `zero` (phase: exactly 0 in real units wherever the face mask reaches, never template intensities)."""
    if mode == "reface":
        weight = _face_weight(_grow(face, scan.image, REFACE_GROW_MM), brain, scan.image, REFACE_FEATHER_MM)
        touched = weight > 0
        replacement = _stranger(scan, _similarity(transform), weight, touched)
        weight = np.minimum(1.0, 3.0 * weight)  # the surface already fades in; full voxel blend from a third on
    else:
        weight = _face_weight(face, brain, scan.image)
        touched = weight > 0
        zero = 0.0
        if mode == "zero":  # the stored value whose real value is 0 (phase is often stored with an offset)
            slope, inter = _proxy(scan.nifti).slope, _proxy(scan.nifti).inter
            zero = -float(inter) / float(slope) if np.isfinite(slope) and slope else 0.0
            weight = touched.astype(np.float32)
        replacement = np.full(int(touched.sum()), zero, np.float32)
    values = scan.raw[touched].astype(np.float32)  # only the face region is computed (memory: 1 mm T1s)
    new_raw = scan.raw.copy()  # untouched voxels stay bit-identical
    new_raw[touched] = _to_dtype(values + weight[touched] * (replacement - values), scan.raw.dtype)
    return new_raw, weight


def apply_to_echoes(reference: DefaceResult, nifti: Path, out: Path, phase: bool = False,
                    cancel: threading.Event | None = None, subject: str = "scan") -> EventStream[DefaceResult]:
    """Deface every echo (3D or 4D NIfTI) of a magnitude or phase series with `reference`'s registration.

    `reference` is the defaced magnitude (first echo) of the same acquisition, paired by
    tui.core.nifti.deface_pairs. Magnitude echoes get the reference's mode; phase gets 0 inside the face
    mask. The geometry gates (scale, face volume and position) run on this grid; the head-overlap
    gate only on magnitude (phase has no head contrast).
    """
    nifti, out = Path(nifti), Path(out)
    if not reference.transform or reference.mode == "off":
        raise MrishareError("the reference result carries no registration", nifti)
    mode = "zero" if phase else reference.mode
    yield StepStarted(subject, STEP, 2)
    first = _load(nifti, echoes=True)
    raw = first.raw if first.raw.ndim == 4 else first.raw[..., None]
    transform = _transform_from(reference.transform)
    face = _warp(_mask(reference.face_mask), first.image, transform) > 0.5
    brain = _warp(_mask(BRAIN_MASK), first.image, transform) > 0.0
    metric, checks = _gates(_Scan(first.nifti, raw[..., 0], first.image), transform, face, brain)
    if phase:
        checks.pop("similarity")
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise MrishareError(GATE_REASONS[failed[0]].format(dice=metric, limit=MIN_HEAD_DICE), nifti)
    yield StepProgress(subject, STEP, 1, 2, "stages")
    new_raw = raw.copy()
    for echo in range(raw.shape[-1]):
        _raise_if_cancelled(cancel, nifti)
        volume = raw[..., echo]
        scan = _Scan(first.nifti, volume, volume_image(volume, first.nifti.affine))
        new_raw[..., echo], weight = _blend(scan, transform, face, brain, mode)
    if np.count_nonzero(new_raw[brain] != raw[brain]):
        raise MrishareError("brain voxels would change; refusing to write", nifti)
    _write_like(first.nifti, new_raw.reshape(first.nifti.shape), out)
    yield StepFinished(subject, STEP, f"{mode} on {raw.shape[-1]} echo(es): {int((weight >= 0.5).sum())} face voxels")
    return DefaceResult(out, "deface" if phase else reference.mode, int((weight >= 0.5).sum()), 0, metric, checks,
                        reference.transform, reference.face_mask)


@lru_cache(maxsize=1)
def template_head() -> sitk.Image:
    """The average head with its floating averaging artefacts (outside the head mask) set to air."""
    return sitk.Mask(_template(), sitk.Cast(_mask(HEAD_MASK), sitk.sitkUInt8))


def _similarity(transform: sitk.AffineTransform) -> sitk.AffineTransform:
    """The closest rotation times one isotropic scale (geometric mean of the axis scales), same centre/shift."""
    u, scales, vt = np.linalg.svd(np.array(transform.GetMatrix()).reshape(3, 3))
    similar = sitk.AffineTransform(3)
    similar.SetCenter(transform.GetCenter())
    similar.SetMatrix(((u @ vt) * float(np.prod(scales) ** (1 / 3))).flatten().tolist())
    similar.SetTranslation(transform.GetTranslation())
    return similar


def _grow(mask: np.ndarray, like: sitk.Image, mm: float) -> np.ndarray:
    """`mask` dilated by about `mm` (box kernel in voxels of `like`)."""
    radius = [max(1, round(mm / s)) for s in like.GetSpacing()]
    return sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.Cast(_as_image(mask, like), sitk.sitkUInt8), radius)).T > 0


def _skin_distance(array: np.ndarray, like: sitk.Image) -> np.ndarray:
    """Signed distance (mm, negative inside) to the skin surface as the face check's renderer sees it."""
    smooth = sitk.SmoothingRecursiveGaussian(_as_image(array, like), 1.5)
    inside = sitk.Cast(smooth > surface_level(sitk.Shrink(smooth, [2, 2, 2])), sitk.sitkUInt8)
    distance = sitk.SignedMaurerDistanceMap(inside, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return sitk.GetArrayFromImage(distance).T


def _stranger(scan: _Scan, placement: sitk.Transform, weight: np.ndarray, touched: np.ndarray) -> np.ndarray:
    """Replacement intensities for the `touched` voxels: the participant's head with a caricatured face.

    The skin surface becomes T + CARICATURE * (T - P) (signed distances of template and participant),
    faded into P with `weight`; below the new skin the participant's own tissue stays where it was
    deep inside, the template's intensity-matched tissue elsewhere.
    """
    template = _warp(template_head(), scan.image, placement)
    participant_full = _skin_distance(scan.raw.astype(np.float32), scan.image)
    template_full = _skin_distance(template, scan.image)
    push = np.clip(CARICATURE * (template_full - participant_full), -CARICATURE_CAP_MM, CARICATURE_CAP_MM)
    push = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(_as_image(push, scan.image), PUSH_SMOOTH_MM)).T
    participant_sd, template_sd = participant_full[touched], template_full[touched]
    stranger_sd = template_sd + push[touched]
    surface = participant_sd + weight[touched] * (stranger_sd - participant_sd)
    values = scan.raw[touched].astype(np.float32)
    matched = _match_intensity(template[touched], values)
    air = float(np.percentile(values, 2))
    tissue = float(np.median(values[values > np.percentile(values, 50)]))
    below_skin = np.where(participant_sd < -1.5, values, np.where(template_sd < -1.0, np.maximum(matched, tissue / 2),
                                                                  tissue))
    inside = np.clip(0.5 - surface / SKIN_RAMP_MM, 0.0, 1.0)
    return air + inside * (below_skin - air)


def _match_intensity(template: np.ndarray, scan: np.ndarray) -> np.ndarray:
    """Map template voxels linearly so that their air and median tissue match the scan's (same region)."""
    def air_and_tissue(values: np.ndarray) -> tuple[float, float]:
        level = surface_level(sitk.GetImageFromArray(values.astype(np.float32).reshape(1, 1, -1)))
        tissue = values[values > level]
        return float(np.percentile(values, 2)), float(np.median(tissue)) if tissue.size else level

    t_air, t_tissue = air_and_tissue(template)
    s_air, s_tissue = air_and_tissue(scan)
    gain = (s_tissue - s_air) / max(t_tissue - t_air, 1e-6)
    return s_air + (template - t_air) * gain


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip to an integer dtype's range; floats are cast."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def _temp_name(out: Path) -> Path:
    """A hidden sibling of `out` with the same NIfTI suffix (nibabel picks the format from it)."""
    suffix = ".nii.gz" if out.name.endswith(".nii.gz") else out.suffix
    return out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp{suffix}")


def _proxy(image: nib.Nifti1Image) -> ArrayProxy:
    """A loaded image's array proxy: its unscaled data and scl_slope/inter (nibabel types `dataobj` loosely)."""
    return cast(ArrayProxy, image.dataobj)


def _write_like(source: nib.Nifti1Image, raw: np.ndarray, out: Path) -> None:
    """Write `raw` (unscaled) with `source`'s header, dtype and scl_slope/inter, atomically."""
    image = type(source)(raw.reshape(source.shape), source.affine, source.header.copy())
    # nibabel moves scl_slope/inter from the header to the array proxy on load; putting them back
    # makes it store `raw` as is (it would otherwise compute a new scaling).
    image.header.set_slope_inter(float(_proxy(source).slope), float(_proxy(source).inter))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(out)
    try:
        image.to_filename(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
