"""Which series gives the face mask for which: QSM magnitude/phase echoes and MP2RAGE (issue 13).

A phase image has no head contrast to register on, and MP2RAGE UNI images have a noisy background:
their face mask comes from another series of the same acquisition. Series pair when they share the
FrameOfReferenceUID and the voxel grid (shape and affine); the pairing says which rule matched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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

    @property
    def role(self) -> str:
        """`phase`, `inv1`, `inv2`, `uni` or `magnitude` (ImageType first, then the description)."""
        kinds = {value.upper() for value in self.image_type}
        text = self.description.upper().replace("-", "_")
        if kinds & {"P", "PHASE"}:
            return "phase"
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


def pair(target: SeriesGeometry, study: list[SeriesGeometry]) -> Pairing | None:
    """The mask source for `target` among `study`; None for a phase series with no magnitude on its grid
    (it must then be withheld: a phase image cannot be defaced by its own intensity)."""
    others = [s for s in study if s.key != target.key and same_grid(s, target)]
    if target.role == "phase":
        source = next((s for s in others if s.role == "magnitude"), None)
        return None if source is None else Pairing(target, source, f"magnitude {source.key}: same "
                                                   "FrameOfReferenceUID and grid")
    if target.role == "uni":
        source = next((s for s in others if s.role == "inv2"), None)
        if source is not None:
            return Pairing(target, source, f"INV2 {source.key}: same FrameOfReferenceUID and grid")
        return Pairing(target, target, "no INV2 on the same grid: denoised UNI", denoise=True)
    return Pairing(target, target, "own magnitude (first echo)")


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
