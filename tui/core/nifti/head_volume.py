"""Head volumes for the demo study: a numpy array in RAS order with its voxel size and origin.

The demo generator only needs a `HeadVolume`, so the source can be swapped (another template,
a real scan) without touching the DICOM writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from tui.assets import ASSETS
from tui.core.errors import MrishareError

TEMPLATE = ASSETS / "pydeface" / "mean_reg2mean.nii.gz"


@dataclass(frozen=True)
class HeadVolume:
    """A head image indexed [x, y, z] with x -> Right, y -> Anterior, z -> Superior (RAS)."""

    data: np.ndarray
    """int16 intensities, background 0."""
    voxel_mm: tuple[float, float, float]
    origin_ras: tuple[float, float, float]
    """World position (RAS, mm) of voxel (0, 0, 0)."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxels along x, y, z."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]


def load_nifti_head(path: Path) -> HeadVolume:
    """A NIfTI head reoriented to the closest RAS axes (small rotations are dropped)."""
    try:
        image = nib.as_closest_canonical(nib.load(str(path)))
    except (OSError, nib.filebasedimages.ImageFileError) as error:
        raise MrishareError(f"cannot read head volume ({type(error).__name__})", where=path) from None
    data = np.asanyarray(image.dataobj)
    if data.ndim != 3:
        raise MrishareError(f"head volume has {data.ndim} dimensions, expected 3", where=path)
    voxel = tuple(float(z) for z in image.header.get_zooms()[:3])
    origin = tuple(float(v) for v in image.affine[:3, 3])
    return HeadVolume(np.clip(data, -32768, 32767).astype(np.int16), voxel, origin)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def template_head() -> HeadVolume:
    """pydeface's average head with a face (MIT, shipped in tui/assets), 176x256x256 at ~1 mm."""
    return load_nifti_head(TEMPLATE)
