"""`mrishare share --keep-dicom`: the package holds the de-identified DICOM beside the NIfTI, face removed from
its pixels, searched by the leak gate. On the real Siemens head of ../shared/data/head-mri (faces in 9 of 9 views)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from tui.core.delivery.ledger import Ledger
from tui.core.events import drain
from tui.core.nifti.conversion import SeriesInput, convert_series
from tui.core.nifti.facecheck import face_check

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("heads")]

SIEMENS_DICOM = "head-mri/siemens_prisma_xa30_mprage_2mm/dicom"


def test_share_keep_dicom_puts_defaced_dicom_in_the_package(shared_data: Path, tmp_path: Path) -> None:
    source = next((shared_data / SIEMENS_DICOM).glob("*.dcm"))
    participant = tmp_path / "XAtest_sub-July11"
    participant.mkdir()
    shutil.copy(source, participant / source.name)
    outbox, ledger = tmp_path / "outbox", tmp_path / "share-list.xlsx"
    outbox.mkdir()
    env = {**os.environ, "MRISHARE_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "tui", "share", str(participant), "--dest", f"folder:{outbox}",
                           "--ledger", str(ledger), "--preset", "research", "--keep-dicom", "--workers", "1"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DICOM files in dicom/" in done.stdout + done.stderr
    # defacing the DICOM is part of packing: its lines say so (they once came out as "upload" before it started)
    before_upload = (done.stdout + done.stderr).split(" upload: started")[0]
    assert " upload: " not in before_upload and " pack: deface: " in before_upload
    with Ledger.open(ledger) as book:
        row = book.rows()[0]
    package = tmp_path / "package"
    subprocess.run(["7z", "x", f"-p{row.passphrase}", f"-o{package}", str(next(outbox.rglob("*.zip")))],
                   check=True, capture_output=True)
    dicom = sorted(p for p in package.rglob("*") if p.is_file() and "dicom" in p.relative_to(package).parts)
    assert len(dicom) == 1, dicom  # one enhanced multi-frame file, 96 frames
    readme = next(package.rglob("README.txt")).read_text(encoding="utf-8")
    assert "dicom/: the same images in the scanner's DICOM format" in readme and "faces removed" in readme
    ds = pydicom.dcmread(dicom[0])
    original = pydicom.dcmread(source, stop_before_pixels=True)
    assert ds.BurnedInAnnotation == "NO" and ds.PatientIdentityRemoved == "YES"
    assert "face removed from pixel data" in ds.DerivationDescription
    assert "113102" in {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert ds.SOPInstanceUID != original.SOPInstanceUID and str(ds.PatientName) != str(original.PatientName)
    assert ds.get("PatientBirthDate", "") != original.PatientBirthDate
    assert not any(part in str(path) for path in dicom for part in ("XAtest", "July11", "hucheng"))
    # the packaged DICOM converts to a head with no face (the original shows one in 9 of 9 views)
    back = drain(convert_series([SeriesInput("1", dicom)], tmp_path / "back", "x"))
    check = face_check(back[0].nifti, "deface")
    assert check.faces_found == 0 or "reface" in ds.DerivationDescription, check.summary()
    if "reface" in ds.DerivationDescription:
        first = drain(convert_series([SeriesInput("1", [source])], tmp_path / "first", "x"))[0].nifti
        check = face_check(back[0].nifti, "reface", original=first)
    assert check.passed, check.summary()
