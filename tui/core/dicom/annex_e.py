"""PS3.15 Annex E: what the Basic Profile and its options do to each attribute, and why.

One question, asked for every element of every file by de-identification and inspection:
`lookup(tag, vr, private_creator, options, ...)` -> `Decision(action, code, reason, review)`.

Actions (PS3.15 Table E.1-1a): D dummy value, Z zero length (or dummy), X remove, K keep
(sequences: keep and apply the profile inside), C clean, U replace the UID consistently.
For a private attribute kept by the Retain Safe Private Option the action is C, as the table's
private row says; since E.3.10-1 lists attributes "known to be safe", cleaning them means
keeping their value. Compound codes (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) are resolved to one action by
the attribute's Type in the IOD, as Table E.1-1a defines them.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from tui.assets import ASSETS
from tui.core.errors import MrishareError

TABLE_EDITION = "PS3.15 2025e"
OPTIONS: tuple[str, ...] = (
    "rtn_safe_priv",
    "rtn_uids",
    "rtn_dev_id",
    "rtn_inst_id",
    "rtn_pat_chars",
    "rtn_long_full_dates",
    "rtn_long_modif_dates",
    "clean_desc",
    "clean_struct_cont",
    "clean_graph",
)
TABLE_DIR = ASSETS / "annex_e"

FREE_TEXT_VRS = frozenset({"LO", "LT", "ST", "UT", "SH", "PN", "UC"})
"""VRs whose values an operator can type: unlisted attributes with them are flagged for review."""
TEMPORAL_VRS = frozenset({"DA", "DT", "TM"})

IODS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "1.2.840.10008.5.1.4.1.1.4": ("mr", "MR Image"),
    "1.2.840.10008.5.1.4.1.1.4.1": ("enhanced_mr", "Enhanced MR Image"),
    "1.2.840.10008.5.1.4.1.1.2": ("ct", "CT Image"),
    "1.2.840.10008.5.1.4.1.1.7": ("sc", "Secondary Capture Image"),
    "1.2.840.10008.5.1.4.1.1.88.11": ("basic_text_sr", "Basic Text SR"),
    "1.2.840.10008.5.1.4.1.1.104.1": ("encapsulated_pdf", "Encapsulated PDF"),
})
"""SOP Class UID -> (column in iod_attribute_types.csv, IOD name): the IODs whose Types we know."""

# How much each single action takes away; a compound code lists its choices in this order.
_REMOVAL = {"X": 0, "Z": 1, "D": 2, "U": 2}
# Attribute Type -> the least a value must keep for the IOD to stay valid (same scale).
_NEED = {"3": 0, "": 0, "2": 1, "2C": 1, "1": 2, "1C": 2}
# When two selected options give different actions for one row, the more protective one wins.
# PS3.15 E.1.1 only says "A requirement for an Option, when implemented, overrides any
# requirement for the underlying Profile" (dicom.nema.org part15 sect_E.1.1); it sets no order
# between options, and E.3.6 makes the two rtn_long_* options alternatives (validate_options).
# The only conflicts left in the 2025e table are device calibration dates/times, where
# rtn_dev_id says K and rtn_long_modif_dates says C: an operator who asked for modified dates
# asked that no true date leaves, so C beats K (E.3.5 likewise adds its cleaning on top of "any
# other Options specified").
_PROTECTIVE = {"X": 5, "Z": 4, "D": 3, "U": 2, "C": 1, "K": 0}


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1."""

    tag: str
    """`GGGG,EEEE` as printed, or a pattern: `60xx,3000`, `60xx,4000`, `50xx,xxxx`, `gggg,eeee`."""
    keyword: str
    name: str
    basic: str
    """Basic Profile action code, possibly compound (`X/Z/D`)."""
    options: Mapping[str, str]
    """Option name -> action, only for the options that change the basic action."""
    retired: bool
    in_std_comp_iod: bool


@dataclass(frozen=True)
class Decision:
    """What to do with one element, and why."""

    action: str
    """One of D, Z, X, K, C, U."""
    code: str
    """The table code that led to `action` (e.g. `X/Z/D`, `K`), or "" when not in E.1-1."""
    reason: str
    """Short human text naming the row or option; never contains a value."""
    review: bool
    """Not in the table but free text, date/time or UID: a human should look."""


