"""PS3.15 Annex E de-identification of datasets and of whole participants.

`deidentify_dataset(ds, ctx)` applies Table E.1-1 (Basic Profile + options, via `annex_e.lookup`)
to every element at every depth: nested sequences, functional groups, private blocks (removed
unless Retain Safe Private keeps an E.3.10-1 element), overlays 60xx and curves 50xx (removed
whole: bitmaps cannot be cleaned of burned-in text), icon images. Attributes the table does not
list keep their value, but free text has the participant's known identifiers scrubbed out, person
names are emptied, dates follow the date option and instance UIDs are remapped.

`deidentify_participant(...)` runs that over a participant's files in worker processes: quarantine
rules first, then de-identification, then the leak gate on the bytes about to be written and on
the output path; a file the gate flags is held back, never written. Pixel data is not touched,
so released images keep it byte-identical.

No DICOMDIR is written for the output (the folder layout is the index); input DICOMDIRs are
not copied.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from collections.abc import Iterable, Iterator, MutableMapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from tui import __version__
from tui.core.childproc import drop_working_folder, pool_context
from tui.core.config import site_secret
from tui.core.deid.audit import AuditLog, new_run_id
from tui.core.deid.leakcheck import (
    Identifiers,
    Leak,
    charsets_of,
    check_bytes,
    check_dataset,
    check_paths,
    collect_identifiers,
    identifiers_from_datasets,
    kept_notes,
    summarize,
)
from tui.core.deid.pseudonym import Pseudonymizer, identity_key, parse_scheme, record_mapping
from tui.core.deid.quarantine import QuarantineStore, quarantine_reason
from tui.core.dicom import annex_e
from tui.core.dicom.dateshift import offset_days, offset_seconds, shift
from tui.core.dicom.scan import Participant
from tui.core.dicom.tags import malformed_element
from tui.core.dicom.uidmap import UidMap, is_well_known
from tui.core.errors import MrishareError
from tui.core.events import (
    EventStream,
    StepFailed,
    StepFinished,
    StepNote,
    StepProgress,
    StepStarted,
    Throttle,
)
from tui.core.presets import DEID_OPTIONS as DEFAULT_OPTIONS
from tui.core.presets import PROTOCOL_PAGES

STEP = "deid"
PARALLEL_MIN_FILES = 24
CHUNK = 16

# PS3.16 CID 7050 "De-identification Method" (scheme DCM): the Basic Profile and each option.
CID_7050 = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_graph": ("113103", "Clean Graphics Option"),
    "clean_struct_cont": ("113104", "Clean Structured Content Option"),
    "clean_desc": ("113105", "Clean Descriptors Option"),
    "rtn_long_full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "rtn_long_modif_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "rtn_pat_chars": ("113108", "Retain Patient Characteristics Option"),
    "rtn_dev_id": ("113109", "Retain Device Identity Option"),
    "rtn_uids": ("113110", "Retain UIDs Option"),
    "rtn_safe_priv": ("113111", "Retain Safe Private Option"),
    "rtn_inst_id": ("113112", "Retain Institution Identity Option"),
}
TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "AE", "CS", "UR"})
_DUMMY = {
    "PN": "ANONYMOUS", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "LT": "ANONYMIZED", "ST": "ANONYMIZED",
    "UT": "ANONYMIZED", "UC": "ANONYMIZED", "CS": "ANONYMIZED", "AE": "ANONYMIZED", "DA": "19000101",
    "DT": "19000101000000", "TM": "000000", "AS": "000Y", "IS": "0", "DS": "0", "UR": "urn:anonymized",
}
# File meta elements naming the sending station or carrying private information (PS3.10 7.1).
META_REMOVE = (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102)
PIXEL_TAG = 0x7FE00010
_Store = MutableMapping[Any, DataElement | RawDataElement]
"""A dataset's element dict (`ds._dict`), looked up with plain int tags: equal to BaseTag, and faster."""
# PS3.5 7.1.2: explicit VRs with a 2-byte reserved field and a 4-byte length (12-byte header).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
TIMEZONE_OFFSET = 0x00080201
PLAIN_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 6", "ISO 2022 IR 100"})
REFERENCED_IMAGES = 0x00081140
# PS3.5 B.1: each overlay and curve repeating group is even, 6000-601E and 5000-501E.
_OVERLAY = range(0x6000, 0x601F)
_CURVE = range(0x5000, 0x501F)


