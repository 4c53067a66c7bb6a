"""Discovery: walk a folder, recognise DICOM by content, group Participant -> Patient -> Study -> Series.

Only headers are read (stop before pixel data); truncation is still found by comparing the
declared element lengths with the file size. Every file that is not used gets a one-line reason.
Above a few hundred files the headers are read in worker processes (pydicom is CPU-bound), as
many as there are idle cores.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import struct
import threading
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tui.core.childproc import drop_working_folder, finished_futures, pool_context
from tui.core.config import site_secret
from tui.core.dicom.keys import participant_key
from tui.core.dicom.siemens_protocol import declared_slices
from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepFinished, StepProgress, StepStarted, Throttle, drain
from tui.core.safetext import counted

SUBJECT = "scan"
STEP = "scan"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
PARALLEL_MIN_FILES = 200
CHUNK = 48

# The header elements discovery needs; reading only these skips most private/sequence parsing.
_KEYWORDS = (
    "SpecificCharacterSet", "ImageType", "SOPClassUID", "StudyDate", "SeriesDate", "StudyTime",
    "SeriesTime", "AccessionNumber", "Modality", "StudyDescription", "SeriesDescription",
    "PatientName", "PatientID", "PatientBirthDate", "BodyPartExamined", "ProtocolName",
    "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "InstanceNumber", "NumberOfFrames",
    "Rows", "Columns", "BurnedInAnnotation", "ImagePositionPatient", "ImageOrientationPatient",
    "ImagesInAcquisition",
)
SCAN_TAGS: tuple[BaseTag, ...] = tuple(Tag(k) for k in _KEYWORDS)
_PIXEL_TAGS = {0x7FE00010, 0x7FE00009, 0x7FE00008}
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT", b"SV", b"UV"}
_US_TAGS = {0x00280010, 0x00280011}  # Rows, Columns
_IMAGE_CLASSES = {f"1.2.840.10008.5.1.4.1.1.{n}" for n in ("4", "4.1", "4.3", "2", "2.1", "128", "130", "7")}
"""MR, enhanced MR (and colour), CT, enhanced CT, PET, enhanced PET, secondary capture: never without pixels."""
# SOP classes that are not images, by UID prefix. Such objects can share a SeriesInstanceUID with the
# images they belong to (Philips stores Raw Data next to its enhanced MR): they form a series of their own.
NON_IMAGE_KINDS = {
    "1.2.840.10008.5.1.4.1.1.88.": "structured report",
    "1.2.840.10008.5.1.4.1.1.104.": "encapsulated document",
    "1.2.840.10008.5.1.4.1.1.4.2": "spectroscopy",
    "1.2.840.10008.5.1.4.1.1.66": "raw data",
    "1.2.840.10008.5.1.4.1.1.11.": "presentation state",
}


def object_kind(sop_class: str) -> str:
    """'' for an image SOP class, else what the object is ('raw data', 'presentation state', ...)."""
    return next((kind for prefix, kind in NON_IMAGE_KINDS.items() if sop_class.startswith(prefix)), "")


@dataclass(frozen=True)
class Skipped:
    """A file that is not used, with a one-line reason (never a patient value)."""

    path: Path
    reason: str
    series_uid: str = ""
    """The series the file belongs to, when its header could still be read."""
    lost: bool = False
    """True if the file may hold part of a series (DICOM by content but unreadable, or an OS error)."""


@dataclass(frozen=True)
class Problem:
    """Why a series may be incomplete: `summary` names no file (it may go into a package), `files` does."""

    summary: str
    files: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.summary}: {', '.join(self.files)}" if self.files else self.summary


@dataclass(frozen=True)
class Instance:
    """The header fields of one DICOM file that discovery groups and shows."""

    path: Path
    size: int
    patient_id: str
    patient_name: str
    birth_date: str
    study_uid: str
    study_date: str
    study_time: str
    study_description: str
    accession: str
    series_uid: str
    series_number: int | None
    series_date: str
    series_time: str
    modality: str
    series_description: str
    sop_class: str
    transfer_syntax: str
    instance_number: int | None
    rows: int | None
    cols: int | None
    frames: int
    burned_in: str | None
    image_type: str
    body_part: str
    protocol: str
    position: float | None = None
    """ImagePositionPatient along the slice normal (mm), for finding gaps."""
    declared: int | None = None
    """ImagesInAcquisition: the count the series itself declares."""
    plane: tuple[float, ...] | None = None
    """ImageOrientationPatient, rounded: positions are compared only within one orientation."""


@dataclass(frozen=True)
class DicomDirIndex:
    """A DICOMDIR and what its records point at."""

    path: Path
    found: tuple[Path, ...]
    missing: tuple[Path, ...]


@dataclass
class Series:
    """One series: files sorted by InstanceNumber, sizes, geometry and flags."""

    series_uid: str
    number: int | None
    modality: str
    description: str
    sop_classes: set[str]
    transfer_syntaxes: set[str]
    files: list[Path]
    bytes: int
    rows: int | None
    cols: int | None
    slices: int
    frames: int
    date: str
    time: str
    burned_in: str | None
    image_type: str
    body_part: str
    protocol: str
    kind: str = ""
    """'' for images, else the non-image kind (`object_kind`) of every object in it."""
    problems: list[Problem] = field(default_factory=list)
    """Gaps and unreadable files: a series with problems is withheld unless the user allows it."""

    @property
    def key(self) -> str:
        """Unique within a participant: the SeriesInstanceUID, plus the kind for non-image objects."""
        return f"{self.series_uid}/{self.kind}" if self.kind else self.series_uid


@dataclass
class Study:
    """One study of a patient."""

    study_uid: str
    date: str
    description: str
    accession: str
    series: list[Series]


@dataclass
class Patient:
    """One PatientID's studies (name and birth date: the most frequent values)."""

    patient_id: str
    patient_name: str
    birth_date: str
    studies: list[Study]
    files: int


