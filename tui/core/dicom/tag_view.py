"""How a tag row reads to the operator: its value masked only when identifying, and what de-identification
leaves of it ("after"). Shared by `mrishare inspect` and the app's tag table."""

from __future__ import annotations

from tui.core.dicom.tags import TagRow, mask

AFTER = {"X": "removed", "Z": "emptied", "D": "dummy value", "U": "new UID"}
"""What stays of an element for each PS3.15 Table E.1-1a action (K and C depend on the value)."""
PSEUDONYMISED = frozenset({"PatientName", "PatientID"})
"""Top-level elements a share fills with the participant's pseudonym (tui/core/deid/deidentify.py)."""


NOT_IDENTIFYING = frozenset({"Manufacturer", "ManufacturerModelName", "SoftwareVersions", "SequenceName",
                             "ImplementationVersionName", "ImplementationClassUID", "ScanningSequence",
                             "SequenceVariant", "ScanOptions", "MRAcquisitionType", "ImageType"})
"""Free-text elements outside Table E.1-1 (so flagged for review) that name a device or a technique, never a
person: the operator needs to read them to judge a series, so they are never masked."""


def identifying(row: TagRow) -> bool:
    """True when the value may identify: the profile changes it or a human must review it, or it is a date/time
    (a date kept for a participant copy still identifies); device and technique names are not."""
    if row.keyword in NOT_IDENTIFYING:
        return False
    return "identifying" in row.flags or "date" in row.flags


def shown_value(row: TagRow, reveal: bool) -> str:
    """The value before de-identification: masked when identifying unless revealed."""
    return row.value if reveal or not identifying(row) else mask(row.value)


def after_value(row: TagRow, reveal: bool) -> str:
    """The value after de-identification under the options `row` was flattened with."""
    action = row.decision.action
    if row.depth == 0 and row.keyword in PSEUDONYMISED:
        return "pseudonym"
    if action == "K":
        return shown_value(row, reveal) or "(empty)"
    if action == "C":
        return "shifted date" if "date" in row.flags else "cleaned"
    return AFTER.get(action, action)
