"""Defaced voxels written back into de-identified DICOM, frame by frame, on the frames' own geometry.

The defaced NIfTI was converted from these very files, so every pixel centre of every frame lands
on a NIfTI voxel centre (found through ImagePositionPatient/ImageOrientationPatient/PixelSpacing,
classic or enhanced multi-frame). Stored pixel values relate to the NIfTI's by one linear map (the
converter's rescale): it is fitted on the series and must reproduce the stored values of the
unchanged voxels, else the geometry does not match and the series is refused (withheld, never sent
with a face). Only pixels whose voxel changed are rewritten. Each file gets a new SOP Instance UID,
BurnedInAnnotation NO, a DerivationDescription and the "Clean Recognizable Visual Features" code.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepNote

if TYPE_CHECKING:
    from tui.core.nifti.conversion import SeriesInput

# PS3.16 CID 7050: the option that removes recognisable features (the face) from pixel data.
CLEAN_VISUAL_FEATURES = ("113102", "Clean Recognizable Visual Features Option")
MAX_MISFIT = 0.001  # at most this fraction of unchanged pixels may differ by more than one unit from the fit
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class DefacedDicom:
    """What writing back did: the new files, how many pixels changed, the fitted stored = gain * nifti + offset."""

    files: list[Path]
    pixels_changed: int
    gain: float
    offset: float


def deface_dicom(files: list[Path], original: Path, defaced: Path, out_dir: Path, mode: str) -> DefacedDicom:
    """Write the voxels that differ between `original` and `defaced` (NIfTI of these files) into copies in `out_dir`.

    Raises MrishareError (naming the first file) if the frames do not lie on the NIfTI grid.
    """
    before, after, affine = _volumes(original, defaced)
    to_voxel = np.linalg.inv(affine)
    series = []  # (dataset, pixels as (frames, rows, cols) view, voxel indices per frame)
    for path in files:
        ds = pydicom.dcmread(path)
        pixels = _frames(ds, path)
        stack = pixels if pixels.ndim == 3 else pixels[None]
        series.append((ds, pixels, stack, [_voxels(ds, i, to_voxel, before.shape, path) for i in range(len(stack))]))
    stored = np.concatenate([stack.reshape(len(stack), -1).ravel() for _, _, stack, _ in series])
    values = np.concatenate([before[tuple(ix)] for *_, voxel_sets in series for ix in voxel_sets])
    gain, offset = _fit(stored.astype(np.float64), values, files[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    written, changed_total = [], 0
    for (ds, pixels, stack, voxel_sets), path in zip(series, files, strict=True):
        for frame, ix in zip(stack, voxel_sets, strict=True):
            changed = (after[tuple(ix)] != before[tuple(ix)]).reshape(frame.shape)
            new = gain * after[tuple(ix)].reshape(frame.shape) + offset
            frame[changed] = _to_dtype(new[changed], frame.dtype)
            changed_total += int(changed.sum())
        written.append(_write(ds, pixels, out_dir / path.name, mode))
    return DefacedDicom(written, changed_total, gain, offset)


def _volumes(original: Path, defaced: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both NIfTI volumes (scaled values, 3D) and their shared affine."""
    images = []
    for path in (original, defaced):
        try:
            images.append(cast(nib.Nifti1Image, nib.load(path)))  # NIfTI-2 images are Nifti1Image subclasses
        except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
            raise MrishareError(f"not a readable NIfTI file ({type(exc).__name__})", path) from None
    if images[0].shape != images[1].shape or not np.allclose(images[0].affine, images[1].affine):
        raise MrishareError("defaced NIfTI is not on the original's grid", defaced)
    before, after = (np.asanyarray(img.dataobj, dtype=np.float64).reshape(img.shape[:3]) for img in images)
    return before, after, images[0].affine


