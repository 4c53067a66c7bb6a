"""Did a conversion keep every image? The images that went into an engine against the voxels that came out.

An engine can write fewer images than it was given without failing: dcm2niix splits a series whose headers
disagree (a damaged byte) and, with the wrong options, writes the parts over each other. Counted here:
- in: the distinct SOP instances (dcm2niix merges copies of one instance on purpose), each
  NumberOfFrames x Rows x Columns voxels;
- out: every written NIfTI's voxels, plus the volumes the engine says it left out on purpose (dcm2niix's
  "N volumes appear to be ADC or trace images", derived maps inside a diffusion series).
A mosaic (Siemens, UIH) stores one volume per file in tiles, some of them empty, so fewer voxels come out
than went in: there the volumes are counted, one per file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import pydicom

_TAGS = ["SOPInstanceUID", "NumberOfFrames", "Rows", "Columns"]


@dataclass(frozen=True)
class Written:
    """One NIfTI an engine wrote, and the volumes it says it dropped on purpose beside it."""

    nifti: Path
    dropped_volumes: int = 0


@dataclass(frozen=True)
class _Inputs:
    images: int
    """Frames of the distinct instances (a single-frame file is one image)."""
    voxels: int
    files: int
    """Distinct instances."""
    planes: frozenset[int]
    """Rows x Columns of the inputs."""
    single_frame: bool


def _count(value: object, default: int) -> int:
    try:
        return max(int(str(value)), 0) if value not in (None, "") else default
    except ValueError:
        return default


def _inputs(files: Sequence[Path]) -> _Inputs:
    """What went in, read from the headers (copies of one SOP instance count once)."""
    seen: set[str] = set()
    images = voxels = 0
    planes: set[int] = set()
    single = True
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=_TAGS)
        uid = str(ds.get("SOPInstanceUID", "") or path)
        if uid in seen:
            continue
        seen.add(uid)
        frames = _count(ds.get("NumberOfFrames"), 1) or 1
        plane = _count(ds.get("Rows"), 0) * _count(ds.get("Columns"), 0)
        single = single and frames == 1
        images += frames
        voxels += frames * plane
        planes.add(plane)
    return _Inputs(images, voxels, len(seen), frozenset(planes), single)


def _is_mosaic(inputs: _Inputs, shapes: list[tuple[int, ...]]) -> bool:
    """Single-frame files of one size whose every output slice is a tile of it (and there is room for all)."""
    if not inputs.single_frame or len(inputs.planes) != 1:
        return False
    (plane,) = inputs.planes
    for shape in shapes:
        tile = shape[0] * shape[1]
        if not tile or plane % tile or plane // tile < max(shape[2], 2):
            return False
    return True


def shortfall(files: Sequence[Path], written: Sequence[Written]) -> str:
    """'' if the outputs hold every image of `files`, else e.g. '34 of 35 slices converted'."""
    inputs = _inputs(files)
    shapes = [(*(int(n) for n in cast(nib.Nifti1Image, nib.load(w.nifti)).shape), 1, 1) for w in written]
    voxels = sum(math.prod(shape) + w.dropped_volumes * math.prod(shape[:3])
                 for shape, w in zip(shapes, written, strict=True))
    if voxels >= inputs.voxels:
        return ""
    if _is_mosaic(inputs, shapes):
        volumes = sum(math.prod(shape[3:]) + w.dropped_volumes for shape, w in zip(shapes, written, strict=True))
        return "" if volumes >= inputs.files else f"{volumes} of {inputs.files} volumes converted"
    plane = inputs.voxels // max(inputs.images, 1) or 1
    return f"{voxels // plane} of {inputs.images} slices converted"
