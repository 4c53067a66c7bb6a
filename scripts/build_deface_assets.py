"""Build the derived defacing assets in tui/assets/deface/ from pydeface's template (MIT, in tui/assets/pydeface/).

Run `python scripts/build_deface_assets.py [OUT_DIR]` (default: tui/assets/deface). Deterministic; commit the outputs.

- brain_mask.nii.gz: brain + brainstem of the average head (the region no mode may ever change).
- face_mask.nii.gz: pydeface's face box swept upward over eyes and brows, minus the brain and a margin.
- head_mask.nii.gz: the average head without the thin sheet artefacts that float in front of its face.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
PYDEFACE = ROOT / "tui" / "assets" / "pydeface"
OUT = ROOT / "tui" / "assets" / "deface"

# Intensities of the average head (int16, white matter ~300-400, grey matter ~150-250, CSF/bone < 100).
WHITE_MATTER = 250.0
BRAIN_TISSUE = 120.0
GROW_MM = 10  # grow the white-matter core into grey matter by at most this much (stops at the dark CSF/skull)
SWEEP_UP_MM = 40.0  # pydeface's box stops below the eyes; sweeping it up covers eyes and brows
BRAIN_MARGIN_MM = 3.0
SKIN_FRACTION = 0.35  # same head/air level as tui.core.nifti.head_render
OPEN_VOXELS = 5  # opening radius: drops the thin frame-shaped sheets that averaging left in front of the face


def brain_mask(template: sitk.Image) -> sitk.Image:
    """White-matter core grown geodesically into tissue brighter than CSF, closed and hole-filled."""
    smooth = sitk.SmoothingRecursiveGaussian(template, 1.0)
    core = sitk.BinaryErode(sitk.BinaryThreshold(smooth, WHITE_MATTER, 1e9, 1, 0), [2] * 3)
    core = sitk.RelabelComponent(sitk.ConnectedComponent(core), sortByObjectSize=True) == 1
    allowed = sitk.BinaryThreshold(smooth, BRAIN_TISSUE, 1e9, 1, 0)
    mask = core
    for _ in range(GROW_MM):
        mask = sitk.And(sitk.BinaryDilate(mask, [1] * 3), allowed)
    mask = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(mask, [3] * 3))
    return sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True) == 1


def face_mask(pydeface_mask: sitk.Image, brain: sitk.Image) -> sitk.Image:
    """pydeface's face (its mask is 0 on the face) swept up by SWEEP_UP_MM, outside brain + margin."""
    face = sitk.GetArrayFromImage(pydeface_mask) < 0.5  # numpy order z, y, x; z runs inferior->superior
    steps = round(SWEEP_UP_MM / pydeface_mask.GetSpacing()[2])
    swept = face.copy()
    for step in range(1, steps + 1):
        swept[step:] |= face[:-step]
    margin = [int(np.ceil(BRAIN_MARGIN_MM / s)) for s in brain.GetSpacing()]
    protected = sitk.GetArrayFromImage(sitk.BinaryDilate(brain, margin)) > 0
    out = sitk.GetImageFromArray((swept & ~protected).astype(np.uint8))
    out.CopyInformation(pydeface_mask)
    return out


def head_mask(template: sitk.Image) -> sitk.Image:
    """The head above the render's skin level, opened to drop thin floating sheets, holes filled."""
    smooth = sitk.SmoothingRecursiveGaussian(template, 1.0)
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.Execute(smooth)
    head = sitk.BinaryThreshold(smooth, SKIN_FRACTION * otsu.GetThreshold(), 1e9, 1, 0)
    head = sitk.BinaryMorphologicalOpening(head, [OPEN_VOXELS] * 3)
    head = sitk.RelabelComponent(sitk.ConnectedComponent(head), sortByObjectSize=True) == 1
    return sitk.BinaryFillhole(head)


def _write(mask: sitk.Image, like: sitk.Image, path: Path) -> None:
    """Save a uint8 mask on the template's grid."""
    mask = sitk.Cast(mask, sitk.sitkUInt8)
    mask.CopyInformation(like)
    sitk.WriteImage(mask, str(path), useCompression=True)
    name = path.name
    voxels = int(sitk.GetArrayViewFromImage(mask).sum())
    print(f"{name}: {voxels * np.prod(like.GetSpacing()) / 1000:.0f} ml")


def main(out: Path = OUT) -> None:
    """Build every derived asset into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    template = sitk.ReadImage(str(PYDEFACE / "mean_reg2mean.nii.gz"), sitk.sitkFloat32)
    pydeface_mask = sitk.ReadImage(str(PYDEFACE / "facemask.nii.gz"), sitk.sitkFloat32)
    brain = brain_mask(template)
    _write(brain, template, out / "brain_mask.nii.gz")
    _write(face_mask(pydeface_mask, brain), template, out / "face_mask.nii.gz")
    _write(head_mask(template), template, out / "head_mask.nii.gz")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
