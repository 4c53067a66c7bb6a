"""The leak gate: collect a participant's identifying values, then search outputs for them.

Before anything is released, every output file (parsed elements, raw bytes, private blobs,
deflated datasets), every output path, and later NIfTI headers, JSON sidecars and file names are
searched for the participant's names and their parts, IDs, birth date in several formats,
accession numbers, UIDs, addresses and institution. Values are searched case-insensitively, in
UTF-8, ISO-8859-1 and the file's own character set, with and without German umlaut transliteration.
A `Leak` (a finding) names the file, the place, the *kind* of identifier and whether it blocks;
never the value itself.

Only what came from the participant is searched: the text the program writes itself (the
De-identification Method and its codes, character-set terms, our README/index.html templates,
JSON keys) is never a finding. Each identifier has a specificity class (PS3.15 leaves this to
the implementation; the classes follow issue 11):

- strong: names, IDs, birth date, accession number, addresses, phone numbers, UIDs. Found
  anywhere (a value, a file name, raw bytes), it blocks.
- kept: the input itself holds the value in an attribute the profile keeps (PatientPosition
  `HFS`, BodyPartExamined `BRAIN`, a study date the options keep). Not identifying on its own:
  a finding that does not block, unless it is the whole value of an element that should have
  been removed or replaced.
- weak: dictionary words, department, modality and vendor words, values with fewer than 4
  letters, punctuation only. Only a whole-value match in an element that should have been
  removed or replaced counts (and blocks).

An operator may release one value they judge not identifying (`release=("KEYWORD=VALUE", ...)`):
an explicit per-value override that the caller records in the audit log.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import re
import struct
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import cast

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.valuerep import PersonName

from tui.core.dicom import annex_e
from tui.core.dicom.scan import Participant, Skipped, read_header
from tui.core.dicom.tags import malformed_element
from tui.core.dicom.uidmap import is_well_known
from tui.core.errors import MrishareError
from tui.core.wordlists import word_list

TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UT", "UC", "UR", "CS"})
DATE_VRS = frozenset({"DA", "DT"})
DEFLATED = "1.2.840.10008.1.2.1.99"
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
# VRs whose values name no one and that the collector never reads (numbers, binary data, times)
_UNREAD_VRS = frozenset({"US", "UL", "SS", "SL", "SV", "UV", "FL", "FD", "OB", "OW", "OF", "OD", "OL", "OV", "AT",
                         "IS", "DS", "TM"})
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


@lru_cache(maxsize=1)
def _dictionary() -> frozenset[str]:
    """Our passphrase word lists (English and German) as one set."""
    return frozenset(word_list("en")) | frozenset(word_list("de"))


def _generic(token: str) -> bool:
    """True for a common word (our passphrase word lists or `_GENERIC_PARTS`), false alarms if searched alone."""
    low = token.lower()
    return low in _GENERIC_PARTS or low in _dictionary()


# Kinds that are the participant's identity: never dropped because another element keeps the value.
CORE_KINDS = ("PatientName", "PatientID", "birth date", "OtherPatient", "PatientBirthName",
              "PatientMotherBirthName", "UID")
_UID_TOKEN = re.compile(r"[0-9]+(?:\.[0-9]+){2,}")
_UID_TOKEN_BYTES = re.compile(rb"[0-9]+(?:\.[0-9]+){2,}")
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
_SPLIT = re.compile(r"[\s^=,;/()\[\]\"']+|(?<=\D)[-.](?=\D)")
_BIRTH_FORMATS = ("%Y%m%d", "%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%Y.%m.%d", "%d-%m-%Y")
_DATE_FORMATS = ("%Y%m%d", "%d.%m.%Y", "%Y-%m-%d")


STRONG, KEPT, WEAK = "strong", "kept", "weak"
# Department, modality, vendor and format words: identify nobody on their own.
_DOMAIN_WORDS = frozenset({
    "mri", "mrt", "mr", "ct", "pet", "dicom", "dcm", "nifti", "radiology", "radiologie", "neuroradiology",
    "neuroradiologie", "imaging", "scanner", "research", "forschung", "siemens", "philips", "ge", "gems",
    "general electric", "canon", "toshiba", "hitachi", "fujifilm", "uih", "united imaging", "bruker", "healthcare",
    "medical systems", "phantom", "qa", "brain", "head", "kopf", "study", "studie", "mrishare",
    "dcm2nii", "dcm2niix", "dicom2nifti", "anonymous", "anonymized",
})
# Sidecar keys whose values the converter writes about itself, not about the input.
OWN_SIDECAR_KEYS = frozenset({"ConversionSoftware", "ConversionSoftwareVersion"})


@dataclass(frozen=True)
class Identifier:
    """One identifying value of a participant; `kind` says what it is without revealing it."""

    kind: str
    value: str = field(repr=False)
    bounded: bool = False
    """Match only as a whole word (short name parts), so that it does not fire inside other words."""
    strength: str = STRONG
    """STRONG (blocks anywhere), KEPT (the input keeps it elsewhere: a note) or WEAK (whole value only)."""


@dataclass(frozen=True)
class Leak:
    """An identifier found in an output: file, place (tag path, "path name", "bytes @offset"), kind."""

    file: str
    where: str
    kind: str
    blocks: bool = True
    """False for a note: a value the input keeps on purpose elsewhere (PatientPosition HFS, a kept date)."""

    def __str__(self) -> str:
        return f"{self.file}: {self.kind} found in {self.where}" + ("" if self.blocks else " (does not block)")


@dataclass(frozen=True)
class Identifiers:
    """A participant's identifying values, with the compiled searches over text and bytes."""

    items: tuple[Identifier, ...] = ()
    uids: frozenset[str] = frozenset()
    released: frozenset[str] = frozenset()
    """Operator overrides (KEYWORD=VALUE) that matched one of the participant's values."""

    def __bool__(self) -> bool:
        return bool(self.items or self.uids)

    def __repr__(self) -> str:
        return f"Identifiers({len(self.items)} values, {len(self.uids)} UIDs)"

    def with_uids(self, extra: Iterable[str]) -> Identifiers:
        """The same values plus more UIDs (one file's own), sharing the compiled searches."""
        other = Identifiers(self.items, self.uids | frozenset(extra), self.released)
        for name in ("_text_forms", "_text_regex", "_strong_regex", "_whole", "_byte_cache"):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    @cached_property
    def token(self) -> str:
        """A digest of the values: a cache key that reveals nothing."""
        digest = hashlib.sha256()
        for item in sorted(self.items, key=lambda i: (i.kind, i.value)):
            digest.update(f"{item.kind}\x00{item.value}\x00{item.bounded}\x00{item.strength}\x01".encode())
        for uid in sorted(self.uids):
            digest.update(uid.encode() + b"\x02")
        return digest.hexdigest()[:16]

    @cached_property
    def _text_forms(self) -> list[tuple[str, Identifier]]:
        """(lower-cased search form, identifier) for every spelling of every strong or kept value."""
        forms = []
        for item in self.items:
            if item.strength != WEAK:
                for spelling in _spellings(item.value):
                    forms.append((spelling.lower(), item))
        return forms

    @cached_property
    def _text_regex(self) -> re.Pattern[str] | None:
        return _compile([(form, item.bounded) for form, item in self._text_forms], text=True)

    @cached_property
    def _strong_regex(self) -> re.Pattern[str] | None:
        """The strong values' text search, case-insensitive (for scrubbing)."""
        pattern = _compile([(f, i.bounded) for f, i in self._text_forms if i.strength == STRONG], text=True)
        return re.compile(pattern.pattern, re.IGNORECASE) if pattern is not None else None

    @cached_property
    def _whole(self) -> dict[str, Identifier]:
        """Whole values (normalised) of every identifier: an element that still holds one was not cleaned."""
        whole: dict[str, Identifier] = {}
        for item in sorted(self.items, key=lambda i: i.strength != STRONG):
            for spelling in _spellings(item.value):
                whole.setdefault(_normal(spelling), item)
        return whole

    @cached_property
    def _byte_cache(self) -> dict[tuple[str, ...], tuple[list, re.Pattern[bytes] | None]]:
        return {}

    def _byte_search(self, encodings: tuple[str, ...] = ()) -> tuple[list, re.Pattern[bytes] | None]:
        """(forms, regex) of the strong values in UTF-8, ISO-8859-1 and the file's own `encodings`."""
        if encodings not in self._byte_cache:
            forms: dict[bytes, Identifier] = {}
            for item in self.items:
                if item.strength != STRONG:
                    continue
                for spelling in _spellings(item.value):
                    for variant in (spelling, spelling.upper(), spelling.lower(), _upper_keep_sz(spelling)):
                        for encoded in _encodings_of(variant, encodings):
                            forms.setdefault(encoded.lower(), item)
            listed = list(forms.items())
            self._byte_cache[encodings] = (listed, _compile([(f, i.bounded) for f, i in listed], text=False))
        return self._byte_cache[encodings]

    @property
    def _byte_regex(self) -> re.Pattern[bytes] | None:
        """The strong values' byte search (UTF-8 and ISO-8859-1): a cheap pre-check for the cleaner."""
        return self._byte_search()[1]

    def find_text(self, text: str) -> Iterator[tuple[Identifier, int]]:
        """(identifier, offset) for each strong or kept identifier found in `text`."""
        if self._text_regex is not None:
            for match in self._text_regex.finditer(text.lower()):
                yield self._which(match.group(0).lower(), self._text_forms), match.start()
        if self.uids:
            for match in _UID_TOKEN.finditer(text):
                if match.group(0) in self.uids:
                    yield Identifier("UID", ""), match.start()

    def whole_value(self, text: str) -> Identifier | None:
        """The identifier that `text` is as a whole (any class), None if it is none."""
        return self._whole.get(_normal(text)) if text.strip() else None

    def find_bytes(self, data: bytes, encodings: tuple[str, ...] = ()) -> Iterator[tuple[Identifier, int]]:
        """(identifier, offset) for each strong identifier found in raw `data`.

        Our own text is masked first; in ISO 2022 multi-byte runs (7-bit codes that look like
        ASCII) only values that are themselves multi-byte are matched, never ASCII fragments.
        """
        forms, regex = self._byte_search(encodings)
        masked = _mask_own(data)
        runs = _multibyte_runs(masked) if b"\x1b$" in masked else []
        if regex is not None:
            for match in regex.finditer(masked):
                if runs and match.group(0).isascii() and _inside(match.start(), runs):
                    continue
                yield self._which(match.group(0).lower(), forms), match.start()
        if self.uids:
            for match in _UID_TOKEN_BYTES.finditer(masked):
                if match.group(0).decode("ascii") in self.uids:
                    yield Identifier("UID", ""), match.start()

    def scrub(self, text: str) -> str:
        """`text` with every strong identifier removed (UIDs included), the rest kept; a value that is
        a weak or kept identifier as a whole becomes empty."""
        if self.whole_value(text) is not None:
            return ""
        if self._strong_regex is not None:
            text = self._strong_regex.sub("", text)
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