@dataclass
class Participant:
    """A folder that holds one person's data; `key` is a non-identifying id for logs and events."""

    folder: Path
    key: str
    patients: list[Patient]
    misfiled: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    """What was not read and belongs to no known series (an unreadable folder or file)."""
    chosen: bool = False
    """True once the user chose the first patient as the one to share (the others' files are misfiled)."""
    released: set[str] = field(default_factory=set)
    """`Series.key`s of incomplete series the user chose to share anyway (their gaps are recorded)."""

    @property
    def mixed_patients(self) -> bool:
        """True if the folder holds files of more than one PatientID."""
        return len(self.patients) > 1

    @property
    def main_patient(self) -> Patient | None:
        """The patient with the most files (the participant's own)."""
        return self.patients[0] if self.patients else None

    @property
    def files(self) -> int:
        """Number of usable DICOM files."""
        return sum(p.files for p in self.patients)

    @property
    def bytes(self) -> int:
        """Total size of the usable DICOM files."""
        return sum(s.bytes for p in self.patients for st in p.studies for s in st.series)

    def series(self) -> Iterator[Series]:
        """Every series of every patient and study."""
        for patient in self.patients:
            for study in patient.studies:
                yield from study.series

    def without(self, keys: set[str]) -> Participant:
        """A copy whose main patient lacks the series with these `key`s (withheld from sharing)."""
        patients = []
        for patient in self.patients:
            studies = [replace(st, series=[s for s in st.series if s.key not in keys]) for st in patient.studies]
            studies = [st for st in studies if st.series]
            files = sum(len(s.files) for st in studies for s in st.series)
            patients.append(replace(patient, studies=studies, files=files))
        return replace(self, patients=patients)


@dataclass
class ScanResult:
    """Participants found under `root`, and every unused file (with paths) in `skipped`."""

    root: Path
    participants: list[Participant]
    skipped: list[Skipped]


# ---------------------------------------------------------------- reading one file


