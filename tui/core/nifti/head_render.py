"""Shaded surface renders of a head seen from the front (numpy ray-cast on a SimpleITK-resampled grid).

A lit skin surface looks enough like a photographed face for a CNN face detector, which is what
the face check needs: the same views of the original, the defaced head and the template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

# RAS world -> ITK's LPS world (and back; the matrix is its own inverse).
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
PIXEL_MM = 1.0
FIELD_MM = 240.0
DEPTH_MM = 170.0  # rays stop 20 mm behind the centre: nothing further back is visible from the front
FRONT_MM = 150.0  # rays start this far in front of the head's centre (the nose tip is ~110 mm in front)
SMOOTH_MM = 1.5
SKIN_FRACTION = 0.35  # Otsu splits air from brain-bright tissue; skin on T1 is darker than that
LIGHT = np.array([0.0, 0.35, 1.0]) / math.hypot(0.35, 1.0)
ANGLES = tuple((yaw, pitch) for pitch in (-10, 0, 10) for yaw in (-10, 0, 10))


@dataclass(frozen=True)
class View:
    """One front render: yaw/pitch in degrees, a uint8 grey image (rows top to bottom), its turning centre."""

    yaw: int
    pitch: int
    image: np.ndarray
    centre: np.ndarray  # LPS mm point the camera turned about


def volume_image(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image (LPS physical space) from a NIfTI-ordered array and its RAS affine."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, dtype=np.float32).T))
    linear = RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((linear / spacing).flatten().tolist())
    image.SetOrigin((RAS_TO_LPS @ affine[:3, 3]).tolist())
    return image


def surface_level(image: sitk.Image) -> float:
    """A head/background threshold robust to noise: a fraction of Otsu's air/tissue split."""
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.Execute(image)
    return SKIN_FRACTION * otsu.GetThreshold()


def _camera(yaw: float, pitch: float) -> np.ndarray:
    """Columns: screen-right, depth (into the head), screen-down, as LPS directions for a viewer in front."""
    # Viewer faces the patient: screen-right is the patient's left (+L), depth runs anterior->posterior (+P).
    base = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]).T
    y, p = math.radians(yaw), math.radians(pitch)
    turn = np.array([[math.cos(y), -math.sin(y), 0.0], [math.sin(y), math.cos(y), 0.0], [0.0, 0.0, 1.0]])
    nod = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(p), -math.sin(p)], [0.0, math.sin(p), math.cos(p)]])
    return turn @ nod @ base


def _shade(depth: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Lambert shading of a depth map (mm from the viewer plane), black where no ray hit."""
    dz_dr, dz_dc = np.gradient(depth, PIXEL_MM)
    # Surface normal toward the viewer in (right, up, toward-viewer) coordinates; rows run downward.
    normal = np.stack([dz_dc, -dz_dr, np.ones_like(depth)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.clip(normal @ LIGHT, 0.0, 1.0)
    shade = 0.12 + 0.88 * light
    return np.where(hit, np.clip(shade * 255.0, 0, 255), 0).astype(np.uint8)


def render_front(data: np.ndarray, affine: np.ndarray, angles=ANGLES, centre: np.ndarray | None = None) -> list[View]:
    """Render the head in a NIfTI-ordered array with RAS `affine` from the front at each (yaw, pitch)."""
    return render_image(volume_image(data, affine), angles, centre)


def render_image(volume: sitk.Image, angles=ANGLES, centre: np.ndarray | None = None) -> list[View]:
    """Render the head surface of a SimpleITK image from the front at each (yaw, pitch) in degrees.

    Views turn about `centre` (LPS mm; default: the centroid of the head), so two heads on the same
    grid rendered about the same centre give pixel-aligned views.
    """
    image = sitk.SmoothingRecursiveGaussian(sitk.Cast(volume, sitk.sitkFloat32), SMOOTH_MM)
    coarse = sitk.Shrink(image, [2, 2, 2])  # level and centre need no full resolution (4x faster)
    level = surface_level(coarse)
    if centre is None:
        inside = np.argwhere(sitk.GetArrayViewFromImage(coarse) > level)
        middle = inside.mean(axis=0)[::-1] if inside.size else (np.array(coarse.GetSize()) - 1) / 2
        centre = np.array(coarse.TransformContinuousIndexToPhysicalPoint(middle.tolist()))  # z,y,x -> x,y,z
    background = float(sitk.GetArrayViewFromImage(coarse).min())
    n_side, n_depth = int(FIELD_MM / PIXEL_MM), int(DEPTH_MM / PIXEL_MM)
    views = []
    for yaw, pitch in angles:
        axes = _camera(yaw, pitch)
        origin = centre - axes @ np.array([FIELD_MM / 2, FRONT_MM, FIELD_MM / 2])
        grid = sitk.Image(n_side, n_depth, n_side, sitk.sitkFloat32)
        grid.SetSpacing((PIXEL_MM,) * 3)
        grid.SetOrigin(origin.tolist())
        grid.SetDirection(axes.flatten().tolist())
        rays = sitk.GetArrayFromImage(
            sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, background)
        )  # [screen row, depth, screen column]
        above = rays > level
        hit = np.asarray(above.any(axis=1))  # an array (numpy's stubs allow a scalar)
        first = np.argmax(above, axis=1)
        rows, cols = np.indices(first.shape)
        before = np.maximum(first - 1, 0)
        v0, v1 = rays[rows, before, cols], rays[rows, first, cols]
        frac = np.where(first > 0, (level - v0) / np.maximum(v1 - v0, 1e-6), 0.0)
        depth = (before + np.clip(frac, 0.0, 1.0)) * PIXEL_MM
        views.append(View(yaw, pitch, _shade(np.where(hit, depth, DEPTH_MM), hit), centre))
    return views
