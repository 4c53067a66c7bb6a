"""Debian's chromium, headless with software WebGL (SwiftShader), driven by Playwright: what a participant opens.

Nothing here downloads a browser (`playwright install` is never run): the system binary is required.
Helpers live here (a unique module name); the fixtures are in conftest.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-sandbox"]
LOCAL_SCHEMES = ("file:", "data:", "blob:")
HEAD = "head-mri/siemens_prisma_xa30_mprage_2mm/nifti/anat-T1w_acq-tfl_dicom2nifti.nii.gz"
PHRASE = "apple-river-stone-cloud-seven"  # a fixed fake phrase, as the style guide asks

@dataclass
class Browser:
    """One page in a fresh profile, with every request and console error it made."""

    page: object
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def remote(self) -> list[str]:
        """Requests that left the machine's files (anything but file:, data:, blob:)."""
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]


def open_browser(profile: Path, extra_flags: tuple[str, ...] = ()) -> Iterator[Browser]:
    """Start chromium with a fresh `--user-data-dir` and yield a recorded page."""
    assert CHROMIUM.is_file(), f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=[*FLAGS, *extra_flags],
            viewport={"width": 1100, "height": 1300}, accept_downloads=True)
        try:
            page = context.new_page()
            page.set_default_timeout(120_000)  # two cores shared with other jobs: loading 2 MB of script can take 30 s
            browser = Browser(page)
            page.on("request", lambda request: browser.requests.append(request.url))
            page.on("console", lambda m: browser.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: browser.errors.append(str(error)))
            yield browser
        finally:
            context.close()


def wait_for_viewer(page: object, timeout_s: float = 120) -> str:
    """The viewer's final state (`ready`, `missing`, `no-webgl2`, `error`) once it settles."""
    # a selector, not wait_for_function: the page's CSP forbids the eval that a string predicate needs
    page.wait_for_selector("body[data-viewer]:not([data-viewer=loading]):not([data-viewer=picking])",
                           timeout=timeout_s * 1000)
    return page.get_attribute("body", "data-viewer")


def canvas_pixels(page: object, path: Path) -> np.ndarray:
    """The viewer canvas as the screen shows it (grey levels), saved to `path` for a human to look at."""
    page.wait_for_timeout(500)  # one more frame after `ready`
    page.locator("#viewer-canvas").screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


@dataclass(frozen=True)
class SharedHead:
    """What `mrishare share` of a real head left: the zip, its passphrase page, and the passphrase from the ledger."""

    zip_path: Path
    page: Path
    passphrase: str

    def members(self) -> tuple[str, dict[str, str]]:
        """(the zip's top folder, {path below it: SHA-256}) of every member, read with the passphrase."""
        import pyzipper

        with pyzipper.AESZipFile(self.zip_path) as archive:
            archive.setpassword(self.passphrase.encode())
            names = archive.namelist()
            top = names[0].split("/", 1)[0]
            return top, {n.removeprefix(f"{top}/"): hashlib.sha256(archive.read(n)).hexdigest() for n in names}

    def extracted_index(self, into: Path) -> Path:
        """The package unpacked into `into` with the passphrase, as the participant's unzip tool would; its
        index.html."""
        import pyzipper

        with pyzipper.AESZipFile(self.zip_path) as archive:
            archive.setpassword(self.passphrase.encode())
            archive.extractall(into)
        return next(Path(into).glob("*/index.html"))



def four_cells_show_the_head(grey: np.ndarray) -> bool:
    """The viewer canvas's four quarters (coronal, sagittal, axial, 3D render) each show a bright, varied head."""
    half_h, half_w = grey.shape[0] // 2, grey.shape[1] // 2
    cells = [grey[:half_h, :half_w], grey[:half_h, half_w:], grey[half_h:, :half_w], grey[half_h:, half_w:]]
    return all(cell.std() > 15 and (cell > 60).mean() > 0.03 for cell in cells)