def _sniff(head: bytes, size: int) -> bool | None:
    """True: preamble + DICM; False: a bare dataset (no preamble); None: not DICOM."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return None
    vr = head[4:6]
    explicit = vr.isalpha() and vr.isupper()
    if explicit and struct.unpack(">H", head[:2])[0] in (0x0002, 0x0008):
        return False  # explicit VR big endian (retired, still found in archives)
    group, _elem = struct.unpack("<HH", head[:4])
    if group not in (0x0002, 0x0008):
        return None
    if explicit:
        return False
    (length,) = struct.unpack("<L", head[4:8])
    return False if length <= size else None


def _open_error(error: OSError) -> str:
    """A one-line reason for a file that cannot be opened or read, with the OS error."""
    if isinstance(error, PermissionError):
        return f"permission denied ({error.strerror}, errno {error.errno})"
    if error.errno == 40:  # ELOOP
        return "symbolic link loop"
    if error.errno == 2:
        return "broken symbolic link"
    return f"unreadable ({error.strerror or type(error).__name__}, errno {error.errno})"


def _encapsulated_end(fp: BinaryIO, little: bool) -> bool:
    """Walk encapsulated fragments; True if the sequence delimiter is reached before end of file."""
    fmt = "<HHL" if little else ">HHL"
    while True:
        item = fp.read(8)
        if len(item) < 8:
            return False
        group, elem, length = struct.unpack(fmt, item)
        if (group, elem) == (0xFFFE, 0xE0DD):
            return True
        if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            return False
        fp.seek(length, os.SEEK_CUR)


def _pixel_problem(fp: BinaryIO, ds: Dataset, size: int) -> str | None:
    """Check the pixel data element at the file position: does its value fit in the file?"""
    little = bool(ds.original_encoding[1])  # None (encoding unknown) reads as big endian
    end = "<" if little else ">"
    header = fp.read(12)
    if len(header) < 8:
        return None if len(header) < 4 else "truncated in pixel data"
    group, elem = struct.unpack(end + "HH", header[:4])
    if (group << 16 | elem) not in _PIXEL_TAGS:
        return None
    vr = header[4:6]
    if not (vr.isalpha() and vr.isupper()):  # implicit VR (also seen inside explicit-VR files)
        (length,), start = struct.unpack(end + "L", header[4:8]), 8
    elif vr in _LONG_VRS:
        if len(header) < 12:
            return "truncated in pixel data"
        (length,), start = struct.unpack(end + "L", header[8:12]), 12
    else:
        (length,), start = struct.unpack(end + "H", header[6:8]), 8
    fp.seek(start - len(header), os.SEEK_CUR)
    if length == 0xFFFFFFFF:
        return None if _encapsulated_end(fp, little) else "truncated in pixel data"
    return "truncated in pixel data" if fp.tell() + length > size else None


def _header_problem(fp: BinaryIO, ds: Dataset, size: int, deflated: bool) -> str | None:
    """Find truncation: a skipped value ran past the end, a short last value, or short pixel data."""
    if deflated:  # the whole deflated stream was already inflated (zlib checks its end)
        return None
    pos = fp.tell()
    if pos > size:
        return "truncated (header ends early)"
    if pos < size:
        return _pixel_problem(fp, ds, size)
    tags = list(ds.keys())
    if tags:
        last = ds.get_item(tags[-1], keep_deferred=True)
        if isinstance(last, RawDataElement) and last.value is not None and len(last.value) < last.length:
            return "truncated (header ends early)"
        if _is_image(ds):  # the file ends where a whole element ended, before any pixel data
            return "truncated (no pixel data)"
    return None


def _is_image(ds: Dataset) -> bool:
    """True if a stored object (it has a series) says it is an image (Rows, or an image SOP class): it must
    have pixel data. A fragment without a series stays 'not a stored object' (`read_instance`)."""
    meta = getattr(ds, "file_meta", None) or {}
    sop_class = _text(ds, 0x00080016) or str(meta.get("MediaStorageSOPClassUID", ""))
    return bool(_series_uid(ds)) and (0x00280010 in ds or sop_class in _IMAGE_CLASSES)


def _read_dataset(path: Path, specific_tags: Iterable[BaseTag] | None) -> tuple[Dataset, int] | Skipped:
    """Open, sniff and parse one file's header; a Skipped with the reason if it is unusable."""
    try:
        info = path.stat()
        size = info.st_size
        if not stat.S_ISREG(info.st_mode):
            return Skipped(path, "not a regular file")
        if size == 0:
            return Skipped(path, "empty file")
        with open(path, "rb") as fp:
            head = fp.read(132)
            kind = _sniff(head, size)
            if kind is None:
                return Skipped(path, "not DICOM")
            fp.seek(0)
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=not kind,
                                     specific_tags=list(specific_tags) if specific_tags else None)
            except zlib.error:
                return Skipped(path, "corrupt deflated data", lost=True)
            except (EOFError, OSError, struct.error):
                return Skipped(path, "truncated (header ends early)", lost=True)
            except Exception as error:
                return Skipped(path, f"corrupt header ({type(error).__name__})", lost=True)
            meta = getattr(ds, "file_meta", None) or {}
            if damaged := _damaged_meta(meta):
                return Skipped(path, damaged, lost=True)
            if kind and not meta.get("TransferSyntaxUID") and 0x00080016 not in ds:
                return Skipped(path, "corrupt after DICM preamble", lost=True)
            deflated = str(meta.get("TransferSyntaxUID", "")) == DeflatedExplicitVRLittleEndian
            problem = _header_problem(fp, ds, size, deflated)
    except OSError as error:
        return Skipped(path, _open_error(error), lost=True)
    if problem:
        return Skipped(path, problem, series_uid=_series_uid(ds), lost=True)
    return ds, size


