"""One frame of a DICOM image as PNG or JPEG, grey levels through its window/level (secureDICOM's export).

Stored values go through the Modality LUT (Rescale Slope/Intercept, of the frame's Pixel Value
Transformation in an enhanced image's functional groups) and then the VOI window: the first
Window Center/Width of the file (of the frame's Frame VOI LUT in an enhanced image's functional groups,
PS3.3 C.7.6.16.2.10), else the 1st..99th percentile of the frame, else a window given by the
caller (the app's preview passes the window the user is looking at). The mapping is PS3.3 C.11.2.1.2.1
("LINEAR"); MONOCHROME1 is inverted so that it looks as on the scanner; colour images are written as they
are. The exported picture is NOT de-identified: text burned into the pixels stays in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from tui.core.errors import MrishareError

JPEG_QUALITY = 95


@dataclass(frozen=True)
class Exported:
    """What was written: the frame (1-based) of how many, and the window used and where it came from."""

    path: Path
    frame: int
    frames: int
    center: float
    width: float
    window_from: str
    """`file` (Window Center/Width), `percentiles` or `given`."""


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR: values -> 0..255 (below the window black, above it white)."""
    width = max(float(width), 1.0)
    scaled = (values.astype(np.float64) - (center - 0.5)) / (width - 1.0) + 0.5
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def file_window(ds: pydicom.Dataset, frame: int = 1) -> tuple[float, float] | None:
    """The first Window Center/Width pair for `frame`: per-frame, then shared functional groups, then the
    top level (PS3.3 C.7.6.16.2.10, C.11.2), or None."""
    voi = frame_group_item(ds, frame, "FrameVOILUTSequence")
    found = _window_of(voi) if voi is not None else None
    return found if found is not None else _window_of(ds)


def frame_group_item(ds: pydicom.Dataset, frame: int, macro: str) -> pydicom.Dataset | None:
    """The first item of functional group macro `macro` (a sequence keyword) that applies to `frame`:
    from the per-frame groups, else from the shared groups (PS3.3 C.7.6.16), or None."""
    for groups in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        items = ds.get(groups) or []
        index = frame - 1 if groups.startswith("PerFrame") else 0
        found = items[index].get(macro) if len(items) > index else None
        if found:
            return found[0]
    return None


def _window_of(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """Window Center/Width of one data set or item (the first pair when several are given)."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None or center == "" or width == "":
        return None
    first = [float(v[0] if isinstance(v, pydicom.multival.MultiValue) else v) for v in (center, width)]
    return (first[0], first[1]) if first[1] >= 1 else None


def frame_values(ds: pydicom.Dataset, frame: int) -> tuple[np.ndarray, int]:
    """Frame `frame` (1-based) after the Modality LUT, and the number of frames."""
    from pydicom.pixels import apply_modality_lut

    frames = int(ds.get("NumberOfFrames") or 1)
    if not 1 <= frame <= frames:
        raise MrishareError(f"frame {frame} does not exist (the image has {frames} frame{'s' * (frames != 1)})")
    pixels = ds.pixel_array
    colour = int(ds.get("SamplesPerPixel") or 1) > 1
    if frames > 1:
        pixels = pixels[frame - 1]
    if colour:
        return pixels, frames
    rescale = frame_group_item(ds, frame, "PixelValueTransformationSequence")
    if rescale is not None and "RescaleSlope" in rescale and "RescaleIntercept" in rescale:
        # An enhanced image keeps its Modality LUT in the functional groups (PS3.3 C.7.6.16.2.9).
        return pixels * float(rescale.RescaleSlope) + float(rescale.RescaleIntercept), frames
    return apply_modality_lut(pixels, ds), frames


def save_picture(grey_or_rgb: np.ndarray, out: Path, jpeg: bool) -> Path:
    """Write an 8-bit picture as PNG or JPEG (the folder is made if needed)."""
    out = Path(out)
    image = Image.fromarray(grey_or_rgb)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out, format="JPEG", quality=JPEG_QUALITY) if jpeg else image.save(out, format="PNG")
    except OSError as error:
        raise MrishareError(f"cannot write the picture ({error.strerror or type(error).__name__})", out) from None
    return out


def export_frame(source: Path, out: Path, frame: int = 1, jpeg: bool = False,
                 window: tuple[float, float] | None = None) -> Exported:
    """Write frame `frame` of `source` to `out` through its window (see the module docstring)."""
    try:
        ds = pydicom.dcmread(source, force=True)
        values, frames = frame_values(ds, frame)
    except MrishareError as error:
        raise MrishareError(error.reason, source) from None
    except Exception as error:
        raise MrishareError(f"cannot read the pixels ({type(error).__name__})", source) from None
    if values.ndim == 3:  # colour: no VOI window applies (PS3.3 C.11.2: monochrome only)
        picture = values.astype(np.uint8) if values.dtype != np.uint8 else values
        return Exported(save_picture(picture, out, jpeg), frame, frames, 0.0, 0.0, "colour")
    given = window is not None
    from_file = file_window(ds, frame)
    found = window or from_file
    if found is None:
        low, high = np.percentile(values, (1, 99))
        found = ((low + high) / 2, max(high - low, 1.0))
    picture = linear_window(values, *found)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        picture = 255 - picture
    origin = "given" if given else "file" if from_file else "percentiles"
    return Exported(save_picture(picture, out, jpeg), frame, frames, float(found[0]), float(found[1]), origin)