@dataclass(frozen=True)
class DeidSettings:
    """What a de-identification run does (options are PS3.15 option names, see `annex_e.OPTIONS`)."""

    options: frozenset[str] = DEFAULT_OPTIONS
    pseudonym: str = "keyed"
    modalities: frozenset[str] = frozenset({"MR"})
    protocol_pages: tuple[str, ...] = PROTOCOL_PAGES
    """SeriesDescriptions of protocol/report pages, quarantined whatever BurnedInAnnotation says."""
    keep_originals_in_audit: bool = False
    """Store original values and source paths in the audit file (0600, local). Off by default."""
    quarantine_dir: Path | None = None
    """Where held-back files go; default `<data_dir>/quarantine/<run id>`."""
    workers: int | None = None
    run_id: str = field(default_factory=new_run_id)
    release_values: tuple[str, ...] = ()
    """KEYWORD=VALUE values the operator judged not identifying: the gate does not block them (audited)."""


@dataclass(frozen=True)
class DeidContext:
    """Everything one participant's datasets need: picklable, sent once per worker chunk."""

    options: frozenset[str]
    pseudonym: str
    identifiers: Identifiers
    secret: bytes = field(repr=False)
    date_offset: int = 0
    """Days added to every DA and to the date part of DT (negative: back in time)."""
    time_offset: int = 0
    """Seconds added (modulo 24 h) to every TM and to the time part of DT."""
    keep_originals: bool = False
    protocol_pages: tuple[str, ...] = PROTOCOL_PAGES


def context_for(datasets: list[Dataset], options: frozenset[str] = DEFAULT_OPTIONS, pseudonym: str = "keyed",
                keep_originals: bool = False) -> DeidContext:
    """A context for de-identifying single datasets of one patient (tag editor, DICOM-node sender):
    identifiers from `datasets`, pseudonym and offsets from their PatientID and the site secret."""
    options = annex_e.validate_options(options)
    secret = site_secret()
    first = datasets[0] if datasets else Dataset()
    key, _ = identity_key(first.get("PatientID", ""), first.get("PatientName", ""), first.get("PatientBirthDate", ""))
    return DeidContext(
        options=options, pseudonym=Pseudonymizer(parse_scheme(pseudonym), secret).pseudonym(key),
        identifiers=identifiers_from_datasets(datasets, options), secret=secret,
        date_offset=offset_days(secret, key), time_offset=offset_seconds(secret, key),
        keep_originals=keep_originals,
    )


@dataclass
class ChangeReport:
    """What `deidentify_dataset` did: (tag path, action) pairs, originals only when opted in."""

    changes: list[tuple[str, str]] = field(default_factory=list)
    originals: dict[str, str] = field(default_factory=dict)
    uids: set[str] = field(default_factory=set)
    """Original UIDs that were replaced (the leak gate searches the output for them)."""

    def add(self, path: str, action: str, original: object = None, keep: bool = False) -> None:
        """Record one change (and its original value if `keep`)."""
        self.changes.append((path, action))
        if keep and original is not None:
            self.originals[path] = str(original)[:256]


@dataclass
class DeidResult:
    """One participant's outcome. `identifiers` never leave the process (no repr of values)."""

    pseudonym: str
    released: list[Path]
    quarantined: list[tuple[Path, str]]
    skipped: list[tuple[Path, str]]
    identifiers: Identifiers
    audit_path: Path | None
    leaks: list[Leak] = field(default_factory=list)
    key_source: str = "PatientID"
    """What the pseudonym was derived from: PatientID, or PatientName+PatientBirthDate / the folder
    name when the PatientID is empty."""
    notes: list[str] = field(default_factory=list)
    """Warnings for the report: values the options keep on purpose, operator overrides, the key source."""


# --------------------------------------------------------------------------- one dataset


@lru_cache(maxsize=4096)
def _uid_map(secret: bytes) -> UidMap:
    """One UidMap per secret per process (its cache makes repeated UIDs cheap)."""
    return UidMap(secret)


@lru_cache(maxsize=8192)
def _vr_of(tag: int) -> str:
    """The dictionary VR of a standard tag ('UN' when unknown)."""
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