def _damaged_meta(meta: Any) -> str | None:
    """Why the file meta cannot be used (an element with an unknown VR or a bad value), or None."""
    for tag in list(meta.keys()):
        try:
            meta[tag]  # converts the raw element: an unknown VR raises here, not later in a caller
        except (NotImplementedError, ValueError, TypeError, KeyError) as error:
            kind = "unknown VR" if isinstance(error, NotImplementedError) else "bad value"
            return f"damaged file meta: element ({tag.group:04X},{tag.element:04X}) ({kind})"
    return None


def _series_uid(ds: Dataset) -> str:
    """The SeriesInstanceUID of a partly read header, or '' if that part is damaged too."""
    try:
        return _text(ds, 0x0020000E)
    except Exception:
        return ""


def read_header(path: Path) -> Dataset | Skipped:
    """The full header of one file (no pixel data), or why it cannot be used."""
    got = _read_dataset(path, None)
    if isinstance(got, Skipped):
        return got
    if not len(got[0]):
        return Skipped(path, "no data set after the file meta (empty or zeroed)")
    return got[0]


def _text(ds: Dataset, tag: int) -> str:
    """A string value without pydicom's conversion cost (ASCII VRs: UI, CS, DA, TM, IS)."""
    elem = ds.get_item(tag)
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return "" if value is None else str(value).strip()


def _decoded(ds: Dataset, tag: int) -> str:
    """A character-set dependent string (PN, LO, SH); plain ASCII is decoded directly, the rest by pydicom."""
    elem = ds.get_item(tag)
    if elem is None or elem.value is None:
        return ""
    raw = elem.value
    if isinstance(raw, bytes) and raw.isascii() and b"\x1b" not in raw:  # no ISO 2022 escapes
        return raw.decode("ascii").strip(" \x00")
    value = ds[tag].value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return "\\".join(str(v) for v in value) if isinstance(value, MultiValue) else str(value).strip()


def _int(ds: Dataset, tag: int) -> int | None:
    """An integer value (US from its two bytes, IS from its text), or None if absent or malformed."""
    elem = ds.get_item(tag)
    if elem is None or elem.value in (None, b""):
        return None
    value = elem.value
    if tag in _US_TAGS:
        if isinstance(value, bytes):
            if len(value) < 2:
                return None
            # pydicom's get_item overload omits RawDataElement, the only kind with a bytes US value
            return int(struct.unpack("<H" if elem.is_little_endian else ">H", value[:2])[0])  # type: ignore[attr-defined]
        return int(value[0] if isinstance(value, list | tuple) else value)
    text = _text(ds, tag).split("\\")[0]
    try:
        return int(float(text))
    except ValueError:
        return None


def _dicomdir(path: Path) -> DicomDirIndex | Skipped:
    """Parse a DICOMDIR and resolve each record's ReferencedFileID (case-insensitively)."""
    try:
        ds = pydicom.dcmread(path, force=True)
        records = ds.get("DirectoryRecordSequence") or []
        found: list[Path] = []
        missing: list[Path] = []
        for record in records:
            ref = record.get("ReferencedFileID")
            if ref is None:
                continue
            parts = [ref] if isinstance(ref, str) else list(ref)
            target = _resolve(path.parent, [str(p) for p in parts])
            (found if target.is_file() else missing).append(target)
    except Exception as error:
        return Skipped(path, f"DICOMDIR unreadable ({type(error).__name__})")
    return DicomDirIndex(path, tuple(found), tuple(missing))


def _resolve(base: Path, parts: list[str]) -> Path:
    """Join ReferencedFileID parts to `base`, matching case-insensitively where the exact name is absent."""
    current = base
    for part in parts:
        exact = current / part
        if exact.exists() or not current.is_dir():
            current = exact
            continue
        matches = [c for c in current.iterdir() if c.name.lower() == part.lower()]
        current = matches[0] if matches else exact
    return current