def _normal(text: str) -> str:
    """A value for whole-value comparison: case-folded, carets and runs of blanks as one space."""
    return " ".join(re.sub(r"[\^=]+", " ", text).split()).casefold()


def _encodings_of(text: str, encodings: tuple[str, ...]) -> Iterator[bytes]:
    """`text` in UTF-8, ISO-8859-1 and each of a file's own character sets (ISO 2022 with escapes)."""
    for encoding in ("utf-8", "latin-1"):
        try:
            yield text.encode(encoding)
        except UnicodeEncodeError:
            continue
    if encodings and not text.isascii():
        from pydicom.charset import encode_string

        with contextlib.suppress(UnicodeEncodeError, LookupError, ValueError):
            yield encode_string(text, list(encodings))


# Text the program writes into every DICOM file it releases (PS3.15 E.1.1 marking, CID 7050 meanings,
# option names, our implementation name): never a finding, masked before the raw search.
def _own_texts() -> tuple[bytes, ...]:
    from tui import __version__

    words = ["Basic Application Confidentiality Profile", "Basic Profile", f"MRISHARE_{__version__}"[:16],
             f"mrishare {__version__}", "UNMODIFIED", "MODIFIED", "REMOVED", "Clean Pixel Data Option"]
    words += [name for name in annex_e.OPTIONS]
    words += ["Clean Graphics Option", "Clean Structured Content Option", "Clean Descriptors Option",
              "Retain Longitudinal Temporal Information Full Dates Option",
              "Retain Longitudinal Temporal Information Modified Dates Option",
              "Retain Patient Characteristics Option", "Retain Device Identity Option", "Retain UIDs Option",
              "Retain Safe Private Option", "Retain Institution Identity Option"]
    return tuple(sorted({w.encode("ascii") for w in words}, key=len, reverse=True))


