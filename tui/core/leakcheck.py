"""The leak gate: collect a participant's identifying values, then search outputs for them.

Before anything is released, every output file (parsed elements, raw bytes, private blobs,
deflated datasets), every output path, and later NIfTI headers, JSON sidecars and file names are
searched for the participant's names and their parts, IDs, birth date in several formats,
accession numbers, UIDs, addresses and institution. Values are searched case-insensitively, in
UTF-8 and ISO-8859-1, with and without German umlaut transliteration. A `Leak` names the file,
the place and the *kind* of identifier; never the value itself.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import struct
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.valuerep import PersonName

from tui.core import annex_e
from tui.core.dicom_scan import Participant, Skipped, read_header
from tui.core.passphrase import word_list
from tui.core.tags import malformed_element
from tui.core.uidmap import is_well_known

TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UT", "UC", "UR", "CS"})
DATE_VRS = frozenset({"DA", "DT"})
DEFLATED = "1.2.840.10008.1.2.1.99"
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
# Filler values that identify nobody (and that our own dummies use).
NOT_IDENTIFYING = frozenset({
    "anonymous", "anonymized", "anon", "unknown", "none", "null", "n/a", "na", "test", "patient",
    "removed", "other", "yes", "no", "mr", "ct", "original", "primary", "secondary", "derived",
    "dr", "med", "prof", "md", "phd", "mrs", "frau", "herr", "dipl", "jr", "sr",
})
# Generic words of institution names and addresses: identifying only as part of the whole value.
_GENERIC_PARTS = frozenset({
    "university", "universitaet", "universität", "hospital", "clinic", "klinik", "klinikum", "clinical",
    "research", "forschung", "department", "abteilung", "institute", "institut", "center", "centre",
    "zentrum", "radiology", "radiologie", "neuroradiology", "neuroradiologie", "medical", "medizin",
    "street", "strasse", "straße", "allee", "platz", "general", "practice", "praxis", "imaging",
})


def _generic(token: str) -> bool:
    """True for a common word (our passphrase word lists or `_GENERIC_PARTS`), false alarms if searched alone."""
    low = token.lower()
    return low in _GENERIC_PARTS or low in word_list("en") or low in word_list("de")


# Kinds that are the participant's identity: never dropped because another element keeps the value.
CORE_KINDS = ("PatientName", "PatientID", "birth date", "OtherPatient", "PatientBirthName",
              "PatientMotherBirthName", "UID")
_UID_TOKEN = re.compile(r"[0-9]+(?:\.[0-9]+){2,}")
_UID_TOKEN_BYTES = re.compile(rb"[0-9]+(?:\.[0-9]+){2,}")
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
_SPLIT = re.compile(r"[\s^=,;/()\[\]\"']+|(?<=\D)[-.](?=\D)")
_BIRTH_FORMATS = ("%Y%m%d", "%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%Y.%m.%d", "%d-%m-%Y")
_DATE_FORMATS = ("%Y%m%d", "%d.%m.%Y", "%Y-%m-%d")


@dataclass(frozen=True)
class Identifier:
    """One identifying value of a participant; `kind` says what it is without revealing it."""

    kind: str
    value: str = field(repr=False)
    bounded: bool = False
    """Match only as a whole word (short name parts), so that it does not fire inside other words."""


@dataclass(frozen=True)
class Leak:
    """An identifier found in an output: file, place (tag path, "path name", "bytes @offset"), kind."""

    file: str
    where: str
    kind: str

    def __str__(self) -> str:
        return f"{self.file}: {self.kind} found in {self.where}"


@dataclass(frozen=True)
class Identifiers:
    """A participant's identifying values, with the compiled searches over text and bytes."""

    items: tuple[Identifier, ...] = ()
    uids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.items or self.uids)

    def __repr__(self) -> str:
        return f"Identifiers({len(self.items)} values, {len(self.uids)} UIDs)"

    def with_uids(self, extra: Iterable[str]) -> Identifiers:
        """The same values plus more UIDs (one file's own), sharing the compiled searches."""
        other = Identifiers(self.items, self.uids | frozenset(extra))
        for name in ("_text_forms", "_text_regex", "_byte_forms", "_byte_regex"):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    @cached_property
    def token(self) -> str:
        """A digest of the values: a cache key that reveals nothing."""
        digest = hashlib.sha256()
        for item in sorted(self.items, key=lambda i: (i.kind, i.value)):
            digest.update(f"{item.kind}\x00{item.value}\x00{item.bounded}\x01".encode())
        for uid in sorted(self.uids):
            digest.update(uid.encode() + b"\x02")
        return digest.hexdigest()[:16]

    @cached_property
    def _text_forms(self) -> list[tuple[str, Identifier]]:
        """(lower-cased search form, identifier) for every spelling of every value."""
        forms = []
        for item in self.items:
            for spelling in _spellings(item.value):
                forms.append((spelling.lower(), item))
        return forms

    @cached_property
    def _text_regex(self) -> re.Pattern[str] | None:
        return _compile([(form, item.bounded) for form, item in self._text_forms], text=True)

    @cached_property
    def _byte_forms(self) -> list[tuple[bytes, Identifier]]:
        """Every spelling in UTF-8 and ISO-8859-1, upper and lower case (bytes case-folding is ASCII only)."""
        forms: dict[bytes, Identifier] = {}
        for item in self.items:
            for spelling in _spellings(item.value):
                for variant in (spelling, spelling.upper(), spelling.lower(), _upper_keep_sz(spelling)):
                    for encoding in ("utf-8", "latin-1"):
                        try:
                            forms.setdefault(variant.encode(encoding).lower(), item)
                        except UnicodeEncodeError:
                            continue
        return list(forms.items())

    @cached_property
    def _byte_regex(self) -> re.Pattern[bytes] | None:
        return _compile([(form, item.bounded) for form, item in self._byte_forms], text=False)

    def find_text(self, text: str) -> Iterator[tuple[Identifier, int]]:
        """(identifier, offset) for each identifier found in `text`."""
        if self._text_regex is not None:
            for match in self._text_regex.finditer(text.lower()):
                yield self._which(match.group(0).lower(), self._text_forms), match.start()
        if self.uids:
            for match in _UID_TOKEN.finditer(text):
                if match.group(0) in self.uids:
                    yield Identifier("UID", ""), match.start()

    def find_bytes(self, data: bytes) -> Iterator[tuple[Identifier, int]]:
        """(identifier, offset) for each identifier found in raw `data` (any of our encodings)."""
        if self._byte_regex is not None:
            for match in self._byte_regex.finditer(data):
                yield self._which(match.group(0).lower(), self._byte_forms), match.start()
        if self.uids:
            for match in _UID_TOKEN_BYTES.finditer(data):
                if match.group(0).decode("ascii") in self.uids:
                    yield Identifier("UID", ""), match.start()

    def scrub(self, text: str) -> str:
        """`text` with every identifier removed (UIDs included), the rest kept."""
        if self._text_regex is not None:
            lowered = text.lower()
            if len(lowered) == len(text):
                spans = [m.span() for m in self._text_regex.finditer(lowered)]
                for start, end in reversed(spans):
                    text = text[:start] + text[end:]
            else:  # case folding changed the length (rare): fall back to a case-insensitive pass
                text = re.compile(self._text_regex.pattern, re.IGNORECASE).sub("", text)
        if self.uids:
            text = _UID_TOKEN.sub(lambda m: "" if m.group(0) in self.uids else m.group(0), text)
        return text

    @staticmethod
    def _which(found: str | bytes, forms: list) -> Identifier:
        """The identifier whose spelling matched (the longest spelling that the match contains)."""
        best = None
        for form, item in forms:
            if form in found and (best is None or len(form) > len(best[0])):
                best = (form, item)
        return best[1] if best else Identifier("identifier", "")