def read_instance(path: Path) -> Instance | DicomDirIndex | Skipped:
    """Read the header fields discovery needs from one file (content sniffing, headers only)."""
    got = _read_dataset(path, SCAN_TAGS)
    if isinstance(got, Skipped):
        return got
    ds, size = got
    meta = getattr(ds, "file_meta", None) or {}
    if str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS:
        return _dicomdir(path)
    sop_class = _text(ds, 0x00080016) or str(meta.get("MediaStorageSOPClassUID", ""))
    series_uid = _text(ds, 0x0020000E)
    if not sop_class or not series_uid:
        full = read_header(path)  # rare: say whether anything at all is there
        missing = " and ".join(name for name, value in (("SOPClassUID", sop_class), ("SeriesInstanceUID", series_uid))
                               if not value)
        return full if isinstance(full, Skipped) else Skipped(path, f"DICOM without {missing} (not a stored object)")
    implicit, little = ds.original_encoding
    tsyntax = str(meta.get("TransferSyntaxUID", "")) or (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else "1.2.840.10008.1.2.2")
    burned = _text(ds, 0x00280301).upper() or None
    return Instance(
        path=path, size=size,
        patient_id=_decoded(ds, 0x00100020), patient_name=_decoded(ds, 0x00100010),
        birth_date=_text(ds, 0x00100030),
        study_uid=_text(ds, 0x0020000D), study_date=_text(ds, 0x00080020), study_time=_text(ds, 0x00080030),
        study_description=_decoded(ds, 0x00081030), accession=_decoded(ds, 0x00080050),
        series_uid=series_uid, series_number=_int(ds, 0x00200011),
        series_date=_text(ds, 0x00080021), series_time=_text(ds, 0x00080031),
        modality=_text(ds, 0x00080060), series_description=_decoded(ds, 0x0008103E),
        sop_class=sop_class, transfer_syntax=tsyntax, instance_number=_int(ds, 0x00200013),
        rows=_int(ds, 0x00280010), cols=_int(ds, 0x00280011), frames=max(1, _int(ds, 0x00280008) or 1),
        burned_in=burned, image_type=_text(ds, 0x00080008), body_part=_decoded(ds, 0x00180015),
        protocol=_decoded(ds, 0x00181030), position=_slice_position(ds), declared=_int(ds, 0x00201002),
        plane=_plane(ds),
    )


def _numbers(ds: Dataset, tag: int, count: int) -> list[float] | None:
    """`count` decimal numbers of a DS element, or None if absent or malformed."""
    parts = _text(ds, tag).split("\\")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        return None
    return values if len(values) == count else None


def _plane(ds: Dataset) -> tuple[float, ...] | None:
    """ImageOrientationPatient rounded to 3 decimals, or None."""
    orientation = _numbers(ds, 0x00200037, 6)
    return tuple(round(v, 3) for v in orientation) if orientation else None


def _slice_position(ds: Dataset) -> float | None:
    """ImagePositionPatient projected on the slice normal (cross product of the orientation's rows)."""
    position, orientation = _numbers(ds, 0x00200032, 3), _numbers(ds, 0x00200037, 6)
    if position is None or orientation is None:
        return None
    r, c = orientation[:3], orientation[3:]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    return sum(p * n for p, n in zip(position, normal, strict=True))


def _read_chunk(paths: list[Path]) -> list[Instance | DicomDirIndex | Skipped]:
    """Worker-process entry: read a chunk of files."""
    return [read_instance(p) for p in paths]


# ---------------------------------------------------------------- walking


def _walk(root: Path, skipped: list[Skipped]) -> list[Path]:
    """Every regular file under `root` (sorted), following folder symlinks once (a folder already read,
    e.g. a link loop, is not read again); unreadable folders and repeated links go to `skipped`."""
    files: list[Path] = []
    stack = [root]
    seen = {_identity(root)}
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            skipped.append(Skipped(folder, f"folder {_open_error(error)}", lost=True))
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_dir():
                    identity = _identity(path)
                    if identity in seen:
                        skipped.append(Skipped(path, "symbolic link to a folder that is read already (loop or "
                                                     "second link; not read twice)"))
                    else:
                        seen.add(identity)
                        stack.append(path)
                else:
                    files.append(path)
            except OSError as error:
                skipped.append(Skipped(path, _open_error(error)))
    return sorted(files)


def _identity(folder: Path) -> tuple[int, int]:
    """(device, inode) of a folder after following links: the same folder reached twice has one identity."""
    info = folder.stat()
    return info.st_dev, info.st_ino


# ---------------------------------------------------------------- grouping


def _most_common(values: Iterable[str]) -> str:
    """The most frequent value (ties: first seen)."""
    counts = Counter(values)
    return counts.most_common(1)[0][0] if counts else ""


