"""PNG previews of a NIfTI for participants: three orthogonal mid-slices and a slice mosaic.

Views follow the radiological convention and say so on the image: the patient's right is on the
viewer's left; axial and coronal views from the feet/front, sagittal with the nose to the left.
Superior is up in sagittal and coronal, anterior is up in axial. Grey levels are windowed by robust
percentiles of the head (0.5 to 99.5 %), so one bright vessel does not darken the picture.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

VIEW_HEIGHT = 300  # pixels for the tallest of the three views
TILE = 150  # pixels for the longer side of a mosaic tile
MOSAIC_SLICES = 24
MOSAIC_COLUMNS = 6
LABEL_SIZE = 16
BACKGROUND = 0
TEXT = 235

# (name, axis fixed by the slice, (column axis, row axis), edge letters left/right/top/bottom)
VIEWS = (
    ("sagittal", 0, (1, 2), ("A", "P", "S", "I")),
    ("coronal", 1, (0, 2), ("R", "L", "S", "I")),
    ("axial", 2, (0, 1), ("R", "L", "A", "P")),
)


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font, or its bitmap font if FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def load_volume(nifti: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The first volume in RAS+ voxel order with scaling applied, and its voxel size in mm."""
    image = nib.as_closest_canonical(nib.load(nifti))
    data = image.dataobj[..., 0] if len(image.shape) > 3 else image.dataobj
    volume = np.asarray(data, dtype=np.float32)
    while volume.ndim > 3:
        volume = volume[..., 0]
    return volume, tuple(float(z) for z in image.header.get_zooms()[:3])


def window(volume: np.ndarray) -> tuple[float, float]:
    """Robust grey-level window: 0.5 and 99.5 percentiles of the non-background voxels."""
    finite = volume[np.isfinite(volume)]
    inside = finite[finite > finite.min()] if finite.size else finite
    if inside.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(inside, [0.5, 99.5])
    return float(low), float(high if high > low else low + 1.0)


