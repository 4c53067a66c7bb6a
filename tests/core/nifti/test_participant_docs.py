"""index.html and README.txt for the participant: content, links, and nothing identifying (leak gate)."""

from __future__ import annotations

import base64
import gzip
import json
import re
from datetime import date
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from tui.core.deid import leakcheck
from tui.core.events import drain
from tui.core.nifti.conversion import Converted, SeriesInput, convert_series, subject_dir
from tui.core.nifti.participant_docs import About, write_participant_docs
from tui.core.nifti.preview import make_previews
from tui.core.nifti.viewer_page import gated_files, is_vendored, volume_script

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


def test_index_shows_every_preview_inline_at_natural_size(package: tuple) -> None:
    folder, _, _ = package
    page = (folder / "index.html").read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" width="(\d+)" height="(\d+)"', page)
    pngs = [folder / "previews" / f"sub-K7Q2_ses-1_T1w_{kind}.png" for kind in ("views", "mosaic")]
    assert [base64.b64decode(data) for data, _, _ in images] == [p.read_bytes() for p in pngs]
    assert [(int(w), int(h)) for _, w, h in images] == [Image.open(p).size for p in pngs]
    assert "img { max-width: 100%; height: auto;" in page  # shrinks on a phone, never stretched
    assert "http:" not in page and "https:" not in page  # fetches nothing
    assert page.count('<a href="README.txt">') == 2
    assert "keine diagnostische Untersuchung" in page and "not a diagnostic examination" in page


def test_index_loads_the_viewer_from_neighbouring_classic_scripts(package: tuple) -> None:
    folder, _, _ = package
    page = (folder / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'<script src="([^"]+)"></script>', page)
    assert sources == ["viewer/niivue.umd.js", "viewer/sub-K7Q2_ses-1_T1w.js"]
    assert all((folder / s).is_file() for s in sources)
    assert 'type="module"' not in page and "fetch(" not in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in csp and "http" not in csp
    assert is_vendored(folder / "viewer" / "niivue.umd.js") and is_vendored(folder / "viewer" / "NOTICE.txt")


def test_viewer_volume_is_a_small_head_windowed_8bit_copy(package: tuple) -> None:
    folder, items, _ = package
    script = (folder / "viewer" / "sub-K7Q2_ses-1_T1w.js").read_text(encoding="ascii")
    entry = json.loads(script[script.index("(", script.index("push")) + 1: script.rindex(")")])
    assert entry["name"] == "sub-K7Q2_ses-1_T1w.nii.gz" and "T1-weighted" in entry["title"]
    raw = base64.b64decode(entry["base64"])
    image = nib.Nifti1Image.from_bytes(gzip.decompress(raw))
    original = nib.as_closest_canonical(nib.load(items[0].nifti))
    assert image.get_data_dtype() == np.uint8 and image.shape == original.shape[:3]  # 2 mm: not resampled
    assert np.allclose(image.affine, original.affine)
    data = np.asarray(image.dataobj)
    assert (data % 2 == 0).all() and data.max() >= 250  # 7 bits, the full window
    assert data[0, 0, 0] == 0 and 0.1 < (data > 0).mean() < 0.6  # air is 0, the head is kept
    assert len(raw) < 0.5 * items[0].nifti.stat().st_size
    assert not image.header.extensions and image.header["descrip"].item() == b""


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
    files = gated_files(folder)
    assert {p.suffix for p in files} == {".gz", ".json", ".png", ".html", ".txt", ".js"}
    assert not any(p.name == "niivue.umd.js" for p in files)  # vendored, unchanged: not searched
    assert leakcheck.check_files(files, identifiers, root=folder.parent) == []
    # and the gate really looks: the same check fires on a planted value
    planted = folder / "planted.txt"
    planted.write_text(f"hello {header.PatientName}")
    assert leakcheck.check_files([planted], identifiers, root=folder.parent)
    # and it looks inside the embedded viewer volume: a name in its NIfTI header is found
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    image.header["descrip"] = str(header.PatientName.family_name).encode()[:79]
    hidden = folder / "viewer" / "hidden.js"
    hidden.write_text(volume_script("x.nii.gz", "x", gzip.compress(image.to_bytes())), encoding="ascii")
    assert [leak.file for leak in leakcheck.check_files([hidden], identifiers, root=folder.parent)]


def test_docs_without_viewer_have_no_scripts(package: tuple) -> None:
    folder, _, _ = package
    other = folder.parent / "plain"
    write_participant_docs(other, [], {}, viewer=False)
    page = (other / "index.html").read_text(encoding="utf-8")
    assert "<script" not in page and not (other / "viewer").exists()


def test_readme_and_index_name_lab_study_and_scan_date_and_leave_out_empty_fields(package: tuple) -> None:
    folder, items, _ = package
    about = About(lab_name="MRT-Labor Musterstadt", lab_contact="mrt@example.org", study_name="Schlafstudie 2026",
                  scan_date=date(2026, 3, 5))
    write_participant_docs(folder, items, {}, about=about)
    text = (folder / "README.txt").read_text(encoding="utf-8")
    assert "Studie: Schlafstudie 2026" in text and "Study: Schlafstudie 2026" in text
    assert "Aufnahmedatum: 05.03.2026" in text and "Date of the scan: 2026-03-05" in text
    assert "Kontakt bei Fragen: MRT-Labor Musterstadt, mrt@example.org" in text
    assert "MANIFEST-SHA256.txt: eine Prüfsumme" in text and "MANIFEST-SHA256.txt: a checksum" in text
    assert "viewer/: the 3D viewer" in text
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert '<p lang="en">Questions: MRT-Labor Musterstadt, mrt@example.org</p>' in page
    write_participant_docs(folder, items, {}, about=About(study_name="Schlafstudie 2026"), viewer=False)
    text = (folder / "README.txt").read_text(encoding="utf-8")
    assert "Study: Schlafstudie 2026" in text
    assert "Kontakt" not in text and "Questions:" not in text and "Date of the scan" not in text
    assert "viewer/" not in text
