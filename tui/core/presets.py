"""Run presets and the named choices a run is configured with (defacing, conversion engine, encryption).

Plain constants with no heavy imports, so the command line can offer them as argument choices
without loading DICOM, NIfTI, zip or face-detection code (`mrishare --help` stays fast). The
modules that act on a choice (deface, nifti, package, deidentify, pipeline) take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFACE_MODES = ("reface", "deface", "off")
ENGINES = ("dcm2niix", "dicom2nifti")
"""NIfTI conversion engines, the default first."""
ENCRYPTIONS = ("aes", "zipcrypto")
"""Package encryption: AES-256 zip, or ZipCrypto (weak; only behind a share password)."""
DEID_OPTIONS = frozenset({"rtn_long_modif_dates"})
"""Annex E options of `mrishare deid` unless the user picks others: shifted dates, descriptions removed
(`clean_desc` keeps descriptions that hold no known identifier, e.g. "MRT Kopf Verlauf")."""
PROTOCOL_PAGES = ("Patient Protocol", "PhoenixZIPReport", "Dose Report", "Screen Save", "Exam Summary")
"""SeriesDescriptions of scanner protocol/report pages: screen shots with the patient's name in the pixels
(dicom-anon's rule). Such series are quarantined whatever BurnedInAnnotation says; matched case-insensitively."""


@dataclass(frozen=True)
class Preset:
    """What a preset decides: Annex E options, defacing mode, and whether a failed face check blocks."""

    options: frozenset[str]
    deface: str
    face_check_blocks: bool


PRESETS = {
    # Art. 15 copy for the participant: their own dates and characteristics stay, faces stay.
    "participant-copy": Preset(frozenset({"rtn_long_full_dates", "rtn_pat_chars", "clean_desc"}), "off", False),
    # Leaves the lab for research: shifted dates, refaced anatomy, a face found is a hard stop.
    "research": Preset(frozenset({"rtn_long_modif_dates", "clean_desc"}), "reface", True),
}