def to_grey(plane: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map values to 0..255 within the window."""
    scaled = (np.nan_to_num(plane, nan=low) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def _head_extent(volume: np.ndarray, low: float, high: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A point in the brain and, per axis, the slices that cut a fair part of the head.

    The centre of mass of a head scan sits low when the neck is in the field of view, so the
    superior-inferior coordinate comes from the upper 60 % of the head only.
    """
    mask = volume > low + 0.15 * (high - low)
    if not mask.any():
        return np.array(volume.shape) // 2, [(0, n - 1) for n in volume.shape]
    bounds = []
    for axis in range(3):
        area = mask.sum(axis=tuple(a for a in range(3) if a != axis))
        kept = np.nonzero(area >= 0.05 * area.max())[0]
        bounds.append((int(kept[0]), int(kept[-1])))
    x, y, z = np.nonzero(mask)
    bottom, top = bounds[2]
    upper = z >= bottom + 0.4 * (top - bottom)
    centre = np.array([round(float(v[upper].mean())) for v in (x, y, z)])
    return centre, bounds


def view_plane(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """One slice oriented for display: rows top-down = superior/anterior first, columns = R/A first."""
    plane = np.take(volume, index, axis=axis)  # remaining axes in RAS order: (columns, rows)
    return plane.T[::-1, ::-1]


def _render(plane: np.ndarray, mm: tuple[float, float], scale: float, low: float, high: float) -> Image.Image:
    """A display slice resized to square millimetres at `scale` pixels per mm."""
    rows, columns = plane.shape
    size = (max(1, round(columns * mm[0] * scale)), max(1, round(rows * mm[1] * scale)))
    return Image.fromarray(to_grey(plane, low, high), mode="L").resize(size, Image.Resampling.BILINEAR)


def _label_edges(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], letters: tuple[str, ...],
                 font: ImageFont.ImageFont) -> None:
    """Write orientation letters in the middle of each edge of `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    if min(x1 - x0, y1 - y0) < 4 * LABEL_SIZE:  # a thin view (few slices): letters would cover it
        return
    mid_x, mid_y, pad = (x0 + x1) // 2, (y0 + y1) // 2, 4
    left, right, top, bottom = letters
    draw.text((x0 + pad, mid_y), left, fill=TEXT, font=font, anchor="lm")
    draw.text((x1 - pad, mid_y), right, fill=TEXT, font=font, anchor="rm")
    draw.text((mid_x, y0 + pad), top, fill=TEXT, font=font, anchor="mt")
    draw.text((mid_x, y1 - pad), bottom, fill=TEXT, font=font, anchor="mb")


def orthogonal_views(volume: np.ndarray, zooms: tuple[float, float, float]) -> Image.Image:
    """Sagittal, coronal and axial slices through the head's centre, side by side and labelled."""
    low, high = window(volume)
    centre, _ = _head_extent(volume, low, high)
    heights = [volume.shape[rows] * zooms[rows] for _, _, (_, rows), _ in VIEWS]
    scale = VIEW_HEIGHT / max(heights)
    tiles = [_render(view_plane(volume, axis, int(centre[axis])), (zooms[c], zooms[r]), scale, low, high)
             for _, axis, (c, r), _ in VIEWS]
    gap, caption = 12, 2 * LABEL_SIZE + 12
    width = sum(t.width for t in tiles) + gap * (len(tiles) + 1)
    canvas = Image.new("L", (width, max(t.height for t in tiles) + caption + gap), BACKGROUND)
    draw, font = ImageDraw.Draw(canvas), _font(LABEL_SIZE)
    x = gap
    for tile, (name, _, _, letters) in zip(tiles, VIEWS):
        canvas.paste(tile, (x, gap))
        _label_edges(draw, (x, gap, x + tile.width, gap + tile.height), letters, font)
        draw.text((x + tile.width // 2, gap + tile.height + 4), name, fill=TEXT, font=font, anchor="mt")
        x += tile.width + gap
    draw.text((width // 2, canvas.height - 4), "radiological view: R = patient's right, shown on the left",
              fill=TEXT, font=_font(LABEL_SIZE - 3), anchor="mb")
    return canvas


def mosaic(volume: np.ndarray, zooms: tuple[float, float, float]) -> Image.Image:
    """Evenly spaced slices through the head along the thick-slice axis (axial if isotropic)."""
    low, high = window(volume)
    _, bounds = _head_extent(volume, low, high)
    axis = int(np.argmax(zooms)) if max(zooms) / min(zooms) > 1.5 else 2
    name, _, (c, r), letters = next(v for v in VIEWS if v[1] == axis)
    first, last = bounds[axis]
    count = min(MOSAIC_SLICES, last - first + 1)
    picks = np.unique(np.linspace(first, last, count).round().astype(int))
    planes = [view_plane(volume, axis, int(i)) for i in picks]
    rows_mm, columns_mm = planes[0].shape[0] * zooms[r], planes[0].shape[1] * zooms[c]
    scale = TILE / max(rows_mm, columns_mm)
    tiles = [_render(p, (zooms[c], zooms[r]), scale, low, high) for p in planes]
    columns = min(MOSAIC_COLUMNS, len(tiles))
    grid_rows = -(-len(tiles) // columns)
    tw, th, caption = tiles[0].width, tiles[0].height, LABEL_SIZE + 12
    canvas = Image.new("L", (columns * tw, grid_rows * th + caption), BACKGROUND)
    for k, tile in enumerate(tiles):
        canvas.paste(tile, ((k % columns) * tw, (k // columns) * th))
    draw, font = ImageDraw.Draw(canvas), _font(LABEL_SIZE - 3)
    _label_edges(draw, (0, 0, tw, th), letters, font)
    order = {"axial": "feet to head", "coronal": "back to front", "sagittal": "left to right"}[name]
    draw.text((canvas.width // 2, canvas.height - 4), f"{len(tiles)} {name} slices, {order} (radiological view)",
              fill=TEXT, font=font, anchor="mb")
    return canvas


def make_previews(nifti: Path, out_dir: Path) -> list[Path]:
    """Write `<name>_views.png` and `<name>_mosaic.png` for one NIfTI into `out_dir`; return their paths."""
    volume, zooms = load_volume(nifti)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(nifti).name.removesuffix(".gz").removesuffix(".nii")
    paths = []
    for kind, render in (("views", orthogonal_views), ("mosaic", mosaic)):
        path = out_dir / f"{stem}_{kind}.png"
        render(volume, zooms).save(path, optimize=True)
        paths.append(path)
    return paths
