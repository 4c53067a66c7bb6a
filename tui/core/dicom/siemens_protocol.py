"""The slice count a Siemens series declares in its own protocol (a private header), where that count is reliable.

Siemens stores the acquisition protocol (MrPhoenixProtocol, an ASCCONV text block) in the CSA series
header (0029,1020). For an ORIGINAL 2D acquisition with one contrast and one repetition, each slice of the
protocol is one image of the series, so `sSliceArray.lSize` is a count the series declares. Nothing else
gives a count: a 3D slab's partitions differ from its images (interpolation, slice oversampling, and test
data trimmed to a few slices), NumberOfImagesInMosaic (0019,100A) counts the slices in one mosaic, not the
volumes, and a run of repetitions or echoes that was stopped early is shorter than planned without being damaged.
"""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
from pydicom.tag import Tag

CSA_SERIES = Tag(0x0029, 0x1020)
_LINE = re.compile(rb"^(sSliceArray\.lSize|sKSpace\.ucDimension|lContrasts|lRepetitions)\s*=\s*(\w+)", re.MULTILINE)


def declared_slices(path: Path, image_type: str) -> int | None:
    """`sSliceArray.lSize` of a 2D, single-contrast, single-repetition ORIGINAL Siemens series, else None."""
    kinds = image_type.upper().split("\\")
    if kinds[0] != "ORIGINAL" or "MOSAIC" in kinds:
        return None
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=[CSA_SERIES])
        value = header[CSA_SERIES].value if CSA_SERIES in header else b""
    except Exception:  # a damaged private header gives no count; the file's own reading names real damage
        return None
    if not isinstance(value, bytes):
        return None
    try:
        protocol = {key.decode(): int(number, 0) for key, number in _LINE.findall(value)}
    except ValueError:
        return None
    if protocol.get("sKSpace.ucDimension") != 2 or protocol.get("lContrasts", 1) != 1 \
            or protocol.get("lRepetitions", 0) != 0:
        return None
    slices = protocol.get("sSliceArray.lSize", 0)
    return slices if slices > 0 else None
