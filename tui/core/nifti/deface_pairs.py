"""Which series gives the face mask for which: QSM magnitude/phase echoes and MP2RAGE (issue 13).

A phase image has no head contrast to register on, and MP2RAGE UNI images have a noisy background:
their face mask comes from another series of the same acquisition. Series pair when they share the
FrameOfReferenceUID and the voxel grid (shape and affine); the pairing says which rule matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from tui.core.errors import MrishareError

GRID_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class SeriesGeometry:
    """What pairing needs to know of a converted series."""

    key: str
    frame_of_reference: str
    shape: tuple[int, ...]
    affine: np.ndarray
    image_type: tuple[str, ...] = ()
    description: str = ""
    echo: int | None = None
    part: str | None = None

    @classmethod
    def of_nifti(cls, key: str, nifti: Path, frame_of_reference: str, image_type: tuple[str, ...] = (),
                 description: str = "", echo: int | None = None, part: str | None = None) -> SeriesGeometry:
        """The geometry of a NIfTI file (its header only) with the facts conversion recorded."""
        try:
            image = cast(nib.Nifti1Image, nib.load(nifti))
        except (OSError, ValueError, ImageFileError) as exc:
            raise MrishareError(f"not a readable NIfTI file ({type(exc).__name__})", nifti) from None
        return cls(key, frame_of_reference, tuple(image.shape), image.affine, tuple(image_type), description,
                   echo, part)

    @property
    def role(self) -> str:
        """`phase`, `inv1`, `inv2`, `uni` or `magnitude` (converter's part, ImageType, then the description)."""
        kinds = {value.upper() for value in self.image_type}
        text = self.description.upper().replace("-", "_")
        if self.part == "phase" or kinds & {"P", "PHASE"}:
            return "phase"
        if "UNI" in kinds:  # Siemens marks the MP2RAGE UNI image in ImageType; INV1/INV2 only by name
            return "uni"
        for role in ("INV1", "INV2", "UNI"):
            if role in text:
                return role.lower()
        return "magnitude"


@dataclass(frozen=True)
class Pairing:
    """Deface `target` with the registration of `source` (the same series when `source is target`)."""

    target: SeriesGeometry
    source: SeriesGeometry
    rule: str
    denoise: bool = False


def same_grid(a: SeriesGeometry, b: SeriesGeometry) -> bool:
    """Same FrameOfReferenceUID, the same 3D shape and affines within GRID_TOLERANCE_MM."""
    return bool(a.frame_of_reference and a.frame_of_reference == b.frame_of_reference
                and tuple(a.shape[:3]) == tuple(b.shape[:3])
                and np.allclose(a.affine, b.affine, atol=GRID_TOLERANCE_MM))


def _echo(series: SeriesGeometry) -> int:
    """Echo number for ordering (a series without one counts as the first echo)."""
    return series.echo or 1


def pair(target: SeriesGeometry, study: list[SeriesGeometry]) -> Pairing | None:
    """The mask source for `target` among `study`; None for a phase series with no magnitude on its grid
    (it must then be withheld: a phase image cannot be defaced by its own intensity).

    Phase and later magnitude echoes take the first magnitude echo on their grid; UNI and INV1 take INV2.
    """
    others = sorted((s for s in study if s.key != target.key and same_grid(s, target)), key=_echo)
    magnitude = next((s for s in others if s.role == "magnitude"), None)
    if target.role == "phase":
        return None if magnitude is None else Pairing(target, magnitude, f"magnitude {magnitude.key}: same "
                                                      "FrameOfReferenceUID and grid")
    if target.role == "magnitude" and magnitude is not None and _echo(magnitude) < _echo(target):
        return Pairing(target, magnitude, f"first echo {magnitude.key}: same FrameOfReferenceUID and grid")
    if target.role in ("uni", "inv1"):
        source = next((s for s in others if s.role == "inv2"), None)
        if source is not None:
            return Pairing(target, source, f"INV2 {source.key}: same FrameOfReferenceUID and grid")
        if target.role == "uni":
            return Pairing(target, target, "no INV2 on the same grid: denoised UNI", denoise=True)
    return Pairing(target, target, "own registration")


def plan(study: list[SeriesGeometry]) -> tuple[list[Pairing], list[SeriesGeometry]]:
    """Every series of `study` paired, the ones that give a mask first; and the phase series with no
    magnitude on their grid (to be withheld)."""
    pairings, unpaired = [], []
    for target in study:
        found = pair(target, study)
        if found is None:
            unpaired.append(target)
        else:
            pairings.append(found)
    return sorted(pairings, key=lambda p: p.source is not p.target), unpaired


def denoise_uni(uni: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """UNI with its salt-and-pepper background set to 0: the head is where the local spread is small.

    Background voxels of a UNI image take random values over the whole range; tissue changes slowly.
    The local standard deviation (about 3 mm) splits them by Otsu; the largest connected part, holes
    filled and grown back over the skin, is kept.
    """
    import SimpleITK as sitk  # only when an MP2RAGE without INV2 is defaced

    image = sitk.GetImageFromArray(np.ascontiguousarray(uni.T.astype(np.float32)))
    image.SetSpacing([float(s) for s in spacing])
    radius = [max(1, round(1.5 / s)) for s in spacing]
    mean = sitk.Mean(image, radius)
    spread = sitk.Sqrt(sitk.Maximum(sitk.Mean(image * image, radius) - mean * mean, 0.0))
    spread = sitk.SmoothingRecursiveGaussian(spread, 2.0)
    calm = sitk.OtsuThreshold(spread, 1, 0)  # 1 below the threshold: calm tissue
    head = sitk.RelabelComponent(sitk.ConnectedComponent(calm), sortByObjectSize=True) == 1
    head = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(head, radius))
    head = sitk.BinaryDilate(head, [2 * r for r in radius])  # the spread is high on the skin itself: take it back
    return np.where(sitk.GetArrayFromImage(head).T > 0, uni, 0).astype(uni.dtype)


def write_denoised(uni: Path, out: Path) -> Path:
    """`uni` with its background cleared (denoise_uni) written to `out`, to register the template on."""
    image = cast(nib.Nifti1Image, nib.load(uni))
    voxels = np.asanyarray(image.dataobj).reshape(image.shape[:3])
    nib.save(nib.Nifti1Image(denoise_uni(voxels, image.header.get_zooms()[:3]), image.affine), out)
    return out