_OWN = re.compile(b"|".join(re.escape(w) for w in _own_texts())
                  + rb"|ISO[ _]2022[ _]IR[ _]\d+|ISO_IR[ _]\d+|GB18030|GBK")


def _mask_own(data: bytes) -> bytes:
    """`data` with our own marking text and character-set terms blanked (same length)."""
    return _OWN.sub(lambda m: b" " * len(m.group(0)), data)


_ESCAPE = re.compile(rb"\x1b[\$\(\)\*\+\-\.\/]+[@-~]?")


def _multibyte_runs(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges in ISO 2022 multi-byte mode (after ESC $ ..., up to the next escape)."""
    runs, start = [], None
    for match in _ESCAPE.finditer(data):
        if start is not None:
            runs.append((start, match.start()))
            start = None
        if match.group(0).startswith(b"\x1b$"):
            start = match.end()
    if start is not None:
        runs.append((start, len(data)))
    return runs


def _inside(offset: int, runs: list[tuple[int, int]]) -> bool:
    return any(begin <= offset < end for begin, end in runs)


def _upper_keep_sz(text: str) -> str:
    """Upper case but keep ß (DICOM files write 'MÜßIG...' as often as 'MÜSSIG...')."""
    return "".join(c if c == "ß" else c.upper() for c in text)


def _spellings(value: str) -> set[str]:
    """The value, its umlaut transliteration and its accent-free form (only for Latin script: the
    ASCII left of a Japanese or Chinese value is a fragment, not a spelling of it)."""
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    latin = all(c.isascii() or unicodedata.name(c, "").startswith("LATIN") for c in value)
    return {s for s in (value, value.translate(_TRANSLIT), plain if latin else "") if s}


def _compile(forms: list[tuple], text: bool) -> re.Pattern | None:
    """One alternation over all forms (longest first); bounded forms get word-boundary guards on the
    sides where they start or end with a word character (an ISO 2022 escape is its own boundary)."""
    if not forms:
        return None
    unique = sorted(set(forms), key=lambda f: -len(f[0]))
    if text:
        def guard(form: str) -> str:
            head = r"(?<![^\W_])" if re.match(r"[^\W_]", form[:1]) else ""
            tail = r"(?![^\W_])" if re.match(r"[^\W_]", form[-1:]) else ""
            return head + re.escape(form) + tail

        return re.compile("|".join(guard(f) if b else re.escape(f) for f, b in unique))

    def guard_b(form: bytes) -> bytes:
        escaped = b"\x1b" in form  # ISO 2022: the escape sequences delimit the value
        head = rb"(?<![A-Za-z0-9])" if form[:1].isalnum() and not escaped else b""
        tail = rb"(?![A-Za-z0-9])" if form[-1:].isalnum() and not escaped else b""
        return head + re.escape(form) + tail

    return re.compile(b"|".join(guard_b(f) if b else re.escape(f) for f, b in unique), re.IGNORECASE)


# --- collecting -------------------------------------------------------------------------------


class IdentifierCollector:
    """Gathers identifying values from a participant's source datasets under the chosen options.

    Values the profile removes or replaces (X, Z, D, U, and dates it shifts) are identifiers;
    values it keeps on purpose (an option's K) are not, so the gate does not block what the
    operator chose to retain.
    """

    def __init__(self, options: frozenset[str] = frozenset(), release: Iterable[str] = ()) -> None:
        self.options = annex_e.validate_options(options)
        self.release = parse_releases(release)
        self._items: dict[tuple[str, str], Identifier] = {}
        self._uids: set[str] = set()
        self._kept: set[str] = set()
        self._kept_dates: set[str] = set()
        self._cleaned: set[str] = set()
        self.released: set[str] = set()
        """KEYWORD=VALUE overrides that matched a value of this participant (for the audit)."""

    def add_dataset(self, ds: Dataset) -> None:
        """Collect from one dataset, its file meta and every nested item."""
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            uid = str(meta.get("MediaStorageSOPInstanceUID", "") or "").rstrip("\x00 ")
            if uid and "rtn_uids" not in self.options and not is_well_known(uid):
                self._uids.add(uid)
        self._walk(ds)

    def _walk(self, ds: Dataset) -> None:
        """Collect from each element by its VR and its Annex E action (numbers and binary values are passed
        over before pydicom converts them: an enhanced file's per-frame groups are mostly numbers)."""
        for raw in ds.elements():
            if raw.VR in _UNREAD_VRS:
                continue
            elem = ds[raw.tag]
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
                if action == "K":
                    self._kept_dates.update(str(v).strip()[:8] for v in _values(elem.value))
                if action in ("X", "Z", "D", "C"):
                    formats = _BIRTH_FORMATS if "Birth" in keyword else _DATE_FORMATS
                    for value in _values(elem.value):
                        self._add_date("birth date" if "Birth" in keyword else "date", value, formats)
                continue
            if elem.VR not in TEXT_VRS:
                continue
            values = [v for v in (str(x).strip(" \x00") for x in _values(elem.value)) if v]
            if action == "K":
                self._kept.update(_normal(v) for v in values)
                continue
            if action == "C":  # cleaned, not kept: the participant's identity is scrubbed out of it
                self._cleaned.update(_normal(v) for v in values)
                continue
            if elem.VR == "CS":  # coded values name no one
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
            self._dates[(kind, text)] = when.strftime("%Y%m%d")

    @cached_property
    def _dates(self) -> dict[tuple[str, str], str]:
        """The YYYYMMDD source of each date identifier (to compare with the dates the options keep)."""
        return {}

    def result(self) -> Identifiers:
        """The collected identifiers, each in its class; overridden values left out."""
        items = []
        for key, item in self._items.items():
            override = self._override(item)
            if override:
                self.released.add(override)
                continue
            core = item.kind.startswith(CORE_KINDS) or "date" in item.kind
            if not core and _normal(item.value) in self._kept | self._cleaned:
                continue  # e.g. a description the profile keeps elsewhere: not an identifier at all
            strength = _strength(item, self._kept, self._dates.get(key), self._kept_dates)
            items.append(replace(item, strength=strength))
        return Identifiers(tuple(items), frozenset(self._uids), frozenset(self.released))

    def _override(self, item: Identifier) -> str:
        """The KEYWORD=VALUE override that releases `item`, or ''."""
        for keyword, value in self.release:
            if item.kind.split(" ")[0] != keyword:
                continue
            mine, released = _normal(item.value), _normal(value)
            if mine == released or (item.kind.endswith(" part") and mine in _normal(_SPLIT.sub(" ", value)).split()):
                return f"{keyword}={value}"
        return ""


def parse_releases(release: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """'KEYWORD=VALUE' overrides as pairs; a malformed one is an error naming it."""
    pairs = []
    for text in release:
        keyword, sep, value = str(text).partition("=")
        if not sep or not keyword.strip() or not value.strip():
            raise MrishareError(f"--release-value needs KEYWORD=VALUE (e.g. PatientName=HFS), got {text!r}")
        pairs.append((keyword.strip(), value.strip()))
    return tuple(pairs)


def _strength(item: Identifier, kept: set[str], date: str | None, kept_dates: set[str]) -> str:
    """The class of one identifier: KEPT if the input keeps the same value in a kept attribute,
    WEAK if it is a common word, STRONG otherwise (see the module docstring)."""
    if date is not None:
        return KEPT if date in kept_dates else STRONG
    value = _normal(item.value)
    if value in kept:
        return KEPT
    letters = sum(c.isalpha() for c in value)
    if not any(c.isalnum() for c in value) or value in _DOMAIN_WORDS:
        return WEAK
    if item.kind.startswith(("PatientID", "OtherPatient", "AccessionNumber", "UID")) or value.isdigit():
        return STRONG
    whole_name = item.kind in ("PatientName", "PatientBirthName", "PatientMotherBirthName")
    # fewer than 4 letters (and short: "cd200917a" is specific), or one character of a non-Latin script
    short = (letters < 4 and len(value) < 6) if value.isascii() else len(value) < 2
    if short or (not whole_name and " " not in value and _generic(value)):
        return WEAK
    return STRONG


def _fmt_name(fmt: str) -> str:
    """'%d.%m.%Y' -> 'DD.MM.YYYY' (names the format in a Leak without the value)."""
    return fmt.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")


def _values(value: object) -> list:
    """An element value as a list (multi-valued or single)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(cast("Iterable[object]", value))
    return [value]


def _is_instance_uid(keyword: str) -> bool:
    """UIDs naming instances (not classes, syntaxes or coding schemes) identify a study."""
    return keyword.endswith("UID") and not keyword.endswith(("ClassUID", "SyntaxUID", "SchemeUID"))


def identifiers_from_datasets(datasets: Iterable[Dataset], options: frozenset[str] = frozenset(),
                              release: Iterable[str] = ()) -> Identifiers:
    """Identifiers gathered from `datasets` (headers are enough) under `options`, minus `release` overrides."""
    collector = IdentifierCollector(options, release)
    for ds in datasets:
        collector.add_dataset(ds)
    return collector.result()


def collect_identifiers(participant: Participant, options: frozenset[str] = frozenset(),
                        release: Iterable[str] = ()) -> Identifiers:
    """The participant's identifying values, from the first header of every series of every patient
    in the folder (misfiled ones too). Values that differ per file (each instance's own UIDs) are
    added per file by the de-identification worker (`Identifiers.with_uids`)."""
    collector = IdentifierCollector(options, release)
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
    """Findings in a piece of text that carries input values (a file name, a sidecar value):
    strong identifiers block, kept ones are notes, weak ones are not searched inside text."""
    return [Leak(file, where, item.kind, item.strength == STRONG) for item, _ in identifiers.find_text(text)]


def check_value(text: str, identifiers: Identifiers, where: str, file: str, removed: bool) -> list[Leak]:
    """Findings in one element value. `removed`: the profile removes or replaces this element, so a
    value that is an identifier as a whole (any class: `HFS`, `MRI`, `-----`) blocks there."""
    leaks = check_text(text, identifiers, where, file)
    whole = identifiers.whole_value(text) if removed else None
    if whole is not None and whole.strength != STRONG:
        leaks = [leak for leak in leaks if leak.blocks] + [Leak(file, where, whole.kind)]
    return leaks


def check_bytes(
    data: bytes, identifiers: Identifiers, file: str = "", skip: Iterable[tuple[int, int]] = (),
    encodings: tuple[str, ...] = (),
) -> list[Leak]:
    """Strong identifiers in raw bytes (also in the file's own character sets `encodings`), outside
    the `skip` ranges (pixel data: text there needs OCR, not grep)."""
    leaks = []
    start = 0
    for begin, end in sorted(skip):
        leaks += _bytes_leaks(data[start:begin], identifiers, file, start, encodings)
        start = max(start, end)
    leaks += _bytes_leaks(data[start:], identifiers, file, start, encodings)
    return leaks


def _bytes_leaks(chunk: bytes, identifiers: Identifiers, file: str, base: int,
                 encodings: tuple[str, ...] = ()) -> list[Leak]:
    """Leaks in one chunk, offsets counted from the start of the file."""
    return [Leak(file, f"bytes @{base + offset}", item.kind)
            for item, offset in identifiers.find_bytes(chunk, encodings)]


def check_paths(paths: Iterable[Path | str], identifiers: Identifiers, root: Path | None = None) -> list[Leak]:
    """Leaks in path names (relative to `root` when given: the output folder is the operator's choice)."""
    leaks = []
    for path in paths:
        rel = Path(path).relative_to(root) if root is not None else Path(path)
        leaks += check_text(str(rel), identifiers, "path name", str(rel))
    return leaks


# Elements the program writes itself (PS3.15 E.1.1 marking) or that name encodings: never findings.
OWN_TAGS = frozenset({0x00080005, 0x00120062, 0x00120063, 0x00120064, 0x00280303, 0x00020010, 0x00020012,
                      0x00020013})
# Code sequence items of a standard coding scheme hold the standard's words, not the participant's.
_CODE_TAGS = frozenset({0x00080100, 0x00080102, 0x00080104, 0x00080103})
_STANDARD_SCHEMES = frozenset({"DCM", "SCT", "SRT", "LN", "UCUM", "FMA", "RADLEX", "NCIT", "UMLS", "ACR"})


def check_dataset(ds: Dataset, identifiers: Identifiers, file: str = "",
                  options: frozenset[str] = frozenset()) -> list[Leak]:
    """Findings in every parsed (decoded) element of `ds` at every depth, file meta included, pixel
    data and our own marking excluded; `options` tell which elements should have been removed."""
    leaks: list[Leak] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _walk_check(meta, "", identifiers, file, leaks, options)
    _walk_check(ds, "", identifiers, file, leaks, options)
    return leaks


def _walk_check(ds: Dataset, prefix: str, identifiers: Identifiers, file: str, leaks: list[Leak],
                options: frozenset[str]) -> None:
    """Append the findings of each element (text values and binary blobs) under `prefix`."""
    standard_code = str(ds.get("CodingSchemeDesignator", "") or "").strip().upper() in _STANDARD_SCHEMES
    for elem in ds:
        tag = int(elem.tag)
        where = f"{prefix}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if tag in OWN_TAGS or (standard_code and tag in _CODE_TAGS):
            continue
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or ()):
                _walk_check(item, f"{where}[{index}]", identifiers, file, leaks, options)
            continue
        value = elem.value
        if value is None or tag in PIXEL_TAGS:
            continue
        if isinstance(value, (bytes, bytearray)):
            leaks += [Leak(file, where, item.kind) for item, _ in identifiers.find_bytes(bytes(value))]
            continue
        removed = (tag >> 16) & 1 == 1 or annex_e.lookup(tag, elem.VR, None, options).action not in ("K", "C")
        for one in _values(value):
            if isinstance(one, (str, PersonName)):
                leaks += check_value(str(one), identifiers, where, file, removed)


def charsets_of(ds: Dataset) -> tuple[str, ...]:
    """The Python codecs of the dataset's SpecificCharacterSet (empty for the default repertoire)."""
    from pydicom.charset import convert_encodings

    terms = ds.get("SpecificCharacterSet") or ""
    terms = [terms] if isinstance(terms, str) else list(terms)
    if not any(str(t).strip() for t in terms):
        return ()
    try:
        return tuple(convert_encodings([str(t).strip() for t in terms]))
    except (LookupError, ValueError):
        return ()


def summarize(leaks: Iterable[Leak], limit: int = 8) -> list[str]:
    """Findings grouped by kind, place and whether they block: one line per group, not one per file."""
    groups: dict[tuple[bool, str, str], list[str]] = {}
    for leak in leaks:
        where = "raw bytes" if leak.where.startswith("bytes @") else leak.where
        groups.setdefault((not leak.blocks, leak.kind, where), []).append(leak.file)
    lines = []
    for (note, kind, where), files in sorted(groups.items()):
        unique = sorted(set(files))
        count = f"{len(unique)} file(s), e.g. {unique[0]}" if len(unique) > 1 else unique[0]
        lines.append(f"{kind} in {where}: {count}" + (" (does not block)" if note else " (blocks)"))
    return lines[:limit] + ([f"... and {len(lines) - limit} more group(s)"] if len(lines) > limit else [])


def kept_notes(identifiers: Identifiers) -> list[str]:
    """Warnings for the participant's own identity values that the input also keeps on purpose
    (birth date equal to a kept study date, a name equal to a kept code such as HFS)."""
    kinds = sorted({item.kind.split(" (")[0] for item in identifiers.items if item.strength == KEPT})
    return [f"{kind} equals a value kept on purpose elsewhere (a kept date or code): visible there, "
            "not quarantined" for kind in kinds]


def pixel_ranges(ds: Dataset) -> list[tuple[int, int]]:
    """Byte ranges of top-level pixel data values in the file `ds` was read from (not yet decoded)."""
    ranges = []
    for tag in PIXEL_TAGS:
        raw = ds.get_item(tag) if tag in ds else None
        tell = getattr(raw, "value_tell", None)
        # pydicom's get_item overload omits RawDataElement, the only kind with a value_tell and a length
        if raw is not None and tell is not None and raw.length not in (None, 0xFFFFFFFF):  # type: ignore[attr-defined]
            ranges.append((tell, tell + raw.length))  # type: ignore[attr-defined]
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
            with contextlib.suppress(zlib.error):
                body = keyword + b" " + zlib.decompress(packed[1:])
        if kind != b"IDAT":
            parts.append(body)
        offset += 12 + length
    return b"\n".join(parts)


# Pages the program writes from its own templates (tui/core/nifti/participant_docs.py); the only input
# values in them are the package's file names, which the gate checks as path names.
OWN_DOCS = frozenset({"README.txt", "index.html"})


def check_files(paths: Iterable[Path], identifiers: Identifiers, root: Path | None = None,
                options: frozenset[str] = frozenset()) -> list[Leak]:
    """The gate over files on disk: path names, raw bytes (inflated if deflated), parsed DICOM
    elements, JSON sidecar values; our own pages by name and by what they embed."""
    leaks: list[Leak] = []
    for path in paths:
        path = Path(path)
        name = str(path.relative_to(root)) if root is not None else str(path)
        leaks += check_paths([path], identifiers, root)
        data = path.read_bytes()
        if path.name in OWN_DOCS:  # our template and the values a preset keeps; embedded pictures and volumes count
            leaks += check_embedded(data, identifiers, name, text=False)
            continue
        if path.suffix == ".json":
            leaks += _check_json(data, identifiers, name, options)
            continue
        if path.name.endswith(".gz"):
            with contextlib.suppress(OSError, EOFError, zlib.error):
                data = gzip.decompress(data)
        if path.name.endswith((".nii", ".nii.gz")):
            leaks += check_bytes(_nifti_header(data), identifiers, name)
            continue
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            leaks += check_bytes(_png_metadata(data), identifiers, name)
            continue
        if path.suffix in (".html", ".js"):
            leaks += check_embedded(data, identifiers, name)
            continue
        try:
            ds = pydicom.dcmread(path, force=False)
        except (InvalidDicomError, OSError, ValueError, EOFError, struct.error, KeyError, TypeError, AttributeError):
            leaks += check_bytes(data, identifiers, name)
            continue
        encodings = charsets_of(ds)
        leaks += check_bytes(data, identifiers, name, pixel_ranges(ds), encodings)
        ts = str(getattr(ds.file_meta, "TransferSyntaxUID", ""))
        if ts == DEFLATED:
            leaks += check_bytes(_inflate(data), identifiers, f"{name} (inflated)", (), encodings)
        leaks += check_dataset(ds, identifiers, name, options)
    return leaks


def _check_json(data: bytes, identifiers: Identifiers, name: str, options: frozenset[str]) -> list[Leak]:
    """A sidecar: only its values came from the input (keys are ours); a key that is a DICOM keyword
    tells whether the value should have been removed. Not JSON: searched as raw bytes."""
    import json

    from pydicom.datadict import dictionary_VR, tag_for_keyword

    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return check_bytes(data, identifiers, name)
    leaks: list[Leak] = []
    for key, text in _json_strings(document, ""):
        if key in OWN_SIDECAR_KEYS:
            continue
        tag = tag_for_keyword(key.rsplit(".", 1)[-1].split("[")[0])
        removed = tag is not None and annex_e.lookup(tag, dictionary_VR(tag), None, options).action not in ("K", "C")
        leaks += check_value(text, identifiers, key or "value", name, removed)
    return leaks


def _json_strings(node: object, path: str) -> Iterator[tuple[str, str]]:
    """(key path, string) for every string value in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _json_strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _json_strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


# base64 runs as data: URIs and viewer volumes write them; shorter runs are ordinary words and code
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{64,}={0,2}")


def check_embedded(data: bytes, identifiers: Identifiers, file: str = "", text: bool = True) -> list[Leak]:
    """A page or script: its text without long base64 runs (unless `text` is False: our own template), and each
    run decoded and searched as what it is.

    Random base64 (a compressed volume, a PNG) holds short names by chance, as a deflated stream does;
    decoded, a NIfTI is searched in its header and a PNG in its metadata, like the files themselves.
    """
    leaks = check_bytes(_BASE64_RUN.sub(b" ", data), identifiers, file) if text else []
    for match in _BASE64_RUN.finditer(data):
        where = f"{file} (embedded @{match.start()})"
        try:
            blob = base64.b64decode(match.group(), validate=True)
        except (binascii.Error, ValueError):
            leaks += check_bytes(match.group(), identifiers, where)
            continue
        if blob.startswith(b"\x1f\x8b"):
            with contextlib.suppress(OSError, EOFError, zlib.error):
                blob = gzip.decompress(blob)
        if blob.startswith(b"\x89PNG\r\n\x1a\n"):
            blob = _png_metadata(blob)
        leaks += check_bytes(_nifti_header(blob), identifiers, where)
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
