"""The passphrase page in a real chromium: the right phrase shows the head and saves the exact files."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import PHRASE, Browser, canvas_pixels, wait_for_viewer

pytestmark = pytest.mark.xdist_group("browser")  # one chromium at a time on two cores


def manifest(zip_path: Path) -> dict[str, str]:
    """{path: sha256} from the MANIFEST-SHA256.txt inside the encrypted zip."""
    import pyzipper

    with pyzipper.AESZipFile(zip_path) as archive:
        archive.setpassword(PHRASE.encode())
        text = archive.read("sub-K7Q2/MANIFEST-SHA256.txt").decode()
    return {name: digest for digest, name in (line.split("  ", 1) for line in text.splitlines())}


def test_right_passphrase_shows_the_head_and_saves_files_matching_the_manifest(
        browser: Browser, unlock_page: tuple[Path, Path], tmp_path: Path) -> None:
    zip_path, page_file = unlock_page
    page = browser.page
    page.goto(page_file.as_uri())
    page.fill("#unlock-phrase", "Apple River Stone Cloud Seven ")  # as a person types it
    page.click("#unlock-button")
    assert wait_for_viewer(page) == "ready"
    grey = canvas_pixels(page, tmp_path / "canvas.png")
    assert grey.std() > 20 and (grey > 60).mean() > 0.1
    assert "not a diagnostic examination" in page.inner_text("#readme")

    expected = manifest(zip_path)
    saved = {}
    for link in page.query_selector_all("#files a"):
        with page.expect_download() as download:
            link.click()
        target = tmp_path / "saved" / link.get_attribute("data-path")
        download.value.save_as(target)
        saved[link.get_attribute("data-path")] = hashlib.sha256(target.read_bytes()).hexdigest()
    manifest_text = saved.pop("MANIFEST-SHA256.txt")
    assert saved == expected and len(manifest_text) == 64
    with page.expect_download() as download:
        page.click("#save-all")
    everything = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert everything.testzip() is None
    assert {name.removeprefix("sub-K7Q2/") for name in everything.namelist()} == {*expected, "MANIFEST-SHA256.txt"}
    assert browser.remote() == [] and browser.errors == []


def test_wrong_passphrase_says_so_and_shows_nothing(browser: Browser, unlock_page: tuple[Path, Path]) -> None:
    page = browser.page
    page.goto(unlock_page[1].as_uri())
    page.fill("#unlock-phrase", PHRASE.replace("seven", "eight"))
    page.click("#unlock-button")
    page.wait_for_selector("body[data-unlock=wrong]", timeout=60_000)
    assert "Wrong passphrase" in page.inner_text("#unlock-status")
    assert page.is_hidden("#content") and page.is_enabled("#unlock-button")
    assert browser.remote() == []
    np.testing.assert_equal(page.eval_on_selector_all("#files a", "links => links.length"), 0)
