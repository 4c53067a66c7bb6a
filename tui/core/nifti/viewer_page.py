"""The participant's 3D viewer: NiiVue (vendored) over an 8-bit copy of each image, from file:// with no network.

Browsers block ES-module imports and fetch() of neighbouring files on file:// pages (origin null), so
everything arrives as classic scripts: `viewer/niivue.umd.js` (the vendored bundle, unchanged) and one
`viewer/<image>.js` per series that pushes the volume as base64 onto `window.MRISHARE_VOLUMES`.

The viewer copy is small on purpose (the 1 mm Philips head: 8.8 MB NIfTI from dcm2niix; an 8-bit copy at
1 mm was 4.0 MB, at 1.5 mm it is 1.2 MB): voxels of at least 1.5 mm, grey levels windowed to the head
(0.5-99.5 percentiles, as the previews), 7 bits (128 levels, more than a screen shows in one window), and
everything outside the head set to 0, because noise in the air costs more bytes than the brain. It has a
fresh NIfTI header: only the image geometry is carried over. The full-resolution .nii.gz opens in the same
viewer through a file picker (a file the participant picks may be read; one the page names may not).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import shutil
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from tui.assets import ASSETS
from tui.core.nifti.preview import load_canonical, window

VIEWER_DIR = "viewer"
BUNDLE_DIR = ASSETS / "niivue"
SCRIPT = ASSETS / "participant" / "viewer.js"
LEVEL_MASK = 0xFE  # keep 7 of 8 bits
HEAD_THRESHOLD = 0.1  # fraction of the grey window below which a voxel may be air
MASK_VOXELS = 1_500_000  # grid size the head outline is worked out on
VOXEL_MM = 1.5  # finer images are resampled to this for the viewer copy; the full one opens by file picker
# No network: nothing may be fetched from anywhere; scripts only inline or from neighbouring files.
CSP = ("default-src 'none'; script-src 'unsafe-inline' file:; style-src 'unsafe-inline'; "
       "img-src data: blob:; connect-src data: blob:; worker-src blob:; form-action 'none'; base-uri 'none'")


def viewer_volume(nifti: Path) -> bytes:
    """The gzipped 8-bit viewer copy of the first volume of `nifti` (see the module docstring)."""
    volume, zooms, affine = load_canonical(nifti)
    volume, affine = _coarsen(volume, zooms, affine)
    low, high = window(volume)
    grey = (np.clip((np.nan_to_num(volume, nan=low) - low) / (high - low), 0.0, 1.0) * 255).astype(np.uint8)
    head = _head_mask(grey > HEAD_THRESHOLD * 255)
    grey = np.where(head, grey & LEVEL_MASK, 0).astype(np.uint8)
    out = nib.Nifti1Image(grey, affine)
    out.header.set_xyzt_units("mm")
    return gzip.compress(out.to_bytes(), compresslevel=6, mtime=0)


def _coarsen(volume: np.ndarray, zooms: tuple[float, float, float], affine: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Resample (linear) to at least VOXEL_MM per axis; the affine keeps voxel 0 and the far corner in place."""
    # a single slice (a 2D image) stays one slice along its axis: nothing to coarsen there
    factors = [1.0 if n < 2 else min(1.0, z / VOXEL_MM) for z, n in zip(zooms, volume.shape, strict=False)]
    if all(f == 1.0 for f in factors):
        return volume, affine
    shape = [n if f == 1.0 else max(2, round(n * f)) for n, f in zip(volume.shape, factors, strict=False)]
    small = ndimage.zoom(volume, [m / n for m, n in zip(shape, volume.shape, strict=False)], order=1, grid_mode=False)
    scaled = affine.copy()
    scaled[:3, :3] = affine[:3, :3] * [(n - 1) / (m - 1) if m > 1 else 1.0
                                       for n, m in zip(volume.shape, small.shape, strict=False)]
    return small, scaled


def _head_mask(mask: np.ndarray) -> np.ndarray:
    """The largest connected blob of `mask`, opened, closed and with its holes filled (the head, not the noise).

    Worked out on a coarser grid (at most ~1.5 M voxels) and scaled back: the outline needs no finer grain than
    2-3 mm. The opening and closing are numpy shifts with scipy's default cross and border (the same voxels as
    `ndimage.binary_opening`/`binary_closing(iterations=2)`/`binary_fill_holes`, 4-5x faster: 0.65 s -> 0.14 s on
    the 1 mm head).
    """
    step = max(1, round((mask.size / MASK_VOXELS) ** (1 / 3)))
    coarse = _morph(mask[::step, ::step, ::step], grow=(False, True))
    labels, count = ndimage.label(coarse)
    if count == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    head = _fill_holes(_morph(labels == sizes.argmax(), grow=(True, True, False, False)))
    for axis in range(3):
        head = np.repeat(head, step, axis=axis)
    return head[: mask.shape[0], : mask.shape[1], : mask.shape[2]]


