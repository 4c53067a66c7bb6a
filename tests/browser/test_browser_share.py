"""Issue 20's acceptance test, end to end: a new user shares the Philips 1 mm head with the default preset; the
participant's page, opened from file:// with the passphrase from the ledger, shows the head in slices and 3D and
saves files whose SHA-256 match the zip's own manifest, and the browser makes no network request."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from browser_helpers import Browser, canvas_pixels, wait_for_viewer

from tui.core.delivery.ledger import Ledger
from tui.core.delivery.unlock_page import page_path

pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.slow]
PHILIPS = "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/dicom"


def zip_members(zip_path: Path, passphrase: str) -> tuple[str, dict[str, str]]:
    """(the zip's top folder, {path below it: SHA-256}) of every member, read with `passphrase`."""
    import pyzipper

    with pyzipper.AESZipFile(zip_path) as archive:
        archive.setpassword(passphrase.encode())
        names = archive.namelist()
        top = names[0].split("/", 1)[0]
        return top, {n.removeprefix(f"{top}/"): hashlib.sha256(archive.read(n)).hexdigest() for n in names}


def test_a_shared_head_opens_on_the_participant_page_with_the_ledger_passphrase(
        shared_data: Path, tmp_path: Path, browser: Browser) -> None:
    outbox, ledger = tmp_path / "outbox", tmp_path / "share-list.xlsx"
    outbox.mkdir()
    done = subprocess.run([sys.executable, "-m", "tui", "share", str(shared_data / PHILIPS), "--dest",
                           f"folder:{outbox}", "--ledger", str(ledger)],
                          env={**os.environ, "MRISHARE_HOME": str(tmp_path / "home")}, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    with Ledger.open(ledger) as book:
        row = book.rows()[0]
    assert row.status == "shared"
    zip_path = next(outbox.rglob("*.zip"))
    page_file = page_path(zip_path)
    assert row.passphrase not in page_file.read_text(encoding="utf-8") and row.passphrase not in page_file.name

    page = browser.page
    page.goto(page_file.as_uri())
    page.fill("#unlock-phrase", row.passphrase)
    page.click("#unlock-button")
    assert wait_for_viewer(page) == "ready"
    # slices and 3D: the multiplanar grid with the render in its fourth cell, each cell showing the head
    assert page.evaluate("mrishare.nv.opts.sliceType === mrishare.nv.sliceTypeMultiplanar")
    grey = canvas_pixels(page, tmp_path / "canvas.png")
    half_h, half_w = grey.shape[0] // 2, grey.shape[1] // 2
    cells = [grey[:half_h, :half_w], grey[:half_h, half_w:], grey[half_h:, :half_w], grey[half_h:, half_w:]]
    assert all(cell.std() > 15 and (cell > 60).mean() > 0.03 for cell in cells), [c.std() for c in cells]

    top, expected = zip_members(zip_path, row.passphrase)
    with page.expect_download() as download:
        page.click("#save-all")
    everything = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert {n.removeprefix(f"{top}/"): hashlib.sha256(everything.read(n)).hexdigest()
            for n in everything.namelist()} == expected
    nifti = next(name for name in expected if name.endswith(".nii.gz"))
    with page.expect_download() as download:
        page.click(f'#files a[data-path="{nifti}"]')
    assert hashlib.sha256(Path(download.value.path()).read_bytes()).hexdigest() == expected[nifti]
    assert browser.remote() == [] and browser.errors == []
