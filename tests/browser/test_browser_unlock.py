"""The passphrase page in a real chromium: the right phrase shows the head and saves the exact files."""

from __future__ import annotations

import hashlib
import io
import secrets
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
    # headless chromium refuses an eleventh download from one tab (it would ask "download multiple files?"): a new tab
    again = page.context.new_page()
    again.goto(page_file.as_uri())
    again.fill("#unlock-phrase", PHRASE)
    again.click("#unlock-button")
    again.wait_for_selector("#content", state="visible")
    with again.expect_download() as download:
        again.click("#save-all")
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


def unlock(page: object, page_file: Path) -> None:
    """Open `page_file` and type the right passphrase."""
    page.goto(page_file.as_uri())
    page.fill("#unlock-phrase", PHRASE)
    page.click("#unlock-button")


def test_a_page_with_the_anatomical_images_only_says_so_and_shows_the_head(
        browser: Browser, partial_page: tuple[Path, tuple[str, ...]], tmp_path: Path) -> None:
    page_file, left_out = partial_page
    assert left_out == ("ses-1/func/sub-K7Q2_ses-1_task-rest_bold.json",
                        "ses-1/func/sub-K7Q2_ses-1_task-rest_bold.nii.gz")
    page = browser.page
    unlock(page, page_file)
    assert wait_for_viewer(page) == "ready"
    note = page.inner_text("#partial")
    assert "This page holds only the anatomical images" in note and "the same passphrase" in note
    assert "Diese Seite enthält nur die anatomischen Aufnahmen" in note and "7-Zip" in note and "Keka" in note
    assert page.is_visible("#partial") and all(name in note for name in left_out)
    grey = canvas_pixels(page, tmp_path / "canvas.png")
    assert grey.std() > 20 and (grey > 60).mean() > 0.1
    saved = {link.get_attribute("data-path") for link in page.query_selector_all("#files a")}
    assert "ses-1/anat/sub-K7Q2_ses-1_T1w.nii.gz" in saved and not saved & set(left_out)
    assert page.get_attribute("body", "data-unlock") == "open"
    assert browser.remote() == [] and browser.errors == []


def sealed_page(payload: bytes, out: Path) -> Path:
    """A passphrase page around `payload` (a plain zip made by the test), sealed as `PageSealer` seals."""
    from tui.core.delivery.unlock_page import ITERATIONS, page_html, seal
    from tui.core.nifti.viewer_page import BUNDLE_DIR

    salt = secrets.token_bytes(16)
    key = hashlib.pbkdf2_hmac("sha256", PHRASE.encode(), salt, ITERATIONS, 32)
    page, _, _ = page_html("sub-K7Q2", seal(payload, salt, key), (BUNDLE_DIR / "niivue.umd.js").read_text("utf-8"))
    out.write_text(page, encoding="utf-8")
    return out


def test_a_member_that_cannot_be_unpacked_says_open_the_zip_and_the_rest_still_shows(
        browser: Browser, participant_folder: Path, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for path in sorted(p for p in participant_folder.rglob("*") if p.is_file()):
            name = f"sub-K7Q2/{path.relative_to(participant_folder).as_posix()}"
            target.write(path, name, zipfile.ZIP_STORED if name.endswith((".gz", ".png")) else zipfile.ZIP_DEFLATED)
    payload = bytearray(buffer.getvalue())
    readme = zipfile.ZipFile(buffer).getinfo("sub-K7Q2/README.txt")
    local = readme.header_offset
    start = local + 30 + int.from_bytes(payload[local + 26:local + 28], "little") + int.from_bytes(
        payload[local + 28:local + 30], "little")
    payload[start] = 0x07  # a final deflate block of the reserved type 3: no inflater can read on
    page = browser.page
    unlock(page, sealed_page(bytes(payload), tmp_path / "damaged.html"))
    page.wait_for_selector("body[data-unlock=incomplete]")
    status = page.inner_text("#unlock-status")
    assert "Not everything could be unpacked in this browser (README.txt" in status
    assert "Please open the ZIP file you received with this page instead, with 7-Zip (Windows) or Keka" in status
    assert "Nicht alles ließ sich in diesem Browser auspacken" in status
    assert wait_for_viewer(page) == "ready"  # the rest is still there
    saved = {link.get_attribute("data-path") for link in page.query_selector_all("#files a")}
    assert "README.txt" not in saved and "ses-1/anat/sub-K7Q2_ses-1_T1w.nii.gz" in saved
    assert browser.remote() == []


def test_a_payload_that_is_no_zip_says_open_the_zip_instead(browser: Browser, tmp_path: Path) -> None:
    page = browser.page
    unlock(page, sealed_page(b"PK\x03\x04 not a zip at all", tmp_path / "broken.html"))
    page.wait_for_selector("body[data-unlock=failed][data-viewer=error]")
    status = page.inner_text("#unlock-status")
    assert "not a zip" in status and "7-Zip (Windows) or Keka (macOS) and the same passphrase" in status
    assert browser.remote() == []