@lru_cache(maxsize=8192)
def _keyword(tag: int) -> str:
    """The PS3.6 keyword of a tag ('' for private and unknown tags)."""
    return keyword_for_tag(tag) or ""


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class _Cleaner:
    """Applies one participant's context to datasets (keeps compiled state per process)."""

    def __init__(self, ctx: DeidContext) -> None:
        self.ctx = ctx
        self.opts = annex_e.validate_options(ctx.options)
        self.uids = _uid_map(ctx.secret)
        self.ids = ctx.identifiers
        self.byte_regex = ctx.identifiers._byte_regex
        self.shift_dates = "rtn_long_modif_dates" in self.opts
        self.full_dates = "rtn_long_full_dates" in self.opts
        self.keep_uids = "rtn_uids" in self.opts

    def clean(self, ds: Dataset, report: ChangeReport, prefix: str = "", sop_class: str | None = None) -> None:
        """De-identify `ds` in place, recursing into sequences."""
        store = ds._dict
        creators: dict[tuple[int, int], str] = {}
        for key in list(store):
            elem = store[key]
            tag = int(key)  # BaseTag compares in Python; plain ints are much faster
            group, number = tag >> 16, tag & 0xFFFF
            if number == 0 or (not group & 1 and (group in _OVERLAY or group in _CURVE)):
                # Group lengths go stale; overlays/curves may hold burned-in text (E.1-1 60xx/50xx: X).
                del store[key]
                report.add(prefix + _tag_text(tag), "X")
                continue
            vr = elem.VR or _vr_of(tag)
            creator = None
            if group & 1:
                if number < 0x10:
                    del store[key]
                    report.add(prefix + _tag_text(tag), "X")
                    continue
                if number <= 0xFF:
                    creator = _text_value(elem)
                    creators[(group, number)] = creator
                else:
                    creator = creators.get((group, number >> 8)) or _creator_of(store, tag)
                    if creator is None:  # orphan private element: no creator, cannot be judged
                        del store[key]
                        report.add(prefix + _tag_text(tag), "X")
                        continue
            decision = annex_e.lookup(tag, vr, creator, self.opts, None, sop_class)
            action = decision.action
            if action == "K" and vr != "SQ" and not decision.review and (not group & 1 or number <= 0xFF):
                continue  # the common case: a kept, non-text standard element stays untouched (raw)
            if action == "X" and tag != REFERENCED_IMAGES and not self.ctx.keep_originals:
                del store[key]
                report.add(prefix + _tag_text(tag), "X")
                continue
            self._apply(ds, store, key, elem, vr, decision, prefix + _tag_text(tag), report, sop_class)

    def _apply(self, ds: Dataset, store: _Store, tag: int, elem: DataElement | RawDataElement, vr: str,
               decision: annex_e.Decision, path: str, report: ChangeReport, sop_class: str | None) -> None:
        """Carry out one decision on one element."""
        action = decision.action
        keep = self.ctx.keep_originals
        if tag == REFERENCED_IMAGES and decision.code == "X/Z/U*":
            # E.1-1a lets U replace the contained instance UIDs: we take it for image references
            # (also inside functional groups), so they still resolve among the released files.
            # SourceImageSequence keeps the Type-based choice (usually X).
            action = "U"
        if action == "X":
            if keep:
                report.add(path, "X", _preview(ds, tag), True)
            else:
                report.add(path, "X")
            del store[tag]
            return
        if vr == "SQ":
            if action == "Z":
                ds[tag].value = Sequence()
                report.add(path, "Z")
                return
            if action == "D":
                ds[tag].value = self._dummy_sequence(ds[tag].value or ())
                report.add(path, "D")
                return
            # K, C, U on a sequence: keep its items and apply the profile inside (E.1-1a "K").
            for index, item in enumerate(ds[tag].value or ()):
                self.clean(item, report, f"{path}[{index}]", sop_class)
            return
        if action == "Z":
            original = ds[tag].value if keep else None
            ds[tag].value = None
            report.add(path, "Z", original, keep)
        elif action == "D":
            element = ds[tag]
            original = element.value
            element.value = self._dummy(element.VR, original)
            report.add(path, "D", original, keep)
        elif action == "U":
            self._remap(ds, tag, path, report)
        elif action == "C":
            self._clean_value(ds, tag, vr, path, report)
        elif decision.review or ((tag >> 16) & 1 and tag & 0xFFFF > 0xFF):
            self._unlisted(ds, tag, elem, vr, path, report)

    def _dummy_sequence(self, items: Iterable[Dataset]) -> Sequence:
        """D on a sequence: items keep only their SOP reference (class kept, instance UID remapped),
        so reference macros stay valid; items without one become a single empty item."""
        dummies = []
        for item in items:
            if "ReferencedSOPInstanceUID" in item:
                dummy = Dataset()
                if "ReferencedSOPClassUID" in item:
                    dummy.ReferencedSOPClassUID = item.ReferencedSOPClassUID
                dummy.ReferencedSOPInstanceUID = self.uids.remap(str(item.ReferencedSOPInstanceUID))
                dummies.append(dummy)
        return Sequence(dummies or [Dataset()])

    def _dummy(self, vr: str, original: object) -> object:
        """A non-empty dummy of the right VR (dates are shifted instead when dates are modified)."""
        if vr in ("DA", "DT", "TM") and self.shift_dates and isinstance(original, str) and original:
            return self._shift(vr, original) or _DUMMY[vr]
        if vr == "UI":
            return self.uids.remap(str(original or "")) or "2.25.0"
        if vr in _DUMMY:
            return _DUMMY[vr]
        if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
            return b"\x00\x00"
        return 0

    def _remap(self, ds: Dataset, tag: int, path: str, report: ChangeReport) -> None:
        """U: replace every UID value with its keyed 2.25 form (well-known UIDs stay)."""
        element = ds[tag]
        value = element.value
        if isinstance(value, (list, MultiValue)):
            element.value = [self.uids.remap(str(v)) for v in value]
            report.uids.update(str(v).rstrip("\x00 ") for v in value)
        elif value:
            element.value = self.uids.remap(str(value))
            report.uids.add(str(value).rstrip("\x00 "))
        report.add(path, "U", value, self.ctx.keep_originals)

    def _clean_value(self, ds: Dataset, tag: int, vr: str, path: str, report: ChangeReport) -> None:
        """C: dates and times shift by the participant's offsets; text loses the participant's identifiers."""
        element = ds[tag]
        value = element.value
        if tag == TIMEZONE_OFFSET:
            if value:
                element.value = "+0000"  # C: a value of the same meaning that says nothing about place
                report.add(path, "C", value, self.ctx.keep_originals)
        elif vr in ("DA", "DT", "TM"):
            if value:
                element.value = _map_values(value, lambda v: self._shift(vr, v))
                report.add(path, "C", value, self.ctx.keep_originals)
        elif vr == "PN":
            if value:
                element.value = None
                report.add(path, "C", value, self.ctx.keep_originals)
        elif vr in TEXT_VRS and value:
            cleaned = _map_values(value, lambda v: self.ids.scrub(str(v)))
            if cleaned != value:
                element.value = cleaned
                report.add(path, "C", value, self.ctx.keep_originals)
        elif vr == "UI" and value and not self.keep_uids:
            self._remap(ds, tag, path, report)

    def _unlisted(self, ds: Dataset, tag: int, elem: DataElement | RawDataElement, vr: str, path: str,
                  report: ChangeReport) -> None:
        """Kept elements the table does not list, and kept private ones: no identifier may stay."""
        if vr in TEXT_VRS or vr in ("UN", "OB"):
            raw = elem.value if isinstance(elem, RawDataElement) else None
            if isinstance(raw, bytes) and not self._raw_hit(raw):
                return
            if vr in ("UN", "OB"):
                if self._raw_hit(bytes(ds[tag].value or b"")):
                    del ds._dict[BaseTag(tag)]
                    report.add(path, "X")
                return
            self._clean_value(ds, tag, vr, path, report)
        elif vr == "PN":
            if elem.value:
                original = ds[tag].value
                ds[tag].value = None
                report.add(path, "Z", original, self.ctx.keep_originals)
        elif vr in ("DA", "DT", "TM"):
            if self.full_dates:
                return
            if self.shift_dates:
                self._clean_value(ds, tag, vr, path, report)
            elif elem.value and vr != "TM":
                original = ds[tag].value
                ds[tag].value = None
                report.add(path, "Z", original, self.ctx.keep_originals)
        elif vr == "UI" and not self.keep_uids and _instance_uid_tag(tag):
            self._remap(ds, tag, path, report)

    def _shift(self, vr: str, value: str) -> str:
        """One DA/DT/TM value moved by the participant's day and time offsets."""
        return shift(vr, value, self.ctx.date_offset, self.ctx.time_offset)

    def _raw_hit(self, raw: bytes) -> bool:
        """Cheap pre-check on undecoded bytes: could this value hold an identifier?"""
        if self.byte_regex is not None and self.byte_regex.search(raw):
            return True
        return bool(self.ids.uids) and any(True for _ in self.ids.find_bytes(raw))