@dataclass(frozen=True)
class _Tables:
    exact: dict[int, Rule]
    overlay: dict[int, Rule]
    curve: Rule
    private: Rule
    safe: frozenset[tuple[str, int, int]]
    safe_blocks: frozenset[tuple[str, int]]
    types: dict[int, dict[str, str]]


def _tag(text: str) -> int:
    """`GGGG,EEEE` -> int."""
    group, element = text.split(",")
    return int(group, 16) << 16 | int(element, 16)


def _read(name: str) -> list[dict[str, str]]:
    with open(TABLE_DIR / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@functools.cache
def _tables() -> _Tables:
    """Parse the CSVs once per process."""
    exact: dict[int, Rule] = {}
    overlay: dict[int, Rule] = {}
    patterns: dict[str, Rule] = {}
    for row in _read("annex_e_table_e1_1.csv"):
        rule = Rule(
            tag=row["tag"],
            keyword=row["keyword"],
            name=row["name"],
            basic=row["basic"],
            options=MappingProxyType({o: row[o] for o in OPTIONS if row[o]}),
            retired=row["retired"] == "Y",
            in_std_comp_iod=row["in_std_comp_iod"] == "Y",
        )
        if rule.tag.startswith("60xx,"):
            overlay[int(rule.tag[5:], 16)] = rule
        elif "x" in rule.tag or "g" in rule.tag:
            patterns[rule.tag] = rule
        else:
            exact[_tag(rule.tag)] = rule
    safe = set()
    for row in _read("annex_e_table_e3_10_1_safe_private.csv"):
        group, element = row["tag"].split(",")
        safe.add((row["private_creator"].strip(), int(group, 16), int(element[2:], 16)))
    types = {
        _tag(row["tag"]): {uid: row[column] for uid, (column, _) in IODS.items()}
        for row in _read("iod_attribute_types.csv")
    }
    return _Tables(
        exact=exact,
        overlay=overlay,
        curve=patterns["50xx,xxxx"],
        private=patterns["gggg,eeee"],
        safe=frozenset(safe),
        safe_blocks=frozenset((creator, group) for creator, group, _ in safe),
        types=types,
    )


def all_rules() -> list[Rule]:
    """Every row of Table E.1-1, patterns included."""
    t = _tables()
    return [*t.exact.values(), *t.overlay.values(), t.curve, t.private]


@functools.cache
def _meanings() -> dict[str, str]:
    return {row["code"]: row["description"] for row in _read("annex_e_table_e1_1a_action_codes.csv")}


def action_meaning(code: str) -> str:
    """Table E.1-1a's wording for an action code (single or compound), "" if unknown."""
    return _meanings().get(code, "")


def validate_options(options: Iterable[str]) -> frozenset[str]:
    """The option names as a frozenset; MrishareError on unknown names or both rtn_long_* options."""
    names = frozenset([options] if isinstance(options, str) else options)
    unknown = names.difference(OPTIONS)
    if unknown:
        raise MrishareError(f"unknown Annex E option {', '.join(sorted(unknown))} (known: {', '.join(OPTIONS)})")
    if {"rtn_long_full_dates", "rtn_long_modif_dates"} <= names:
        raise MrishareError("rtn_long_full_dates and rtn_long_modif_dates exclude each other (PS3.15 E.3.6)")
    return names


def rule_for(tag: int) -> Rule | None:
    """The E.1-1 row governing `tag`, including pattern rows; None if the table does not list it."""
    t = _tables()
    group = tag >> 16
    if group & 1:
        return t.private
    rule = t.exact.get(tag)
    if rule is not None:
        return rule
    if 0x6000 <= group <= 0x601E:
        return t.overlay.get(tag & 0xFFFF)
    if 0x5000 <= group <= 0x501E:
        return t.curve
    return None


def is_safe_private(tag: int, private_creator: str | None) -> bool:
    """True if Table E.3.10-1 lists this private data element (creator + group + element low byte)."""
    element = tag & 0xFFFF
    if not private_creator or not (tag >> 16) & 1 or element < 0x1000:
        return False
    return (private_creator.strip(), tag >> 16, element & 0xFF) in _tables().safe


@functools.lru_cache(maxsize=1 << 16)
def lookup(
    tag: int,
    vr: str | None = None,
    private_creator: str | None = None,
    options: frozenset[str] = frozenset(),
    required_type: str | None = None,
    sop_class: str | None = None,
) -> Decision:
    """Annex E action for one element under the Basic Profile plus `options`, with the reason.

    `private_creator`: for a private element its block's creator; for a private creator element
    (gggg,0010-00FF) its own value. `required_type` ("1", "1C", "2", "2C", "3") is the
    attribute's Type where the caller knows it; otherwise `sop_class` picks the Type from
    iod_attribute_types.csv (pass the dataset's SOP Class UID). Results are cached, so `options`
    must be a frozenset (use validate_options once per run).
    """
    opts = validate_options(options)
    if (tag >> 16) & 1:
        return _private(tag, private_creator, opts)
    rule = rule_for(tag)
    if rule is None:
        return _unlisted(tag, vr)
    chosen = [(o, rule.options[o]) for o in OPTIONS if o in opts and o in rule.options]
    label = f"E.1-1 ({rule.tag}) {rule.name}"
    if chosen:
        option, code = max(chosen, key=lambda c: _PROTECTIVE[c[1]])
        return Decision(code, code, f"{label}: option {option}: {code}", False)
    if "/" not in rule.basic:
        return Decision(rule.basic, rule.basic, f"{label}: basic {rule.basic}", False)
    action, why = _resolve(tag, rule, required_type, sop_class)
    return Decision(action, rule.basic, f"{label}: basic {rule.basic} -> {action} ({why})", False)


def _resolve(tag: int, rule: Rule, required_type: str | None, sop_class: str | None) -> tuple[str, str]:
    """Pick the most removing choice of a compound code that the attribute's Type allows (E.1-1a)."""
    choices = rule.basic.replace("*", "").split("/")
    types = _tables().types.get(tag, {})
    if required_type is not None:
        if required_type not in _NEED:
            raise MrishareError(f"unknown attribute Type {required_type!r} for ({tag >> 16:04X},{tag & 0xFFFF:04X})")
        kind, why = required_type, f"Type {required_type}"
    elif sop_class is not None and sop_class in IODS:
        kind = types.get(sop_class, "")
        name = IODS[sop_class][1]
        why = f"Type {kind} in {name}" if kind else f"not in {name}: E.1-1 Note 13"
    elif sop_class is None:
        # Unknown object: the strictest Type among the IODs we handle keeps all of them valid.
        kind = max(types.values(), key=lambda k: _NEED[k], default="")
        why = f"strictest Type {kind} of the IODs we know" if kind else "in none of the IODs we know"
    else:
        return choices[-1], "IOD without known Types: the choice every IOD accepts"
    need = _NEED[kind]
    return next((c for c in choices if _REMOVAL[c] >= need), choices[-1]), why


def _private(tag: int, creator: str | None, opts: frozenset[str]) -> Decision:
    """Private attributes: X, unless rtn_safe_priv and E.3.10-1 lists them; creators follow their block."""
    row = _tables().private
    is_creator = 0x0010 <= tag & 0xFFFF <= 0x00FF
    if "rtn_safe_priv" in opts and creator:
        keep = row.options["rtn_safe_priv"]
        if is_creator and (creator.strip(), tag >> 16) in _tables().safe_blocks:
            return Decision("K", keep, "private creator of a block with safe attributes (E.3.10-1): K", False)
        if is_safe_private(tag, creator):
            return Decision(keep, keep, f"private, safe in E.3.10-1: option rtn_safe_priv: {keep}", False)
    what = "private creator, block removed" if is_creator else "private, not safe"
    return Decision(row.basic, row.basic, f"{what}: {row.basic}", False)


def _unlisted(tag: int, vr: str | None) -> Decision:
    """Standard attributes Table E.1-1 does not list are kept; free text, dates and UIDs get a review flag."""
    if vr is None or vr == "UN":
        # Imported here: pydicom takes ~0.3 s, and the CLI reads OPTIONS for every `mrishare --help`.
        from pydicom.datadict import dictionary_VR

        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = vr or ""
    if vr in FREE_TEXT_VRS:
        kind = "free text"
    elif vr in TEMPORAL_VRS:
        kind = "date/time"
    elif vr == "UI":
        kind = "UID"
    else:
        return Decision("K", "", "not in E.1-1: keep", False)
    return Decision("K", "", f"not in E.1-1: keep (review: {kind})", True)