def _morph(mask: np.ndarray, grow: tuple[bool, ...]) -> np.ndarray:
    """Dilate (True) or erode (False) `mask` once per entry of `grow`, by the 6-neighbour cross; outside the array
    counts as empty, so erosion eats the border planes, as scipy's does."""
    for dilate in grow:
        out = mask.copy()
        for axis in range(mask.ndim):
            low, high = [slice(None)] * mask.ndim, [slice(None)] * mask.ndim
            low[axis], high[axis] = slice(None, -1), slice(1, None)
            if dilate:
                out[tuple(high)] |= mask[tuple(low)]
                out[tuple(low)] |= mask[tuple(high)]
            else:
                out[tuple(high)] &= mask[tuple(low)]
                out[tuple(low)] &= mask[tuple(high)]
                np.moveaxis(out, axis, 0)[[0, -1]] = False
        mask = out
    return mask


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` with every empty region that does not reach the array's border filled."""
    background, count = ndimage.label(~mask)
    outside = np.zeros(count + 1, dtype=bool)
    for axis in range(mask.ndim):
        outside[np.take(background, [0, -1], axis=axis)] = True
    outside[0] = False
    return ~outside[background]


def volume_script(name: str, title: str, volume: bytes) -> str:
    """A classic script that hands one volume to the viewer (JSON-quoted, so no value can break out)."""
    entry = json.dumps({"name": name, "title": title, "base64": base64.b64encode(volume).decode("ascii")})
    return f"(window.MRISHARE_VOLUMES = window.MRISHARE_VOLUMES || []).push({entry});\n"


def write_viewer(out_dir: Path, items: Sequence[tuple[Path, str]]) -> list[Path]:
    """Copy the NiiVue bundle and write one volume script per `(nifti, title)` into `out_dir/viewer`.

    Returns the volume scripts, in the order given (the page loads them in that order).
    """
    folder = Path(out_dir) / VIEWER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for asset in sorted(BUNDLE_DIR.iterdir()):
        shutil.copyfile(asset, folder / asset.name)
    scripts = []
    for nifti, title in items:
        stem = Path(nifti).name.removesuffix(".gz").removesuffix(".nii")
        script = folder / f"{stem}.js"
        script.write_text(volume_script(f"{stem}.nii.gz", title, viewer_volume(nifti)), encoding="ascii")
        scripts.append(script)
    return scripts


def viewer_section() -> str:
    """The viewer's markup: hidden until the script starts, with German/English controls."""
    buttons = (("slices", "Schichten + 3D", "Slices + 3D"), ("render", "3D", "3D"),
               ("cut", "Aufgeschnitten", "Cut open"))
    controls = "".join(f'<button type="button" data-view="{view}"><span lang="de">{html.escape(de)}</span>'
                       f'{" / " + html.escape(en) if en != de else ""}</button>' for view, de, en in buttons)
    return (f'<div id="viewer-status" class="note" hidden></div>\n<section id="viewer" hidden>\n'
            f'<div class="controls"><select id="viewer-series" aria-label="Aufnahme / Image"></select>{controls}'
            '<label class="pick"><span lang="de">Volle Auflösung: .nii.gz-Datei wählen</span> / '
            '<span lang="en">Full resolution: choose the .nii.gz file</span> '
            '<input id="viewer-file" type="file" accept=".nii,.gz"></label></div>\n'
            '<canvas id="viewer-canvas" width="900" height="900"></canvas>\n'
            '<p lang="de">Ziehen mit der Maus dreht das 3D-Bild; ein Klick in eine Schicht wählt den Punkt.</p>\n'
            '<p lang="en">Drag with the mouse to turn the 3D picture; click into a slice to pick a point.</p>\n'
            "</section>\n")


def viewer_script() -> str:
    """Our own viewer code (inline in the page)."""
    return SCRIPT.read_text(encoding="utf-8")


def viewer_styles() -> str:
    """CSS for the viewer section."""
    return ("#viewer canvas { width: min(100%, 900px); aspect-ratio: 1; display: block; background: #000; }\n"
            "#viewer .controls { display: flex; gap: .5rem; flex-wrap: wrap; margin: .5rem 0; }\n"
            "#viewer button, #viewer select { font: inherit; padding: .3rem .8rem; }\n"
            "#viewer .pick { font-size: .9rem; color: #bbb; }\n")


@cache
def _vendored() -> frozenset[tuple[int, str]]:
    """(size, sha256) of each file of the vendored bundle folder."""
    return frozenset((p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                     for p in BUNDLE_DIR.iterdir() if p.is_file())


def is_vendored(path: Path) -> bool:
    """True for an unchanged copy of a vendored third-party file (it cannot hold participant data)."""
    size = Path(path).stat().st_size
    if not any(size == s for s, _ in _vendored()):
        return False
    return (size, hashlib.sha256(Path(path).read_bytes()).hexdigest()) in _vendored()


def gated_files(root: Path) -> list[Path]:
    """The files below `root` the leak gate must search: all but unchanged vendored third-party files.

    The minified bundle and its notices are fixed text from the npm registry (pinned by checksum); searching
    them would stop a participant called Luke or Li (both occur there) for nothing.
    """
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and not is_vendored(p))