def _upper_keep_sz(text: str) -> str:
    """Upper case but keep ß (DICOM files write 'MÜßIG...' as often as 'MÜSSIG...')."""
    return "".join(c if c == "ß" else c.upper() for c in text)


def _spellings(value: str) -> set[str]:
    """The value, its umlaut transliteration and its accent-free form."""
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return {s for s in (value, value.translate(_TRANSLIT), plain) if s}


def _compile(forms: list[tuple], text: bool) -> re.Pattern | None:
    """One alternation over all forms (longest first); bounded forms get word-boundary guards."""
    if not forms:
        return None
    unique = sorted(set(forms), key=lambda f: -len(f[0]))
    if text:
        parts = [(r"(?<![^\W_])" + re.escape(f) + r"(?![^\W_])") if b else re.escape(f) for f, b in unique]
        return re.compile("|".join(parts))
    parts_b = [(rb"(?<![A-Za-z0-9])" + re.escape(f) + rb"(?![A-Za-z0-9])") if b else re.escape(f) for f, b in unique]
    return re.compile(b"|".join(parts_b), re.IGNORECASE)


# --- collecting -------------------------------------------------------------------------------


class IdentifierCollector:
    """Gathers identifying values from a participant's source datasets under the chosen options.

    Values the profile removes or replaces (X, Z, D, U, and dates it shifts) are identifiers;
    values it keeps on purpose (an option's K) are not, so the gate does not block what the
    operator chose to retain.
    """

    def __init__(self, options: frozenset[str] = frozenset()) -> None:
        self.options = annex_e.validate_options(options)
        self._items: dict[tuple[str, str], Identifier] = {}
        self._uids: set[str] = set()
        self._kept: set[str] = set()

    def add_dataset(self, ds: Dataset) -> None:
        """Collect from one dataset, its file meta and every nested item."""
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            uid = str(meta.get("MediaStorageSOPInstanceUID", "") or "").rstrip("\x00 ")
            if uid and "rtn_uids" not in self.options and not is_well_known(uid):
                self._uids.add(uid)
        self._walk(ds)

    def _walk(self, ds: Dataset) -> None:
        """Collect from each element by its VR and its Annex E action."""
        for elem in ds:
            tag = int(elem.tag)
            if (tag >> 16) & 1:
                if elem.VR == "PN" and elem.value:
                    self._add_name(str(elem.keyword or "private PN"), elem.value)
                if elem.VR == "SQ":
                    for item in elem.value or ():
                        self._walk(item)
                continue
            if elem.VR == "SQ":
                for item in elem.value or ():
                    self._walk(item)
                continue
            if elem.value is None or elem.value == "" or tag in PIXEL_TAGS:
                continue
            action = annex_e.lookup(tag, elem.VR, None, self.options).action
            keyword = elem.keyword or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
            if elem.VR == "UI":
                if "rtn_uids" not in self.options and (action == "U" or _is_instance_uid(keyword)):
                    self._uids.update(u for u in (str(v).rstrip("\x00 ") for v in _values(elem.value))
                                      if u and not is_well_known(u))
                continue
            if elem.VR == "PN":
                if action != "K" or annex_e.rule_for(tag) is None:
                    self._add_name(keyword, elem.value)
                continue
            if elem.VR in DATE_VRS:
                if action in ("X", "Z", "D", "C"):
                    formats = _BIRTH_FORMATS if "Birth" in keyword else _DATE_FORMATS
                    for value in _values(elem.value):
                        self._add_date("birth date" if "Birth" in keyword else "date", value, formats)
                continue
            if elem.VR not in TEXT_VRS or elem.VR == "CS":
                continue
            values = [v for v in (str(x).strip(" \x00") for x in _values(elem.value)) if v]
            if action in ("K", "C"):
                self._kept.update(v.lower() for v in values)
                continue
            for value in values:
                self._add(keyword, value)
                if "Address" in keyword or "Institution" in keyword or "Location" in keyword:
                    for token in _SPLIT.split(value):
                        if len(token) >= 5 and not token.isdigit() and not _generic(token):
                            self._add(f"{keyword} part", token)

    def _add(self, kind: str, value: str, bounded: bool | None = None) -> None:
        """Keep `value` unless it is filler or too short to search for without false alarms."""
        value = value.strip(" \x00")
        if value.lower() in NOT_IDENTIFYING or len(value) < 3:
            return
        if value.isdigit() and len(value) < 6:
            return
        if bounded is None:
            bounded = len(value) < 5 or value.isdigit()
        self._items.setdefault((kind, value), Identifier(kind, value, bounded))

    def _add_name(self, kind: str, value: object) -> None:
        """A person name: whole, with spaces for carets, and each part of 3+ characters."""
        for one in _values(value):
            text = str(one).strip(" \x00")
            if not text:
                continue
            self._add(kind, text)
            spaced = re.sub(r"\^+", " ", text).strip()
            if spaced != text:
                self._add(kind, spaced)
            for token in _SPLIT.split(text):
                token = token.strip("-.")
                if len(token) >= 3:
                    self._add(f"{kind} part", token)

    def _add_date(self, kind: str, value: str, formats: tuple[str, ...]) -> None:
        """A DA/DT value in each of `formats` (as it might be typed into a comment or burned in)."""
        text = str(value).strip()[:8]
        try:
            when = datetime.strptime(text, "%Y%m%d")
        except ValueError:
            return
        for fmt in formats:
            text = when.strftime(fmt)
            self._items.setdefault((kind, text), Identifier(f"{kind} ({_fmt_name(fmt)})", text, True))

    def result(self) -> Identifiers:
        """The collected identifiers, minus values an element the profile keeps also holds."""
        items = tuple(
            item
            for item in self._items.values()
            if item.value.lower() not in self._kept or item.kind.startswith(CORE_KINDS)
        )
        return Identifiers(items, frozenset(self._uids))


