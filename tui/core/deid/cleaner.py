"""PS3.15 Annex E de-identification of one dataset.

`deidentify_dataset(ds, ctx)` applies Table E.1-1 (Basic Profile + options, via `annex_e.lookup`)
to every element at every depth: nested sequences, functional groups, private blocks (removed
unless Retain Safe Private keeps an E.3.10-1 element), overlays 60xx and curves 50xx (removed
whole: bitmaps cannot be cleaned of burned-in text), icon images. Attributes the table does not
list keep their value, but free text has the participant's known identifiers scrubbed out, person
names are emptied, dates follow the date option and instance UIDs are remapped. The dataset is
then marked (PatientIdentityRemoved, De-identification Method and its CID 7050 codes).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from tui import __version__
from tui.core.config import site_secret
from tui.core.deid.leakcheck import Identifiers, identifiers_from_datasets
from tui.core.deid.pseudonym import Pseudonymizer, identity_key, parse_scheme
from tui.core.dicom import annex_e
from tui.core.dicom.dateshift import offset_days, offset_seconds, shift
from tui.core.dicom.uidmap import UidMap, is_well_known
from tui.core.presets import DEID_OPTIONS as DEFAULT_OPTIONS
from tui.core.presets import PROTOCOL_PAGES

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
_Store = MutableMapping[Any, DataElement | RawDataElement]
"""A dataset's element dict (`ds._dict`), looked up with plain int tags: equal to BaseTag, and faster."""
TIMEZONE_OFFSET = 0x00080201
REFERENCED_IMAGES = 0x00081140
# PS3.5 B.1: each overlay and curve repeating group is even, 6000-601E and 5000-501E.
_OVERLAY = range(0x6000, 0x601F)
_CURVE = range(0x5000, 0x501F)


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
