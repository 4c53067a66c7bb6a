"""The extracted index.html in a real chromium: the head appears in slices and 3D, and nothing goes online."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import Browser, canvas_pixels, wait_for_viewer

pytestmark = pytest.mark.xdist_group("browser")  # one chromium at a time on two cores


def test_extracted_index_renders_the_head_offline(browser: Browser, participant_folder: Path,
                                                  tmp_path: Path) -> None:
    page = browser.page
    page.goto((participant_folder / "index.html").as_uri())
    assert wait_for_viewer(page) == "ready"
    grey = canvas_pixels(page, tmp_path / "canvas.png")
    height, width = grey.shape
    background = np.median(np.concatenate([grey[:5].ravel(), grey[-5:].ravel()]))
    assert grey.std() > 20  # not blank
    # the multiplanar grid: each quarter (coronal, sagittal, axial, 3D render) shows head, unlike the background
    for rows in (slice(0, height // 2), slice(height // 2, height)):
        for columns in (slice(0, width // 2), slice(width // 2, width)):
            assert (np.abs(grey[rows, columns] - background) > 40).mean() > 0.05
    # the buttons switch to the 3D render and to the cut-open render, and each draws a head
    for view in ("render", "cut"):
        page.click(f'button[data-view="{view}"]')
        shot = canvas_pixels(page, tmp_path / f"{view}.png")
        assert (np.abs(shot - background) > 40).mean() > 0.1
    assert browser.remote() == [] and browser.errors == []


def test_index_opened_alone_shows_previews_and_says_extract_first(browser: Browser, participant_folder: Path,
                                                                  tmp_path: Path) -> None:
    alone = tmp_path / "index.html"  # what an archive program does on a double-click inside the zip
    shutil.copyfile(participant_folder / "index.html", alone)
    page = browser.page
    page.goto(alone.as_uri())
    assert wait_for_viewer(page) == "missing"
    assert "extract all files first" in page.inner_text("#viewer-status")
    sizes = page.eval_on_selector_all("img", "images => images.map(i => [i.naturalWidth, i.complete])")
    assert len(sizes) == 2 and all(width > 100 and complete for width, complete in sizes)
    assert browser.remote() == []


def test_without_webgl2_the_page_says_so_and_shows_previews(browser_without_webgl: Browser,
                                                           participant_folder: Path) -> None:
    page = browser_without_webgl.page
    page.goto((participant_folder / "index.html").as_uri())
    assert wait_for_viewer(page) == "no-webgl2"
    assert "cannot show 3D graphics (WebGL2)" in page.inner_text("#viewer-status")
    assert page.is_hidden("#viewer")
    assert page.eval_on_selector_all("img", "images => images.every(i => i.naturalWidth > 100)")
    assert browser_without_webgl.remote() == []


def test_full_resolution_image_opens_through_the_file_picker(browser: Browser, participant_folder: Path,
                                                             tmp_path: Path) -> None:
    page = browser.page
    page.goto((participant_folder / "index.html").as_uri())
    assert wait_for_viewer(page) == "ready"
    page.evaluate("document.body.dataset.viewer = 'picking'")  # so that `ready` below is the new image's
    page.set_input_files("#viewer-file", str(participant_folder / "ses-1" / "anat" / "sub-K7Q2_ses-1_T1w.nii.gz"))
    assert wait_for_viewer(page) == "ready"
    assert page.evaluate("mrishare.nv.volumes[0].dims.slice(1, 4)") == [96, 128, 128]  # the full image
    grey = canvas_pixels(page, tmp_path / "full.png")
    assert grey.std() > 20 and (grey > 60).mean() > 0.1
    assert browser.remote() == [] and browser.errors == []
