"""Files that must not be released, and the local folder where they wait for a human.

A file is held back when its series is a scanner protocol or report page (SeriesDescription on the
withheld list, see `presets.PROTOCOL_PAGES`), when its pixels or content probably show text (BurnedInAnnotation YES,
secondary/screen captures, encapsulated documents, structured reports unless Clean Structured
Content is chosen), when its modality is outside the allow-list, or when it belongs to another
patient. Held-back files are copied unchanged to `<data_dir>/quarantine/<run>/<subject>/` with
a reason file; folder and file names there are numbers and keys, never identifiers. They are
never packaged or uploaded.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.config import data_dir
from tui.core.presets import PROTOCOL_PAGES

if TYPE_CHECKING:  # light at run time: the app's series list uses protocol_page before pydicom is loaded
    from pydicom.dataset import Dataset

# PS3.4 Annex B storage SOP classes that usually carry text in pixels or documents.
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
DOCUMENT_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.104.3": "encapsulated STL",
    "1.2.840.10008.5.1.4.1.1.104.4": "encapsulated OBJ",
    "1.2.840.10008.5.1.4.1.1.104.5": "encapsulated MTL",
}
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
SCREEN_CAPTURE_CONVERSION = {"WSD", "SI", "SD", "DV", "DI"}


def protocol_page(description: object, pages: Collection[str] = PROTOCOL_PAGES) -> str | None:
    """The entry of `pages` that equals a SeriesDescription (case-insensitive, padding stripped), or None."""
    text = str(description if description is not None else "").strip(" \x00").casefold()
    return next((page for page in pages if text and page.strip().casefold() == text), None)


def protocol_page_reason(page: str) -> str:
    """Why a protocol/report page is withheld; names the list entry, which is not identifying."""
    return f"protocol/report page (SeriesDescription '{page}' is on the withheld list: text in the pixels)"


def quarantine_reason(ds: Dataset, modalities: Collection[str], options: Collection[str],
                      protocol_pages: Collection[str] = PROTOCOL_PAGES) -> str | None:
    """Why `ds` must be held back (one non-identifying line), or None if it may be de-identified."""
    page = protocol_page(ds.get("SeriesDescription"), protocol_pages)
    if page is not None:  # before BurnedInAnnotation: these pages often say NO and still show the name
        return protocol_page_reason(page)
    sop_class = str(ds.get("SOPClassUID", "") or "")
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    image_type = [str(v).strip().upper() for v in (ds.get("ImageType") or [])]
    if burned == "YES":
        return "BurnedInAnnotation is YES (text in the pixels)"
    if sop_class in DOCUMENT_CLASSES:
        return f"{DOCUMENT_CLASSES[sop_class]} document (its content is not de-identified)"
    if sop_class.startswith(SR_PREFIX) and "clean_struct_cont" not in options:
        return "structured report (choose option clean_struct_cont to de-identify its content)"
    if sop_class.startswith(SECONDARY_CAPTURE):
        return "secondary capture (screen shots usually show text)"
    if str(ds.get("ConversionType", "") or "").strip().upper() in SCREEN_CAPTURE_CONVERSION:
        return "screen capture conversion type"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if not modality:
        return "no Modality"
    if modality not in modalities and not sop_class.startswith(SR_PREFIX):
        return f"modality {modality} is not in the allow-list ({','.join(sorted(modalities))})"
    if "SECONDARY" in image_type and burned != "NO":
        return "secondary/derived capture without BurnedInAnnotation NO (may show text)"
    return None


class QuarantineStore:
    """A run's quarantine folder: numbered copies of held-back files, each with a reason file."""

    def __init__(self, root: Path | None = None, run_id: str = "run") -> None:
        self.root = root or data_dir() / "quarantine" / run_id
        self._count: dict[str, int] = {}

    def put(self, source: Path, reason: str, subject: str) -> Path:
        """Copy `source` unchanged to `<root>/<subject>/<n>.dcm` with `<n>.reason.txt`; return the copy."""
        folder = self.root / subject
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        self._count[subject] = self._count.get(subject, 0) + 1
        number = self._count[subject]
        target = folder / f"{number:04d}.dcm"
        while target.exists():
            number += 1
            target = folder / f"{number:04d}.dcm"
        self._count[subject] = number
        shutil.copyfile(source, target)
        target.chmod(0o600)
        target.with_suffix(".reason.txt").write_text(reason + "\n", encoding="utf-8")
        return target