def _series(instances: list[Instance]) -> Series:
    """Build one Series from its instances."""
    instances.sort(key=lambda i: (i.instance_number if i.instance_number is not None else 1 << 31, str(i.path)))
    first = instances[0]
    flags = {i.burned_in for i in instances}
    burned = "YES" if "YES" in flags else "NO" if flags == {"NO"} else None
    frames = sum(i.frames for i in instances)
    return Series(
        series_uid=first.series_uid, number=first.series_number, modality=first.modality,
        description=first.series_description, sop_classes={i.sop_class for i in instances},
        transfer_syntaxes={i.transfer_syntax for i in instances}, files=[i.path for i in instances],
        bytes=sum(i.size for i in instances), rows=first.rows, cols=first.cols, slices=frames, frames=frames,
        date=first.series_date or first.study_date, time=first.series_time or first.study_time,
        burned_in=burned, image_type=first.image_type, body_part=first.body_part, protocol=first.protocol,
        kind=object_kind(first.sop_class), problems=_gaps(instances),
    )


def _gaps(instances: list[Instance]) -> list[Problem]:
    """Missing slices, seen in slice positions, else in instance numbers, and against the declared count."""
    if any(i.frames > 1 for i in instances):
        return []  # a multi-frame object is whole or unreadable (the reader checks its length)
    problems = _position_gaps(instances)
    if not problems:
        problems = _number_gaps(instances)
    declared = {i.declared for i in instances}
    if len(declared) == 1 and (count := declared.pop()) and count > len(instances):
        problems.append(Problem(f"the series declares {count} images (ImagesInAcquisition), "
                                f"{len(instances)} were read"))
    return problems