def _count(ds: Dataset) -> int:
    """Frames in the dataset (1 for classic images)."""
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def _frames(ds: Dataset, path: Path) -> np.ndarray:
    """The stored pixels, writable: (rows, cols) or (frames, rows, cols)."""
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        raise MrishareError("defacing needs greyscale pixel data", path)
    try:
        return np.array(ds.pixel_array)
    except (AttributeError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise MrishareError(f"cannot decode pixel data ({type(exc).__name__})", path) from None


def _plane(ds: Dataset, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame `index`: ImagePositionPatient, ImageOrientationPatient (6) and PixelSpacing (row, col)."""
    def find(keyword: str, group: str) -> object:
        if "PerFrameFunctionalGroupsSequence" in ds:
            for groups in (ds.PerFrameFunctionalGroupsSequence[index], ds.get("SharedFunctionalGroupsSequence",
                                                                              [Dataset()])[0]):
                if group in groups and keyword in groups[group][0]:
                    return groups[group][0][keyword].value
        return ds.get(keyword)

    position = find("ImagePositionPatient", "PlanePositionSequence")
    orientation = find("ImageOrientationPatient", "PlaneOrientationSequence")
    spacing = find("PixelSpacing", "PixelMeasuresSequence")
    if position is None or orientation is None or spacing is None:
        raise MrishareError(f"frame {index + 1} has no position, orientation or pixel spacing")
    return (np.array(position, float), np.array(orientation, float), np.array(spacing, float))


def _voxels(ds: Dataset, index: int, to_voxel: np.ndarray, shape: tuple, path: Path) -> np.ndarray:
    """NIfTI voxel indices (3, rows*cols) of every pixel centre of frame `index`."""
    try:
        position, orientation, spacing = _plane(ds, index)
    except MrishareError as error:
        raise MrishareError(str(error), path) from None
    rows, cols = np.indices((int(ds.Rows), int(ds.Columns))).reshape(2, -1)
    # PS3.3 C.7.6.2.1.1: the first orientation triplet runs along a row (column index), the second down a column.
    lps = (position[:, None] + np.outer(orientation[:3], cols * spacing[1])
           + np.outer(orientation[3:], rows * spacing[0]))
    ras = RAS_TO_LPS @ lps
    continuous = to_voxel[:3, :3] @ ras + to_voxel[:3, 3:4]
    voxels = np.rint(continuous).astype(int)
    if np.abs(continuous - voxels).max() > 0.1 or (voxels < 0).any() or \
            (voxels >= np.array(shape)[:, None]).any():
        raise MrishareError(f"frame {index + 1} does not lie on the NIfTI's voxel grid", path)
    return voxels


def _fit(stored: np.ndarray, values: np.ndarray, where: Path) -> tuple[float, float]:
    """stored = gain * value + offset by least squares; refuse a map that misses the stored values."""
    design = np.stack([values, np.ones_like(values)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, stored, rcond=None)
    misfit = np.mean(np.abs(design @ (gain, offset) - stored) > 1.0)
    if not np.isfinite(gain) or gain == 0 or misfit > MAX_MISFIT:
        raise MrishareError(f"the NIfTI does not match the DICOM pixels ({misfit:.1%} off); series withheld", where)
    return float(gain), float(offset)


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip into an integer pixel type."""
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def _write(ds: Dataset, pixels: np.ndarray, out: Path, mode: str) -> Path:
    """Store the new pixels uncompressed, mark the file as derived and defaced, write atomically."""
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.BurnedInAnnotation = "NO"
    ds.DerivationDescription = f"face removed from pixel data ({mode}, mrishare)"
    method = list(ds.get("DeidentificationMethod", []) or []) if not isinstance(
        ds.get("DeidentificationMethod"), str) else [ds.DeidentificationMethod]
    if f"{mode} (face)" not in method:
        ds.DeidentificationMethod = [*method, f"{mode} (face)"]
    codes = list(ds.get("DeidentificationMethodCodeSequence", []))
    if not any(item.get("CodeValue") == CLEAN_VISUAL_FEATURES[0] for item in codes):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = (CLEAN_VISUAL_FEATURES[0], "DCM",
                                                                         CLEAN_VISUAL_FEATURES[1])
        ds.DeidentificationMethodCodeSequence = Sequence([*codes, item])
    ds.PatientIdentityRemoved = "YES"
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def deface_for_release(series: SeriesInput, mode: str, work: Path, anatomical: frozenset[str],
                       engine: str = "dcm2niix", cancel: threading.Event | None = None,
                       subject: str = "scan") -> EventStream[DefacedDicom | None]:
    """Deface one de-identified series before its DICOM leaves; None if it is not an anatomical head scan.

    Convert, deface (a reface that is no stranger falls back to deface), write the voxels back into
    copies of the DICOM, convert those back and face-check them. Any failure raises MrishareError:
    the caller withholds the series, it never leaves with a face.
    """
    # SimpleITK, dlib and the converters only when DICOM leaves
    from tui.core.nifti import conversion as nifti
    from tui.core.nifti import deface as deface_mod
    from tui.core.nifti.facecheck import face_check

    converted = yield from nifti.convert_series([series], work / "nifti", "deface", engine=engine, cancel=cancel)
    heads = [c for c in converted if isinstance(c, nifti.Converted) and c.suffix in anatomical]
    if not heads:
        return None
    if len(heads) > 1:
        raise MrishareError(f"series {series.key} converts to {len(heads)} volumes; cannot deface its DICOM")
    source = heads[0].nifti
    defaced = work / "defaced.nii.gz"
    result = yield from deface_mod.deface(source, defaced, mode, cancel, subject)
    check = face_check(defaced, mode, original=source)
    if mode == "reface" and not check.passed:
        yield StepNote(subject, "deface", f"reface is not a stranger ({check.summary()}); defacing instead", "warning")
        result = yield from deface_mod.apply_to_other(result, source, defaced, cancel, subject, mode="deface")
        check = face_check(defaced, "deface")
    if not check.passed and not result.is_template:  # the demo head is the template: nobody's face
        raise MrishareError(f"face check failed ({check.summary()})", source)
    written = deface_dicom(series.files, source, defaced, work / "dicom", result.mode)
    back = yield from nifti.convert_series([replace(series, files=written.files)], work / "back", "deface",
                                           engine=engine, cancel=cancel)
    back_heads = [c for c in back if isinstance(c, nifti.Converted)]
    if len(back_heads) != 1:
        raise MrishareError("the defaced DICOM does not convert back to one volume", work / "dicom")
    final = face_check(back_heads[0].nifti, result.mode, original=source if result.mode == "reface" else None)
    if not final.passed and not result.is_template:
        raise MrishareError(f"face check failed on the defaced DICOM ({final.summary()})", work / "dicom")
    yield StepNote(subject, "deface", f"series {series.key} DICOM {result.mode}d: {final.summary()}")
    return written