def _instance_uid_tag(tag: int) -> bool:
    """UID attributes that name instances (remapped), not classes, syntaxes or coding schemes."""
    if (tag >> 16) & 1:
        return True
    keyword = _keyword(tag)
    return not keyword.endswith(("ClassUID", "SyntaxUID", "SchemeUID")) and keyword != "PrivateInformationCreatorUID"


def _text_value(elem: DataElement | RawDataElement) -> str:
    """A short string value (private creator) without the full conversion."""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return str(value or "").strip(" \x00")


def _creator_of(store: _Store, tag: int) -> str | None:
    """The private creator of block (gggg,xx..) of `tag`, None if the block has none."""
    creator = store.get((tag & 0xFFFF0000) | ((tag >> 8) & 0xFF))
    return _text_value(creator) if creator is not None else None


def _map_values(value: object, one) -> object:
    """Apply `one` to each value of a (possibly multi-valued) element."""
    if isinstance(value, (list, MultiValue)):
        return [one(str(v)) for v in value]
    return one(str(value))


def _preview(ds: Dataset, tag: int) -> str:
    """The original value as text (only for an opted-in audit)."""
    value = ds[tag].value
    return value.hex()[:64] if isinstance(value, bytes) else str(value)


def deidentify_dataset(ds: Dataset, ctx: DeidContext) -> ChangeReport:
    """De-identify one dataset in place (file meta included) and mark it; returns what changed."""
    report = ChangeReport()
    sop_class = str(ds.get("SOPClassUID", "") or "") or None
    _Cleaner(ctx).clean(ds, report, "", sop_class if sop_class in annex_e.IODS else None)
    ds.PatientName = ctx.pseudonym
    ds.PatientID = ctx.pseudonym
    _mark(ds, ctx.options)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        original = str(meta.get("MediaStorageSOPInstanceUID", "") or "").rstrip("\x00 ")
        if original and not is_well_known(original) and "rtn_uids" not in ctx.options:
            report.uids.add(original)
        for tag in META_REMOVE:
            if tag in meta:
                del meta[tag]
                report.add(_tag_text(tag), "X")
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            report.add("(0002,0003)", "U")
        elif original and not is_well_known(original) and "rtn_uids" not in ctx.options:
            meta.MediaStorageSOPInstanceUID = _uid_map(ctx.secret).remap(original)  # no SOPInstanceUID to copy
            report.add("(0002,0003)", "U")
        if "SOPClassUID" in ds:
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"MRISHARE_{__version__}"[:16]
    return report