def _position_gaps(instances: list[Instance]) -> list[Problem]:
    """A step between neighbouring slice positions well above the usual one means slices are missing."""
    if any(i.position is None for i in instances) or len({i.plane for i in instances}) > 1:
        return []  # no positions, or several orientations (a 3-plane localizer): no slice stack to check
    at: dict[float, Instance] = {}
    for inst in sorted(instances, key=lambda i: (i.position, str(i.path))):
        at.setdefault(round(float(inst.position or 0.0), 2), inst)
    positions = sorted(at)
    first = min(instances, key=lambda i: (i.instance_number is None, i.instance_number or 0))
    if round(float(first.position or 0.0), 2) == positions[-1]:
        positions.reverse()  # count slices the way the scanner numbered them
    steps = [abs(b - a) for a, b in pairwise(positions)]
    if len(steps) < 2:
        return []
    usual = sorted(steps)[len(steps) // 2]
    if usual < 0.01:
        return []
    problems, slice_number = [], 1
    total = len(positions) + sum(max(0, round(step / usual) - 1) for step in steps)
    for index, step in enumerate(steps):
        slice_number += 1
        missing = round(step / usual) - 1
        if step > 1.5 * usual and missing >= 1:
            before, after = at[positions[index]].path.name, at[positions[index + 1]].path.name
            what = "1 slice" if missing == 1 else f"{missing} slices"
            problems.append(Problem(f"gap at slice {slice_number} of {total}: {what} missing",
                                    (f"between {before} and {after}",)))
            slice_number += missing
    return problems


def _number_gaps(instances: list[Instance]) -> list[Problem]:
    """InstanceNumbers that skip values (only used where slice positions cannot tell)."""
    numbers = sorted({i.instance_number for i in instances if i.instance_number is not None})
    if len(numbers) < 3 or len(numbers) != len(instances):
        return []
    missing = [n for n in range(numbers[0], numbers[-1] + 1) if n not in set(numbers)]
    if not missing:
        return []
    shown = ", ".join(str(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
    return [Problem(f"instance numbers {numbers[0]}-{numbers[-1]} lack {len(missing)}: {shown}")]


def _patients(instances: list[Instance]) -> list[Patient]:
    """Group instances by PatientID -> StudyInstanceUID -> SeriesInstanceUID and object kind; most files first."""
    tree: dict[str, dict[str, dict[tuple[str, str], list[Instance]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for inst in instances:
        tree[inst.patient_id][inst.study_uid][(inst.series_uid, object_kind(inst.sop_class))].append(inst)
    patients = []
    for pid, studies in tree.items():
        members = [i for st in studies.values() for se in st.values() for i in se]
        study_list = []
        for study_uid, series in studies.items():
            firsts = [se[0] for se in series.values()]
            series_list = sorted((_series(se) for se in series.values()),
                                 key=lambda s: (s.number if s.number is not None else 1 << 31, s.series_uid, s.kind))
            study_list.append(Study(study_uid=study_uid, date=firsts[0].study_date,
                                    description=firsts[0].study_description, accession=firsts[0].accession,
                                    series=series_list))
        study_list.sort(key=lambda s: (s.date, s.study_uid))
        patients.append(Patient(patient_id=pid, patient_name=_most_common(i.patient_name for i in members),
                                birth_date=_most_common(i.birth_date for i in members), studies=study_list,
                                files=len(members)))
    patients.sort(key=lambda p: -p.files)
    return patients


def _owner(path: Path, folders: dict[str, int]) -> int | None:
    """Index of the folder in `folders` (str path -> index) that contains `path`, if any."""
    text = str(path)
    while True:
        parent = os.path.dirname(text) or "."  # a relative path ends at "." (a scan of the working folder)
        if parent in folders:
            return folders[parent]
        if parent in (text, "."):
            return None
        text = parent


def _participant_folders(root: Path, instances: list[Instance], indexes: list[DicomDirIndex],
                         as_participant: bool) -> list[Path]:
    """Apply the study-folder rule (see module docs of `scan_events`) and return participant folders."""
    counts: dict[Path, Counter[str]] = defaultdict(Counter)
    direct: set[Path] = {d.path.parent for d in indexes}
    for inst in instances:
        direct.add(inst.path.parent)
        folder = inst.path.parent
        while True:
            counts[folder][inst.patient_id] += 1
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
    children: dict[Path, list[Path]] = defaultdict(list)
    for folder in counts:
        if folder != root:
            children[folder.parent].append(folder)

    def descend(folder: Path) -> list[Path]:
        if (as_participant and folder == root) or folder in direct:
            return [folder]
        branch = folder  # follow a chain of single sub-folders (P1/DICOM/...) to where it branches
        while branch not in direct and len(children.get(branch, [])) == 1:
            branch = children[branch][0]
        if branch in direct:
            return [folder]
        subs = sorted(children.get(branch, []))
        dominant = Counter(counts[s].most_common(1)[0][0] for s in subs)
        if len(dominant) >= 2 and dominant.most_common(1)[0][1] * 2 <= len(subs):
            return [p for s in subs for p in descend(s)]
        return [folder]

    return descend(root) if counts else []


# ---------------------------------------------------------------- the scan


def _idle_cores() -> int:
    """Cores this scan can use: all of them on an idle machine, one when others keep them busy
    (extra reader processes then only add start-up and hand-over cost)."""
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, cores - int(os.getloadavg()[0]) + 1))


def _context() -> multiprocessing.context.BaseContext:
    """`fork` when this process has no other thread (children start at once, modules loaded);
    else `forkserver` (forking a threaded process can deadlock), preloading this module."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return pool_context("fork", [])
    return pool_context("forkserver", [__name__])


def _read_all(files: list[Path], cancel: threading.Event | None, workers: int | None
              ) -> EventStream[list[Instance | DicomDirIndex | Skipped]]:
    """Read every file, in worker processes when there are many; yields throttled progress."""
    total = len(files)
    throttle = Throttle()
    results: list[Instance | DicomDirIndex | Skipped] = []
    workers = workers or _idle_cores()
    if total < PARALLEL_MIN_FILES or workers < 2:
        for done, path in enumerate(files, 1):
            if cancel is not None and cancel.is_set():
                raise MrishareError("scan cancelled")
            results.append(read_instance(path))
            if throttle.ready(done, total):
                yield StepProgress(SUBJECT, STEP, done, total)
        return results
    chunks = [files[i:i + CHUNK] for i in range(0, total, CHUNK)]
    ordered: list[list[Instance | DicomDirIndex | Skipped]] = [[] for _ in chunks]
    done = 0
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=_context(),
                             initializer=drop_working_folder) as pool:
        by_chunk = {pool.submit(_read_chunk, chunk): index for index, chunk in enumerate(chunks)}
        for future in finished_futures(pool, by_chunk, cancel, "scan"):
            ordered[by_chunk[future]] = future.result()
            done += len(ordered[by_chunk[future]])
            if throttle.ready(done, total):
                yield StepProgress(SUBJECT, STEP, done, total)
    for part in ordered:
        results.extend(part)
    return results


def scan_events(root: Path, cancel: threading.Event | None = None, workers: int | None = None,
                as_participant: bool = False) -> EventStream[ScanResult]:
    """Scan `root` for DICOM and split it into participants.

    Participant rule: a folder that directly holds DICOM files or a DICOMDIR (or the root with
    `as_participant`) is one participant. Otherwise each sub-folder holding DICOM gets its dominant
    PatientID; if at least two distinct IDs exist and none is dominant in more than half of the
    sub-folders, the folder is a study folder and each sub-folder is examined the same way;
    otherwise the folder is one participant whose sub-folders are series or study folders.
    A chain of single sub-folders is looked through: the rule applies where it branches, so a
    folder above a study folder (data/corpus/files/...) still finds the participants inside.
    """
    root = Path(root)
    if not root.is_dir():
        raise MrishareError("not a folder", where=root)
    yield StepStarted(SUBJECT, STEP, None)
    skipped: list[Skipped] = []
    files = _walk(root, skipped)
    yield StepProgress(SUBJECT, STEP, 0, len(files))
    results = yield from _read_all(files, cancel, workers)
    instances = [r for r in results if isinstance(r, Instance)]
    indexes = [r for r in results if isinstance(r, DicomDirIndex)]
    skipped.extend(r for r in results if isinstance(r, Skipped))
    for dicomdir in indexes:
        skipped.append(Skipped(dicomdir.path, f"DICOMDIR (index; {len(dicomdir.found)} referenced files resolved)"))
        skipped.extend(Skipped(p, "referenced by DICOMDIR but missing") for p in dicomdir.missing)
    skipped.sort(key=lambda s: str(s.path))
    folders = _participant_folders(root, instances, indexes, as_participant)
    secret = site_secret() if folders else b""
    index = {str(f): n for n, f in enumerate(folders)}
    members: list[list[Instance]] = [[] for _ in folders]
    unused: list[list[Skipped]] = [[] for _ in folders]
    for inst in instances:
        owner = _owner(inst.path, index)
        if owner is not None:
            members[owner].append(inst)
    for item in skipped:
        owner = index.get(str(item.path), _owner(item.path, index))
        if owner is not None:
            unused[owner].append(item)
    participants = []
    for folder, mine, their_skipped in zip(folders, members, unused, strict=True):
        patients = _patients(mine)
        main = patients[0].patient_id
        participant = Participant(
            folder=folder, key=participant_key(folder, secret), patients=patients,
            misfiled=sorted(i.path for i in mine if i.patient_id != main),
            skipped=their_skipped,
        )
        _attach_lost(participant)
        _check_protocol_counts(participant)
        participants.append(participant)
    series = sum(len(list(p.series())) for p in participants)
    yield StepFinished(SUBJECT, STEP, f"{len(instances)} DICOM files: {counted(len(participants), 'participant')}, "
                                      f"{series} series; {len(skipped)} unused")
    return ScanResult(root=root, participants=participants, skipped=skipped)


def _attach_lost(participant: Participant) -> None:
    """Tie each unreadable file to its series (by SeriesInstanceUID, else by folder); the rest, and every
    unreadable folder, become the participant's own problems."""
    images = [s for s in participant.series() if not s.kind]
    for item in participant.skipped:
        if not item.lost:
            continue
        what = "folder" if item.reason.startswith("folder ") else "file"
        problem = Problem(f"a {what} could not be read ({item.reason.removeprefix('folder ')})", (item.path.name,))
        if item.series_uid:  # a known series, or one of which nothing else was read
            owners = [s for s in images if s.series_uid == item.series_uid]
        else:
            owners = [s for s in images if any(f.parent == item.path.parent for f in s.files)]
        for series in owners:
            series.problems.append(problem)
        if not owners:
            participant.problems.append(Problem(f"not read ({item.reason})", (str(item.path),)))


def _check_protocol_counts(participant: Participant) -> None:
    """A series that looks whole otherwise (no gap, no unreadable file) but has fewer images than the slices its
    Siemens protocol declares lost its first or last slices: nothing else can tell."""
    for series in participant.series():
        if series.kind or series.problems or series.frames != len(series.files):
            continue
        count = declared_slices(series.files[0], series.image_type)
        if count and count > len(series.files):
            series.problems.append(Problem(f"the series declares {count} slices (Siemens protocol, "
                                           f"sSliceArray.lSize), {len(series.files)} were read"))


def scan(root: Path, cancel: threading.Event | None = None, workers: int | None = None,
         as_participant: bool = False) -> ScanResult:
    """Scan without progress events (see `scan_events`)."""
    return drain(scan_events(root, cancel=cancel, workers=workers, as_participant=as_participant))
