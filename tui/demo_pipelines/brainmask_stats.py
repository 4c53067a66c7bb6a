"""Demo pipeline: a head mask and volume statistics of each input image.

`python -m tui.demo_pipelines.brainmask_stats IMAGE... OUTDIR` writes, per image, `<name>_mask.nii.gz`
(Otsu threshold, the largest connected part, holes filled) and `stats.json` (voxel size, mask voxels and
volume in ml, mean and percentiles inside the mask). Exit code 2 with one line on stderr for an unreadable
image. It is a stand-in for a real pipeline such as FreeSurfer's recon-all, small enough for tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold of `values` (256 bins): the cut that best separates two intensity classes."""
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    total = weight[-1]
    mean = np.cumsum(counts * centres)
    between = (mean[-1] * weight - mean * total) ** 2 / np.maximum(weight * (total - weight), 1)
    return float(centres[int(np.argmax(between))])


def head_mask(data: np.ndarray) -> np.ndarray:
    """Voxels above Otsu's threshold, the largest connected part, holes filled."""
    mask = data > otsu(data[np.isfinite(data)])
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, labels, range(1, count + 1))
        mask = labels == int(np.argmax(sizes)) + 1
    return np.asarray(ndimage.binary_fill_holes(mask), dtype=bool)


def describe(image: Path, outdir: Path) -> dict[str, object]:
    """Write the mask of `image` into `outdir` and return its statistics."""
    loaded = nib.load(image)
    if not isinstance(loaded, nib.Nifti1Image):  # NIfTI-2 images are Nifti1Image subclasses
        raise ValueError("not NIfTI")
    data = np.asarray(loaded.dataobj, dtype=np.float32)
    data = data[..., 0] if data.ndim == 4 else data
    mask = head_mask(data)
    name = image.name.removesuffix(".gz").removesuffix(".nii")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), loaded.affine), outdir / f"{name}_mask.nii.gz")
    voxel_ml = float(np.prod(loaded.header.get_zooms()[:3])) / 1000.0
    inside = data[mask]
    return {"image": image.name, "shape": list(data.shape), "voxel_ml": voxel_ml,
            "mask_voxels": int(mask.sum()), "mask_volume_ml": round(float(mask.sum()) * voxel_ml, 2),
            "mean_inside": round(float(inside.mean()), 3) if inside.size else None,
            "p5_p50_p95_inside": [round(float(v), 3) for v in np.percentile(inside, [5, 50, 95])]
            if inside.size else []}


def main(argv: list[str]) -> int:
    """Mask and statistics for each image argument; the last argument is the output folder."""
    if len(argv) < 2:
        print("usage: brainmask_stats IMAGE... OUTDIR", file=sys.stderr)
        return 2
    *images, out = (Path(a) for a in argv)
    out.mkdir(parents=True, exist_ok=True)
    stats = []
    for image in images:
        try:
            stats.append(describe(image, out))
        except (OSError, ValueError, nib.filebasedimages.ImageFileError) as error:
            print(f"brainmask_stats: {image.name}: not a readable NIfTI image ({type(error).__name__})",
                  file=sys.stderr)
            return 2
        print(f"{image.name}: mask {stats[-1]['mask_volume_ml']} ml")
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
