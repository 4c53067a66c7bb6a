"""Flatten a DICOM dataset into display rows with their Annex E decision and privacy flags."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.valuerep import VR

from tui.core.dicom import annex_e
from tui.core.dicom.annex_e import Decision

PREVIEW_CHARS = 120
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
REMOVING_ACTIONS = frozenset({"D", "Z", "X", "C", "U"})
FLAGS = ("identifying", "free_text", "private", "date", "uid", "review", "sequence", "malformed")
_KNOWN_VRS = frozenset(VR.__members__)
_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "UV": 8, "SV": 8}
"""Bytes per value of the binary number VRs (PS3.5 6.2): a length that is no multiple is damaged."""
_NUMBER_TEXT = {"DS": re.compile(rb"[0-9+\-.eE \\\x00]*"), "IS": re.compile(rb"[0-9+\- \\\x00]*")}
"""Characters a decimal/integer string may hold (PS3.5 6.2); anything else is a damaged number."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PLACEHOLDER = re.compile(r"<\d+ (bytes|items)>|<unreadable[^>]*>")
_STANDARD_UID = re.compile(r"1\.2\.840\.10008(\.\d+)+")  # defined by NEMA (PS3.6 Annex A), never about a patient


@dataclass(frozen=True)
class TagRow:
    """One element of a dataset, at any depth, as the inspector shows it."""

    path: str
    """`(0040,0275)[0](0008,0050)`, the form of the corpus MANIFEST's tag_path."""
    keyword_path: str
    """`RequestAttributesSequence[0].AccessionNumber`; private elements as `[Creator]ee`."""
    tag: int
    keyword: str
    name: str
    """Last part of keyword_path: keyword, `[Creator]ee`, or `(gggg,eeee)` when there is no keyword."""
    vr: str
    depth: int
    value: str
    """Plain-text preview (<= 120 chars, control characters escaped, binary as `<N bytes>`).
    It is patient data: show it only as plain text, never as markup."""
    private_creator: str | None
    decision: Decision
    flags: frozenset[str]


def flatten(ds: pydicom.Dataset, options: frozenset[str] = frozenset(), include_meta: bool = True) -> list[TagRow]:
    """Every element of `ds` (file meta first, then nested sequence items in order) as TagRows."""
    opts = annex_e.validate_options(options)
    meta = getattr(ds, "file_meta", None)
    try:
        sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    except Exception:
        sop_class = None
    sop_class = str(sop_class) if sop_class else None
    rows: list[TagRow] = []
    if include_meta and meta is not None:
        _walk(meta, "", "", 0, opts, sop_class, rows)
    _walk(ds, "", "", 0, opts, sop_class, rows)
    return rows


def mask(value: str) -> str:
    """What to show for an identifying value until it is revealed: its length, not its content."""
    if not value or _PLACEHOLDER.fullmatch(value) or _STANDARD_UID.fullmatch(value):
        return value
    return f"••••• ({len(value)} chars)"


def element_error(error: BaseException) -> str:
    """Why pydicom could not read an element, without its value (messages of other errors may quote it)."""
    if isinstance(error, NotImplementedError):
        return "unknown VR"
    return f"unreadable value ({type(error).__name__})"


