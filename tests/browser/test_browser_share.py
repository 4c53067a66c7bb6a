"""Issue 20's acceptance test, end to end: a new user shares the Philips 1 mm head with the default preset; the
participant's page, opened from file:// with the passphrase from the ledger, shows the head in slices and 3D and
saves files whose SHA-256 match the zip's own manifest, and the browser makes no network request."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from browser_helpers import Browser, SharedHead, canvas_pixels, four_cells_show_the_head, wait_for_viewer

pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.slow]


def test_a_shared_head_opens_on_the_participant_page_with_the_ledger_passphrase(
        philips_share: SharedHead, tmp_path: Path, browser: Browser) -> None:
    assert philips_share.passphrase not in philips_share.page.read_text(encoding="utf-8")
    assert philips_share.passphrase not in philips_share.page.name
    page = browser.page
    page.goto(philips_share.page.as_uri())
    page.fill("#unlock-phrase", philips_share.passphrase)
    page.click("#unlock-button")
    assert wait_for_viewer(page) == "ready"
    # slices and 3D: the multiplanar grid with the render in its fourth cell, each cell showing the head
    assert page.evaluate("mrishare.nv.opts.sliceType === mrishare.nv.sliceTypeMultiplanar")
    grey = canvas_pixels(page, tmp_path / "canvas.png")
    assert four_cells_show_the_head(grey)

    top, expected = philips_share.members()
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

