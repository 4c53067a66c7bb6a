"""The bytes of a de-identified file: untouched elements copied from the source byte for byte.

Pixel data is never re-encoded, so released images keep it byte-identical; the byte range of the
pixel data value is returned so the leak gate does not search it as text.
"""

from __future__ import annotations

from io import BytesIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

PIXEL_TAG = 0x7FE00010
# PS3.5 7.1.2: explicit VRs with a 2-byte reserved field and a 4-byte length (12-byte header).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})


def serialize(ds: Dataset, source: bytes | None = None) -> tuple[bytes, tuple[int, int] | None]:
    """The file bytes, and the byte range of the pixel data value (not searched as text).

    When `ds` was read from `source` in the same little-endian syntax it is written in, untouched
    elements are copied from `source` byte for byte (fast, and pixel data stays identical by
    construction); otherwise pydicom writes the whole dataset.
    """
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    original = str(meta.get("TransferSyntaxUID", "") or "")
    syntax = original
    if not syntax:
        syntax = ImplicitVRLittleEndian if ds.original_encoding[0] in (True, None) else ExplicitVRLittleEndian
    if syntax == DeflatedExplicitVRLittleEndian:
        syntax = ExplicitVRLittleEndian  # pixel data of a deflated file is native: same bytes, not deflated
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta
    if source is not None and original == syntax and syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        return _splice(ds, source, syntax == ImplicitVRLittleEndian)
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    data = buffer.getvalue()
    element = ds.get_item(PIXEL_TAG)
    if element is None or element.value is None or max(ds._dict) != PIXEL_TAG:
        return data, None
    undefined = getattr(element, "is_undefined_length", False) or getattr(element, "length", 0) == 0xFFFFFFFF
    trailer = 8 if undefined else 0
    length = len(element.value) + (len(element.value) & 1) + trailer
    return data, (len(data) - length, len(data))


def _splice(ds: Dataset, source: bytes, implicit: bool) -> tuple[bytes, tuple[int, int] | None]:
    """Write preamble, new file meta, then each top-level element: raw (untouched) ones as runs of
    the source bytes, changed ones encoded by pydicom."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    fp.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(fp, ds.file_meta, enforce_standard=True)
    fp.is_implicit_VR = implicit
    encodings = ds._character_set
    store = ds._dict
    run: list[int] = []
    pixels = None
    for key in sorted(store):
        elem = store[key]
        if isinstance(elem, RawDataElement) and elem.value_tell is not None and elem.length != 0xFFFFFFFF:
            head = 8 if implicit or elem.VR not in _LONG_VRS else 12
            start, end = elem.value_tell - head, elem.value_tell + elem.length
            if key == PIXEL_TAG:
                _flush(fp, source, run)
                pixels = (fp.tell() + head, fp.tell() + head + elem.length)
            if run and run[1] == start:
                run[1] = end
            else:
                _flush(fp, source, run)
                run[:] = [start, end]
            continue
        _flush(fp, source, run)
        write_data_element(fp, ds[key], encodings)
    _flush(fp, source, run)
    return fp.getvalue(), pixels


def _flush(fp: DicomBytesIO, source: bytes, run: list[int]) -> None:
    """Copy a pending run of untouched source bytes and clear it."""
    if run:
        fp.write(source[run[0]:run[1]])
        run.clear()
