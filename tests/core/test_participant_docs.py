"""index.html and README.txt for the participant: content, links, and nothing identifying (leak gate)."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest

from tui.core import leakcheck
from tui.core.events import drain
from tui.core.nifti import Converted, SeriesInput, convert_series, subject_dir
from tui.core.participant_docs import write_participant_docs
from tui.core.preview import make_previews

HEAD = "head-mri/siemens_prisma_xa30_mprage_2mm/dicom"


@pytest.fixture
def package(shared_data: Path, tmp_path: Path) -> tuple[Path, list[Converted], list[Path]]:
    """The Siemens head converted (from its original, identifying DICOM), with previews and docs."""
    files = sorted((shared_data / HEAD).iterdir())
    items = drain(convert_series([SeriesInput("s5", files)], tmp_path, "K7Q2"))
    folder = subject_dir(tmp_path, "K7Q2")
    previews = {i.series_key: make_previews(i.nifti, folder / "previews") for i in items}
    docs = write_participant_docs(folder, items, previews)
    return folder, items, docs


def test_readme_is_bilingual_and_says_not_diagnostic(package: tuple) -> None:
    folder, _, docs = package
    assert [d.name for d in docs] == ["index.html", "README.txt"]
    raw = (folder / "README.txt").read_bytes()
    assert b"\r\n" in raw and b"\r\r" not in raw
    text = raw.decode("utf-8")
    assert "keine diagnostische Untersuchung" in text and "not a diagnostic examination" in text
    for viewer in ("MRIcroGL", "ITK-SNAP", "3D Slicer", "FSLeyes"):
        assert viewer in text
    for system in ("Windows", "macOS", "Linux"):
        assert system in text
    assert "ses-1/anat/sub-K7Q2_ses-1_T1w.nii.gz: T1-gewichtete" in text
    assert "ses-1/anat/sub-K7Q2_ses-1_T1w.nii.gz: T1-weighted" in text


def test_index_shows_every_preview_offline(package: tuple) -> None:
    folder, _, _ = package
    page = (folder / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources == ["previews/sub-K7Q2_ses-1_T1w_views.png", "previews/sub-K7Q2_ses-1_T1w_mosaic.png"]
    assert all((folder / s).is_file() for s in sources)
    assert "<script" not in page and "http" not in page  # works offline, fetches nothing
    assert "keine diagnostische Untersuchung" in page and "not a diagnostic examination" in page


def test_docs_accept_bare_nifti_paths_as_the_pipeline_journal_has_them(package: tuple, tmp_path: Path) -> None:
    folder, items, _ = package
    previews = {items[0].nifti.name: sorted((folder / "previews").glob("*.png"))}
    write_participant_docs(folder, [items[0].nifti], previews)
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert page.count("<img ") == 2 and "T1-weighted" in page


def test_leak_gate_finds_nothing_in_the_package(package: tuple, shared_data: Path) -> None:
    folder, _, _ = package
    header = pydicom.dcmread(next((shared_data / HEAD).iterdir()), stop_before_pixels=True)
    identifiers = leakcheck.identifiers_from_datasets([header])
    assert identifiers  # the original header does carry a name, an ID, a birth date, an institution
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {".gz", ".json", ".png", ".html", ".txt"}
    assert leakcheck.check_files(files, identifiers, root=folder.parent) == []
    # and the gate really looks: the same check fires on a planted value
    planted = folder / "planted.txt"
    planted.write_text(f"hello {header.PatientName}")
    assert leakcheck.check_files([planted], identifiers, root=folder.parent)
