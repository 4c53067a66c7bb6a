"""Child-process entry: one dicom2nifti conversion, so a native crash ends only this process.

Run as `python -P -m tui.core.nifti.convert_worker REQUEST.json` from an empty folder (python-gdcm aborts
the process on some overlays, and a `dl/` folder in the cwd breaks `import gdcm`). The request holds
`files` and `output`; the answer goes to `result.json` beside it: status ok, rejected (with
dicom2nifti's validation code) or failed (with the exception type only, never a value).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
import pydicom


def _scalings(datasets: Sequence[pydicom.Dataset]) -> set[tuple[float, float]]:
    """Every (RescaleSlope, RescaleIntercept) pair in the series, per file or per frame."""
    pairs = set()
    for ds in datasets:
        items = [ds]
        for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            for frame in ds.get(group) or []:
                items += list(frame.get("PixelValueTransformationSequence") or [])
        for item in items:
            if "RescaleSlope" in item:
                pairs.add((float(item.RescaleSlope), float(item.get("RescaleIntercept") or 0)))
    return pairs or {(1.0, 0.0)}


def _stored_dtype(ds: pydicom.Dataset) -> np.dtype:
    """The integer type of the stored pixels (BitsAllocated + PixelRepresentation)."""
    bits = int(ds.get("BitsAllocated") or 16)
    return np.dtype(f"{'i' if int(ds.get('PixelRepresentation') or 0) else 'u'}{max(bits, 8) // 8}")


def to_stored_integers(image: nib.Nifti1Image, datasets: Sequence[pydicom.Dataset]) -> nib.Nifti1Image:
    """Undo dicom2nifti's float rescaling: stored integers + scl_slope/scl_inter (same values, 1/4 the size)."""
    data = np.asanyarray(image.dataobj)
    if data.dtype.kind != "f":
        return image
    pairs = _scalings(datasets)
    dtype = _stored_dtype(datasets[0])
    if len(pairs) == 1:
        slope, inter = pairs.pop()
        stored = np.rint((data - inter) / slope)
        info = np.iinfo(dtype)
        exact = np.allclose(stored * slope + inter, data, rtol=0, atol=abs(slope) * 1e-3)
        if exact and stored.min() >= info.min and stored.max() <= info.max:
            result = nib.Nifti1Image(stored.astype(dtype), image.affine, image.header)
            result.header.set_data_dtype(dtype)
            result.header.set_slope_inter(slope, inter)  # after construction: the constructor resets it
            return result
    header = image.header.copy()
    header.set_data_dtype(np.float32)
    return nib.Nifti1Image(data.astype(np.float32), image.affine, header)


def convert(files: list[Path], output: Path) -> None:
    """dicom2nifti on the given files (no folder copy), written as stored integers to `output`."""
    from dicom2nifti import common
    from dicom2nifti.convert_dicom import dicom_array_to_nifti

    datasets = [pydicom.dcmread(p, defer_size="1 KB", force=True) for p in files]
    datasets = [ds for ds in datasets if common.is_valid_imaging_dicom(ds)]
    raw = output.with_name("dicom2nifti-raw.nii")
    dicom_array_to_nifti(datasets, str(raw), reorient_nifti=False)
    nib.save(to_stored_integers(cast(nib.Nifti1Image, nib.load(raw)), datasets), output)  # dicom2nifti wrote NIfTI-1
    for extra in raw.parent.glob("dicom2nifti-raw.*"):
        if extra.suffix in (".bval", ".bvec"):
            extra.rename(output.with_suffix(extra.suffix))
    raw.unlink()


def main(argv: list[str]) -> int:
    """Convert one request; exit 0 when `result.json` says ok, 1 otherwise."""
    from dicom2nifti.exceptions import ConversionValidationError

    request_path = Path(argv[0])
    request = json.loads(request_path.read_text())
    try:
        convert([Path(p) for p in request["files"]], Path(request["output"]))
        result = {"status": "ok"}
    except ConversionValidationError as error:
        result = {"status": "rejected", "code": str(error.args[0]) if error.args else ""}
    except MemoryError:
        result = {"status": "failed", "reason": "out of memory"}
    except Exception as error:
        result = {"status": "failed", "reason": type(error).__name__}
    request_path.with_name("result.json").write_text(json.dumps(result))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