def _mark(ds: Dataset, options: frozenset[str]) -> None:
    """PS3.15 E.1.1: PatientIdentityRemoved, DeidentificationMethod(+CodeSequence), temporal flag."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [f"mrishare {__version__}", f"{annex_e.TABLE_EDITION} Basic Profile",
                                 *sorted(options)]
    codes = []
    for name in ["basic", *sorted(options)]:
        value, meaning = CID_7050[name]
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    if "rtn_long_full_dates" in options:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif "rtn_long_modif_dates" in options:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


# --------------------------------------------------------------------------- one file


@dataclass(frozen=True)
class FileJob:
    """One source file and where its de-identified copy goes (relative to the output folder)."""

    source: Path
    target: Path


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file: released / quarantined / skipped / held (by the leak gate)."""

    source: Path
    status: str
    target: Path | None = None
    reason: str = ""
    changes: tuple[tuple[str, str], ...] = ()
    originals: tuple[tuple[str, str], ...] = ()
    leaks: tuple[Leak, ...] = ()


def _pixel_problem(ds: Dataset) -> str | None:
    """Why the pixel data cannot be released as is (missing or shorter than the image)."""
    if "Rows" not in ds or "Columns" not in ds:
        return None
    element = ds.get_item(PIXEL_TAG)
    if element is None:
        return "image without pixel data (truncated?)"
    value = element.value
    if value is None:
        return "image without pixel data (truncated?)"
    meta = getattr(ds, "file_meta", None) or {}
    if getattr(element, "is_undefined_length", False) or meta.get("TransferSyntaxUID", "") not in (
        ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, "1.2.840.10008.1.2.2", ""
    ):
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * frames * bits // 8
    if len(value) < expected:
        return "truncated pixel data"
    return None


