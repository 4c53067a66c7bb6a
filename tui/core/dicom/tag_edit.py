"""Hand edits of DICOM elements at any depth, saved as a copy with new SOP Instance UIDs (never in place).

An element inside a sequence is named by the path of the item that holds it, in the inspector's form
(`(0008,1140)[0]`, see `tags.TagRow.path`): the edit is applied in that item of every file of the series.
"""

from __future__ import annotations

import csv
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tui.core.dicom.annex_e import IODS, TABLE_DIR
from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepFinished, StepProgress, StepStarted, Throttle

STEP = "save edited copy"
REQUIRED_TYPES = frozenset({"1", "1C", "2", "2C"})
"""PS3.3 Types that an IOD requires to be present (1/1C with a value, 2/2C maybe empty)."""
_ITEM = re.compile(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)\[(\d+)\]")
ITEM_TYPES = {
    0x00081150: "Type 1 in the SOP Instance Reference Macro (PS3.3 Table 10-11)",
    0x00081155: "Type 1 in the SOP Instance Reference Macro (PS3.3 Table 10-11)",
    0x00080100: "Type 1C in the Basic Code Sequence Macro (PS3.3 Table 8.8-1)",
    0x00080102: "Type 1C in the Basic Code Sequence Macro (PS3.3 Table 8.8-1)",
    0x00080104: "Type 1 in the Basic Code Sequence Macro (PS3.3 Table 8.8-1)",
}
"""Attributes that the macros most sequence items follow require; an IOD's own Types are for the top level."""
_NUMBERS = {"US": int, "SS": int, "UL": int, "SL": int, "UV": int, "SV": int, "FL": float, "FD": float}


@dataclass(frozen=True)
class Edit:
    """Set element `tag` to `value` (adding it with `vr` if absent), or delete it when `value` is None;
    inside the sequence item at `parent` (empty: the top level)."""

    tag: int
    value: str | None
    vr: str = ""
    parent: str = ""

    @property
    def path(self) -> str:
        """The element's path in the inspector's form, e.g. `(0008,1140)[0](0008,1155)`."""
        return f"{self.parent}({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"


def parent_of(path: str) -> str:
    """The item path that holds the element at `path` (`(0008,1140)[0](0008,1155)` -> `(0008,1140)[0]`)."""
    return path[: path.rfind("(")]


def item_at(ds: Dataset, parent: str) -> Dataset:
    """The sequence item at `parent` (the data set itself for ""); an error if a file has no such item."""
    target = ds
    steps = _ITEM.findall(parent)
    if "".join(f"({g},{e})[{i}]" for g, e, i in steps) != parent:
        raise MrishareError(f"not an item path: {parent[:60]!r}")
    for group, element, index in steps:
        sequence = target.get(int(group + element, 16))
        if sequence is None or sequence.VR != "SQ" or int(index) >= len(sequence.value or []):
            raise MrishareError(f"this file has no item {parent}")
        target = sequence.value[int(index)]
    return target


def parse_tag(text: str) -> int:
    """`(0010,0010)`, `0010,0010`, `00100010` or a keyword like `PatientName` -> the tag number."""
    cleaned = text.strip().strip("()").replace(",", "").replace(" ", "")
    if len(cleaned) == 8:
        try:
            return int(cleaned, 16)
        except ValueError:
            pass
    tag = tag_for_keyword(text.strip())
    if tag is None:
        raise MrishareError(f"not a tag or keyword: {text.strip()[:40]!r}")
    return int(tag)


def vr_for(tag: int) -> str:
    """The dictionary VR of a standard tag (private tags need an explicit VR)."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        raise MrishareError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) is not in the dictionary; give its VR") from None


@cache
def _types() -> dict[int, dict[str, str]]:
    with (TABLE_DIR / "iod_attribute_types.csv").open(newline="", encoding="utf-8") as handle:
        return {
            int(row["tag"].replace(",", ""), 16): {uid: row[column] for uid, (column, _) in IODS.items()}
            for row in csv.DictReader(handle)
        }


def required_by_iod(tag: int, sop_class: str | None) -> str | None:
    """`Type 1 in MR Image` if the dataset's IOD requires `tag`, None if optional or unknown."""
    if sop_class is None or sop_class not in IODS:
        return None
    kind = _types().get(tag, {}).get(sop_class, "")
    return f"Type {kind} in {IODS[sop_class][1]}" if kind in REQUIRED_TYPES else None


def required(tag: int, sop_class: str | None, parent: str = "") -> str | None:
    """Why an element may not be deleted: its IOD's Type at the top level, its macro's inside an item."""
    return required_by_iod(tag, sop_class) if not parent else ITEM_TYPES.get(tag)


def _value(text: str, vr: str) -> object:
    convert = _NUMBERS.get(vr)
    if convert is None:
        return text
    parts = [convert(part) for part in text.split("\\")]
    return parts[0] if len(parts) == 1 else parts


def apply_edits(ds: Dataset, edits: list[Edit]) -> None:
    """Apply `edits` to `ds` in order, each in its sequence item."""
    for edit in edits:
        target = item_at(ds, edit.parent)
        if edit.value is None:
            if edit.tag in target:
                del target[edit.tag]
            continue
        if edit.tag in target and target[edit.tag].VR == "SQ":
            raise MrishareError("a sequence has no value to type: edit the elements inside it")
        vr = target[edit.tag].VR if edit.tag in target else (edit.vr or vr_for(edit.tag))
        try:
            value = _value(edit.value, vr)
        except ValueError:
            raise MrishareError(f"{edit.value[:20]!r} is not a number for VR {vr}") from None
        if edit.tag in target:
            target[edit.tag].value = value
        else:
            target.add_new(edit.tag, vr, value)


def save_edited_copy(files: list[Path], edits: list[Edit], out_dir: Path,
                     cancel: threading.Event | None = None) -> EventStream[list[Path]]:
    """Write every file with `edits` applied and a new SOP Instance UID into `out_dir`; returns the new files."""
    sources = {f.resolve().parent for f in files}
    out_dir = Path(out_dir)
    if out_dir.resolve() in sources:
        raise MrishareError("choose another folder: the copy must not replace the originals", out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    taken = [out_dir / f.name for f in files if (out_dir / f.name).exists()]
    if taken:
        raise MrishareError(f"{len(taken)} file(s) with the same names already exist there", out_dir)
    yield StepStarted(STEP, STEP, len(files))
    throttle = Throttle()
    written = []
    for done, path in enumerate(files, 1):
        if cancel is not None and cancel.is_set():
            raise MrishareError("saving the edited copy was cancelled", out_dir)
        ds = pydicom.dcmread(path)
        try:
            apply_edits(ds, edits)
        except MrishareError as error:
            raise MrishareError(error.reason, path) from None
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        if getattr(ds, "file_meta", None) is not None:
            ds.file_meta.MediaStorageSOPInstanceUID = uid
        target = out_dir / path.name
        ds.save_as(target, enforce_file_format=True)
        written.append(target)
        if throttle.ready(done, len(files)):
            yield StepProgress(STEP, STEP, done, len(files))
    yield StepFinished(STEP, STEP, f"{len(written)} files with new SOP Instance UIDs")
    return written