def malformed_element(ds: Dataset, prefix: str = "") -> tuple[str, str] | None:
    """The first element of `ds` (nested items too) whose VR is unknown or whose length cannot hold
    whole numbers of its VR: (tag path, reason). Cheap: only sequences are parsed, on the side, so
    the raw elements of `ds` stay raw (text is decoded later with replacement, never fatal)."""
    for key, elem in list(ds._dict.items()):
        tag = int(key)
        here = f"{prefix}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        vr = elem.VR
        if isinstance(elem, RawDataElement):
            length = elem.length
            if vr is not None and vr not in _KNOWN_VRS:
                return here, "unknown VR"
            size = _SIZES.get(vr or "")
            if size and length != 0xFFFFFFFF and length % size:
                return here, f"length {length} is not a multiple of {size} for VR {vr}"
            number = None if tag >> 16 & 1 else _NUMBER_TEXT.get(vr or _dictionary_vr(tag))  # private: vendors' own
            if number is not None and isinstance(elem.value, bytes) and not number.fullmatch(elem.value):
                return here, f"not a number ({vr or _dictionary_vr(tag)})"
            if vr != "SQ" and not (vr is None and _dictionary_vr(tag) == "SQ"):
                continue
            try:
                elem = convert_raw_data_element(elem, encoding=ds._character_set, ds=ds)
            except Exception as error:
                return here, element_error(error)
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or ()):
                found = malformed_element(item, f"{here}[{index}]")
                if found:
                    return found
    return None


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _walk(
    ds: Dataset, path: str, kpath: str, depth: int, opts: frozenset[str], sop_class: str | None, rows: list[TagRow]
) -> None:
    for key in list(ds.keys()):
        try:
            elem = ds[key]
        except Exception as error:
            rows.append(_broken_row(ds, int(key), path, kpath, depth, opts, sop_class, error))
            continue
        tag = int(elem.tag)
        creator = _creator(ds, tag)
        name = _name(elem, creator)
        here = f"{path}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        khere = f"{kpath}.{name}" if kpath else name
        decision = annex_e.lookup(tag, elem.VR, creator, opts, None, sop_class)
        rows.append(
            TagRow(
                path=here,
                keyword_path=khere,
                tag=tag,
                keyword=elem.keyword if not elem.tag.is_private else "",
                name=name,
                vr=elem.VR,
                depth=depth,
                value=_preview(elem),
                private_creator=creator,
                decision=decision,
                flags=_flags(elem, decision),
            )
        )
        if elem.VR == "SQ" and elem.value is not None:
            for i, item in enumerate(elem.value):
                _walk(item, f"{here}[{i}]", f"{khere}[{i}]", depth + 1, opts, sop_class, rows)


def _broken_row(ds: Dataset, tag: int, path: str, kpath: str, depth: int, opts: frozenset[str],
                sop_class: str | None, error: BaseException) -> TagRow:
    """The row of an element pydicom cannot read: its raw VR, the dictionary's decision, the reason as value."""
    raw = ds._dict.get(BaseTag(tag))
    raw_vr = getattr(raw, "VR", None) or ""
    vr = _CONTROL.sub("?", raw_vr if isinstance(raw_vr, str) else repr(raw_vr))
    known = _dictionary_vr(tag)
    name = keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    decision = annex_e.lookup(tag, known, None, opts, None, sop_class)
    flags = {"malformed"} | ({"identifying"} if decision.action in REMOVING_ACTIONS else set())
    return TagRow(path=f"{path}({tag >> 16:04X},{tag & 0xFFFF:04X})",
                  keyword_path=f"{kpath}.{name}" if kpath else name, tag=tag,
                  keyword=name if not tag >> 16 & 1 else "", name=name, vr=vr, depth=depth,
                  value=f"<unreadable: {element_error(error)}>", private_creator=None, decision=decision,
                  flags=frozenset(flags))


def _creator(ds: Dataset, tag: int) -> str | None:
    """The private creator of a private element (for a creator element: its own value)."""
    group, element = tag >> 16, tag & 0xFFFF
    if not group & 1 or element < 0x0010:
        return None
    holder = ds.get((group, element)) if element <= 0x00FF else ds.get((group, element >> 8))
    if holder is None or holder.value is None:
        return None
    value = holder.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value).rstrip(" \x00") or None


def _name(elem: DataElement, creator: str | None) -> str:
    """Keyword, `[Creator]ee` for private data elements, or `(gggg,eeee)`."""
    tag = int(elem.tag)
    if elem.tag.is_private and creator and tag & 0xFFFF >= 0x1000:
        return f"[{creator}]{tag & 0xFF:02X}"
    return elem.keyword or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _preview(elem: DataElement) -> str:
    """Plain-text, bounded, control-character-free rendering of the element's value."""
    try:
        value = elem.value
        if elem.VR == "SQ":
            return f"<{len(value or [])} items>"
        if isinstance(value, (bytes, bytearray)) or elem.VR in BINARY_VRS:
            return f"<{len(value or b'')} bytes>"
        if value is None:
            return ""
        text = "\\".join(str(v) for v in value) if elem.VM > 1 else str(value)
    except Exception:  # a malformed value must not stop the inspection of the rest
        return "<unreadable>"
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _flags(elem: DataElement, decision: Decision) -> frozenset[str]:
    vr = elem.VR
    flags = {
        "identifying": decision.action in REMOVING_ACTIONS or decision.review,
        "free_text": vr in annex_e.FREE_TEXT_VRS,
        "private": elem.tag.is_private,
        "date": vr in annex_e.TEMPORAL_VRS,
        "uid": vr == "UI",
        "review": decision.review,
        "sequence": vr == "SQ",
    }
    return frozenset(name for name, on in flags.items() if on)