def _serialize(ds: Dataset, source: bytes | None = None) -> tuple[bytes, tuple[int, int] | None]:
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


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's validation warnings and log records: they quote element values
    ("Invalid value for VR CS: '<a name>'"), which must not reach a terminal or a log file."""
    logger = logging.getLogger("pydicom")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.addFilter(_drop_record)
        try:
            yield
        finally:
            logger.removeFilter(_drop_record)


def _drop_record(record: logging.LogRecord) -> bool:
    """A logging filter that lets nothing through."""
    return False


def process_file(job: FileJob, ctx: DeidContext, out: Path, modalities: frozenset[str]) -> FileOutcome:
    """Read, check, de-identify, gate and write one file (runs in a worker process)."""
    with quiet_pydicom():
        return _process_file(job, ctx, out, modalities)


def _process_file(job: FileJob, ctx: DeidContext, out: Path, modalities: frozenset[str]) -> FileOutcome:
    """`process_file` without the warning guard."""
    try:
        source = job.source.read_bytes()
        ds = pydicom.dcmread(BytesIO(source), force=True)
    except Exception as error:
        return FileOutcome(job.source, "skipped", reason=f"unreadable ({type(error).__name__})")
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        return FileOutcome(job.source, "skipped", reason="no SOP class/instance UID (not a DICOM object)")
    damaged = malformed_element(ds)
    if damaged:  # a header pydicom cannot read cannot be judged element by element: hold the file back
        return FileOutcome(job.source, "quarantined", reason=f"damaged header: element {damaged[0]} ({damaged[1]})")
    reason = quarantine_reason(ds, modalities, ctx.options, ctx.protocol_pages)
    if reason:
        return FileOutcome(job.source, "quarantined", reason=reason)
    problem = _pixel_problem(ds)
    if problem:
        return FileOutcome(job.source, "skipped", reason=problem)
    try:
        report = deidentify_dataset(ds, ctx)
        data, pixels = _serialize(ds, source)
    except Exception as error:
        return FileOutcome(job.source, "skipped", reason=f"cannot de-identify ({type(error).__name__})")
    leaks = gate_output(ds, data, pixels, job.target, ctx, report.uids)
    if leaks:
        return FileOutcome(job.source, "held", target=job.target, reason="leak gate", leaks=tuple(leaks))
    target = out / job.target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)  # no half-written file under the released name
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk leaves no partial file either
        raise
    return FileOutcome(job.source, "released", target=target, changes=tuple(report.changes),
                       originals=tuple(report.originals.items()))


def gate_output(ds: Dataset, data: bytes, pixels: tuple[int, int] | None, target: Path, ctx: DeidContext,
                uids: set[str] | None = None) -> list[Leak]:
    """The leak gate on one de-identified file about to be written: its path, its raw bytes (strong
    identifiers, in the file's own character sets too) and, where the bytes are not plain text,
    its decoded elements. Only blocking findings are returned."""
    name = str(target)
    identifiers = ctx.identifiers.with_uids(uid for uid in (uids or ()) if not is_well_known(uid))
    leaks = check_paths([target], identifiers)
    leaks += check_bytes(data, identifiers, name, [pixels] if pixels else [], charsets_of(ds))
    if not _bytes_cover_charset(ds):
        leaks += check_dataset(ds, identifiers, name, ctx.options)
    return [leak for leak in leaks if leak.blocks]


_CONTEXTS: dict[tuple, DeidContext] = {}


def _bytes_cover_charset(ds: Dataset) -> bool:
    """True if the text is ASCII, ISO-8859-1 or UTF-8: then the byte search sees every value as
    the parsed search would; other character sets (ISO 2022...) need the parsed search."""
    charsets = ds.get("SpecificCharacterSet") or ""
    values = [charsets] if isinstance(charsets, str) else list(charsets)
    return all(str(v).strip() in PLAIN_CHARSETS for v in values or [""])


def _process_chunk(jobs: list[FileJob], ctx: DeidContext, out: Path, modalities: frozenset[str]) -> list[FileOutcome]:
    """A batch of files in one worker call; the context (and its compiled searches) is reused per process."""
    key = (ctx.identifiers.token, ctx.pseudonym, ctx.options, ctx.date_offset, ctx.time_offset, ctx.keep_originals,
           ctx.protocol_pages)
    ctx = _CONTEXTS.setdefault(key, ctx)
    return [process_file(job, ctx, out, modalities) for job in jobs]


# --------------------------------------------------------------------------- one participant


_SAFE_NAME = re.compile(r"[^A-Za-z0-9]+")


def series_folder_name(index: int, description: str, identifiers: Identifiers, options: frozenset[str]) -> str:
    """`<nn>_<cleaned description>`; the description is dropped if the profile removes it or
    scrubbing had to change it (if in doubt, drop it)."""
    kept = annex_e.lookup(0x0008103E, "LO", None, options).action in ("K", "C")
    text = description.strip(" \x00")
    if not kept or not text or identifiers.scrub(text) != text:
        return f"{index:02d}"
    cleaned = _SAFE_NAME.sub("_", text).strip("_")[:40].strip("_")
    if not cleaned or check_paths([cleaned], identifiers):
        return f"{index:02d}"
    return f"{index:02d}_{cleaned}"


def _plan(participant: Participant, identifiers: Identifiers, options: frozenset[str], pseudonym: str) -> list[FileJob]:
    """Output paths for the main patient's files: <pseudonym>/study-NN/NN_desc/NNNN.dcm."""
    main = participant.main_patient
    jobs: list[FileJob] = []
    if main is None:
        return jobs
    for study_index, study in enumerate(main.studies, 1):
        for series_index, series in enumerate(study.series, 1):
            folder = Path(pseudonym) / f"study-{study_index:02d}" / series_folder_name(
                series_index, series.description, identifiers, options)
            for number, path in enumerate(series.files, 1):
                jobs.append(FileJob(path, folder / f"{number:04d}.dcm"))
    return jobs


def _run_jobs(jobs: list[FileJob], ctx: DeidContext, out: Path, settings: DeidSettings,
              cancel: threading.Event | None) -> Iterator[FileOutcome]:
    """Process jobs inline (few files) or in a process pool; yields outcomes as they finish."""
    workers = settings.workers or len(os.sched_getaffinity(0))
    if len(jobs) < PARALLEL_MIN_FILES or workers < 2:
        for job in jobs:
            if cancel is not None and cancel.is_set():
                raise MrishareError("de-identification cancelled")
            yield process_file(job, ctx, out, settings.modalities)
        return
    chunks = [jobs[i:i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    context = pool_context("forkserver", ["tui.core.deid.deidentify"])
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context,
                             initializer=drop_working_folder) as pool:
        pending: set[Future[list[FileOutcome]]] = {
            pool.submit(_process_chunk, chunk, ctx, out, settings.modalities) for chunk in chunks
        }
        while pending:
            finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            if cancel is not None and cancel.is_set():
                pool.shutdown(cancel_futures=True)
                raise MrishareError("de-identification cancelled")
            for future in finished:
                yield from future.result()


def deidentify_participant(participant: Participant, out: Path, settings: DeidSettings,
                           cancel: threading.Event | None = None) -> EventStream[DeidResult]:
    """De-identify one participant's files into `out/<pseudonym>/...`; quarantine, gate and audit them."""
    subject = participant.key
    options = annex_e.validate_options(settings.options)
    main = participant.main_patient
    yield StepStarted(subject, STEP, main.files if main is not None else 0)
    if main is None:
        raise MrishareError("participant has no usable DICOM files", subject)
    secret = site_secret()
    scheme = parse_scheme(settings.pseudonym)
    key, key_source = identity_key(main.patient_id, main.patient_name, main.birth_date, participant.folder.name)
    try:
        pseudonym = Pseudonymizer(scheme, secret).pseudonym(key, where=subject)
    except MrishareError as error:
        yield StepFailed(subject, STEP, error.reason)
        raise
    with quiet_pydicom():
        identifiers = collect_identifiers(participant, options, settings.release_values)
    ctx = DeidContext(options=options, pseudonym=pseudonym, identifiers=identifiers, secret=secret,
                      date_offset=offset_days(secret, key), time_offset=offset_seconds(secret, key),
                      keep_originals=settings.keep_originals_in_audit, protocol_pages=settings.protocol_pages)
    notes = kept_notes(identifiers)
    if key_source != "PatientID":
        notes.append(f"empty PatientID: pseudonym derived from the {key_source}")
    notes += [f"released by the operator: {value.split('=')[0]} value judged not identifying"
              for value in sorted(identifiers.released)]
    out = Path(out)
    jobs = _plan(participant, identifiers, options, pseudonym)
    store = QuarantineStore(settings.quarantine_dir, settings.run_id)
    result = DeidResult(pseudonym, [], [], [], identifiers, None, key_source=key_source, notes=notes)
    with AuditLog(settings.run_id) as audit:
        result.audit_path = audit.path
        audit.write(_run_record(settings, options, scheme.kind))
        audit.write({"type": "participant", "subject": subject, "pseudonym_key": key_source,
                     "released_by_operator": sorted(identifiers.released) if settings.keep_originals_in_audit
                     else [value.split("=")[0] for value in sorted(identifiers.released)], "notes": notes})
        for note in notes:
            yield StepNote(subject, STEP, note, "warning")
        for path in participant.misfiled:
            copy = store.put(path, "file of another patient in this participant's folder", subject)
            result.quarantined.append((copy, "another patient"))
            audit.write(_file_record(subject, "quarantined", None, "another patient", path, settings))
        for skipped in participant.skipped:
            result.skipped.append((skipped.path, skipped.reason))
            audit.write(_file_record(subject, "skipped", None, skipped.reason, skipped.path, settings))
        throttle = Throttle()
        total = len(jobs)
        for done, outcome in enumerate(_run_jobs(jobs, ctx, out, settings, cancel), 1):
            yield from _settle(outcome, result, store, subject, out, audit, settings)
            if throttle.ready(done, total):
                yield StepProgress(subject, STEP, done, total)
    if result.released:
        record_mapping(scheme, key, pseudonym)
    for line in summarize(result.leaks):
        yield StepNote(subject, STEP, f"leak gate: {line}", "warning")
    summary = (f"{len(result.released)} released, {len(result.quarantined)} quarantined, "
               f"{len(result.skipped)} skipped" + (f", {len(result.leaks)} leak(s) held back" if result.leaks else ""))
    yield StepFinished(subject, STEP, summary)
    return result


def _settle(outcome: FileOutcome, result: DeidResult, store: QuarantineStore, subject: str, out: Path,
            audit: AuditLog, settings: DeidSettings) -> Iterator[StepNote]:
    """File one outcome into the result and the audit; held-back files go to quarantine."""
    if outcome.status == "released" and outcome.target is not None:
        result.released.append(outcome.target)
        rel = outcome.target.relative_to(out)
        audit.write(_file_record(subject, "released", rel, "", outcome.source, settings,
                                 outcome.changes, outcome.originals))
        return
    if outcome.status == "skipped":
        result.skipped.append((outcome.source, outcome.reason))
        audit.write(_file_record(subject, "skipped", None, outcome.reason, outcome.source, settings))
        yield StepNote(subject, STEP, f"skipped a file: {outcome.reason}", "warning")
        return
    reason = outcome.reason
    if outcome.status == "held":
        result.leaks.extend(outcome.leaks)
        places = sorted({f"{leak.kind} in {leak.where}" for leak in outcome.leaks})
        reason = "leak gate: " + "; ".join(places[:5]) + (" ..." if len(places) > 5 else "")
    copy = store.put(outcome.source, reason, subject)
    result.quarantined.append((copy, reason))
    audit.write(_file_record(subject, "quarantined", None, reason, outcome.source, settings,
                             findings=outcome.leaks))
    if outcome.status != "held":  # the gate's findings are summarised once, grouped, at the end
        yield StepNote(subject, STEP, f"quarantined {copy.name}: {reason}", "warning")


def _run_record(settings: DeidSettings, options: frozenset[str], scheme: str) -> dict:
    """The audit header of a run."""
    return {
        "type": "run", "run": settings.run_id, "tool": "mrishare", "version": __version__,
        "table_edition": annex_e.TABLE_EDITION, "options": sorted(options), "pseudonym_scheme": scheme,
        "modalities": sorted(settings.modalities),
        "originals_stored": settings.keep_originals_in_audit,
        "note": "original values and source paths are stored (file mode 0600)" if settings.keep_originals_in_audit
        else "no original values stored",
    }


def _file_record(subject: str, status: str, output: Path | None, reason: str, source: Path,
                 settings: DeidSettings, changes: tuple = (), originals: tuple = (), findings: tuple = ()) -> dict:
    """One audit line per file; the source path only with opted-in originals (it may name the person)."""
    record: dict[str, Any] = {"type": "file", "subject": subject, "status": status,
                              "output": str(output) if output else None, "reason": reason,
                              "changes": [list(c) for c in changes]}
    if findings:
        record["findings"] = [{"kind": f.kind, "file": f.file, "where": f.where, "blocks": f.blocks}
                              for f in findings]
    if settings.keep_originals_in_audit:
        record["source"] = str(source)
        record["originals"] = dict(originals)
    return record