def _fmt_name(fmt: str) -> str:
    """'%d.%m.%Y' -> 'DD.MM.YYYY' (names the format in a Leak without the value)."""
    return fmt.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")


def _values(value: object) -> list:
    """An element value as a list (multi-valued or single)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def _is_instance_uid(keyword: str) -> bool:
    """UIDs naming instances (not classes, syntaxes or coding schemes) identify a study."""
    return keyword.endswith("UID") and not keyword.endswith(("ClassUID", "SyntaxUID", "SchemeUID"))


def identifiers_from_datasets(datasets: Iterable[Dataset], options: frozenset[str] = frozenset()) -> Identifiers:
    """Identifiers gathered from `datasets` (headers are enough) under `options`."""
    collector = IdentifierCollector(options)
    for ds in datasets:
        collector.add_dataset(ds)
    return collector.result()


def collect_identifiers(participant: Participant, options: frozenset[str] = frozenset()) -> Identifiers:
    """The participant's identifying values, from the first header of every series of every patient
    in the folder (misfiled ones too). Values that differ per file (each instance's own UIDs) are
    added per file by the de-identification worker (`Identifiers.with_uids`)."""
    collector = IdentifierCollector(options)
    for patient in participant.patients:
        for study in patient.studies:
            for series in study.series:
                for path in series.files:
                    header = read_header(path)
                    # a damaged header is quarantined by the de-identification: the next file speaks for the series
                    if not isinstance(header, Skipped) and malformed_element(header) is None:
                        collector.add_dataset(header)
                        break
    return collector.result()


# --- checking ---------------------------------------------------------------------------------


def check_text(text: str, identifiers: Identifiers, where: str = "text", file: str = "") -> list[Leak]:
    """Leaks in a piece of text (a sidecar, a header field, a file name)."""
    return [Leak(file, where, item.kind) for item, _ in identifiers.find_text(text)]


def check_bytes(
    data: bytes, identifiers: Identifiers, file: str = "", skip: Iterable[tuple[int, int]] = ()
) -> list[Leak]:
    """Leaks in raw bytes, outside the `skip` ranges (pixel data: text there needs OCR, not grep)."""
    leaks = []
    start = 0
    for begin, end in sorted(skip):
        leaks += _bytes_leaks(data[start:begin], identifiers, file, start)
        start = max(start, end)
    leaks += _bytes_leaks(data[start:], identifiers, file, start)
    return leaks


def _bytes_leaks(chunk: bytes, identifiers: Identifiers, file: str, base: int) -> list[Leak]:
    """Leaks in one chunk, offsets counted from the start of the file."""
    return [Leak(file, f"bytes @{base + offset}", item.kind) for item, offset in identifiers.find_bytes(chunk)]


def check_paths(paths: Iterable[Path | str], identifiers: Identifiers, root: Path | None = None) -> list[Leak]:
    """Leaks in path names (relative to `root` when given: the output folder is the operator's choice)."""
    leaks = []
    for path in paths:
        rel = Path(path).relative_to(root) if root is not None else Path(path)
        leaks += check_text(str(rel), identifiers, "path name", str(rel))
    return leaks


def check_dataset(ds: Dataset, identifiers: Identifiers, file: str = "") -> list[Leak]:
    """Leaks in every parsed element of `ds` at every depth, file meta included (pixel data excluded)."""
    leaks: list[Leak] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _walk_check(meta, "", identifiers, file, leaks)
    _walk_check(ds, "", identifiers, file, leaks)
    return leaks


def _walk_check(ds: Dataset, prefix: str, identifiers: Identifiers, file: str, leaks: list[Leak]) -> None:
    """Append the leaks of each element (text values and binary blobs) under `prefix`."""
    for elem in ds:
        tag = int(elem.tag)
        where = f"{prefix}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or ()):
                _walk_check(item, f"{where}[{index}]", identifiers, file, leaks)
            continue
        value = elem.value
        if value is None or tag in PIXEL_TAGS:
            continue
        if isinstance(value, (bytes, bytearray)):
            leaks += [Leak(file, where, item.kind) for item, _ in identifiers.find_bytes(bytes(value))]
            continue
        for one in _values(value):
            if isinstance(one, (str, PersonName)):
                text = str(one)
                leaks += [Leak(file, where, item.kind) for item, _ in identifiers.find_text(text)]


def pixel_ranges(ds: Dataset) -> list[tuple[int, int]]:
    """Byte ranges of top-level pixel data values in the file `ds` was read from (not yet decoded)."""
    ranges = []
    for tag in PIXEL_TAGS:
        raw = ds.get_item(tag) if tag in ds else None
        tell = getattr(raw, "value_tell", None)
        if raw is not None and tell is not None and raw.length not in (None, 0xFFFFFFFF):
            ranges.append((tell, tell + raw.length))
        elif raw is not None and tell is not None:
            ranges.append((tell, 1 << 62))  # encapsulated, undefined length: to the end
    return ranges


def _nifti_header(data: bytes) -> bytes:
    """The header and extensions of a NIfTI-1/2 image (the voxels are not text)."""
    if len(data) >= 348 and struct.unpack("<i", data[:4])[0] in (348, 540):
        little = True
    elif len(data) >= 348 and struct.unpack(">i", data[:4])[0] in (348, 540):
        little = False
    else:
        return data
    order = "<" if little else ">"
    if struct.unpack(order + "i", data[:4])[0] == 348:
        offset = int(struct.unpack(order + "f", data[108:112])[0])
    else:
        offset = struct.unpack(order + "q", data[168:176])[0]
    return data[: max(offset, 348)]


def _png_metadata(data: bytes) -> bytes:
    """Every chunk of a PNG except the compressed pixels (IDAT): text, zTXt inflated, EXIF, ...

    Searching the deflated pixel stream finds short names by chance (3 letters in ~50 KB of noise)
    and could never find real text in it anyway.
    """
    parts, offset = [], 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if kind == b"zTXt" and b"\0" in body:
            keyword, _, packed = body.partition(b"\0")
            try:
                body = keyword + b" " + zlib.decompress(packed[1:])
            except zlib.error:
                pass
        if kind != b"IDAT":
            parts.append(body)
        offset += 12 + length
    return b"\n".join(parts)


def check_files(paths: Iterable[Path], identifiers: Identifiers, root: Path | None = None) -> list[Leak]:
    """The gate over files on disk: path names, raw bytes (inflated if deflated) and parsed DICOM elements."""
    leaks: list[Leak] = []
    for path in paths:
        path = Path(path)
        name = str(path.relative_to(root)) if root is not None else str(path)
        leaks += check_paths([path], identifiers, root)
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error):
                pass
        if path.name.endswith((".nii", ".nii.gz")):
            leaks += check_bytes(_nifti_header(data), identifiers, name)
            continue
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            leaks += check_bytes(_png_metadata(data), identifiers, name)
            continue
        try:
            ds = pydicom.dcmread(path, force=False)
        except (InvalidDicomError, OSError, ValueError, EOFError, struct.error, KeyError, TypeError, AttributeError):
            leaks += check_bytes(data, identifiers, name)
            continue
        leaks += check_bytes(data, identifiers, name, pixel_ranges(ds))
        ts = str(getattr(ds.file_meta, "TransferSyntaxUID", ""))
        if ts == DEFLATED:
            leaks += check_bytes(_inflate(data), identifiers, f"{name} (inflated)")
        leaks += check_dataset(ds, identifiers, name)
    return leaks


def _inflate(data: bytes) -> bytes:
    """The deflated dataset after the file meta group, inflated ('' if it does not inflate)."""
    pos = 132
    while pos + 8 <= len(data) and data[pos : pos + 2] == b"\x02\x00":
        vr = data[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV"):
            length = struct.unpack("<I", data[pos + 8 : pos + 12])[0]
            pos += 12 + length
        else:
            length = struct.unpack("<H", data[pos + 6 : pos + 8])[0]
            pos += 8 + length
    try:
        return zlib.decompress(data[pos:], -15)
    except zlib.error:
        return b""
