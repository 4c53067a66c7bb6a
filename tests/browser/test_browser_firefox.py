"""The participant's page and the extracted index.html in Debian's Firefox ESR, from file://, as in Chromium.

Firefox gives every file:// page its own origin and has no WebGL when headless, so it runs headed on Xvfb (Mesa's
llvmpipe) and is driven over WebDriver BiDi by `firefox/open_page.mjs` (puppeteer-core from tests/browser/firefox,
`npm ci` in .ci/run; no browser is downloaded). Same checks as the Chromium test: the ledger's passphrase opens the
page, the viewer shows the head in slices and 3D, "save all" gives the zip's exact files, nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import LOCAL_SCHEMES, SharedHead, four_cells_show_the_head
from PIL import Image

pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.slow]
DRIVER = Path(__file__).parent / "firefox"
FIREFOX = Path("/usr/bin/firefox-esr")


def in_firefox(url: str, canvas: Path, *unlock: str) -> dict:
    """What `open_page.mjs` saw of one page in Firefox ESR on a virtual screen (one JSON line)."""
    assert FIREFOX.is_file() and shutil.which("xvfb-run"), "apt-get install firefox-esr xvfb xauth (.ci/run does)"
    assert (DRIVER / "node_modules" / "puppeteer-core").is_dir(), f"npm ci --prefix {DRIVER} (.ci/run does)"
    done = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x1400x24", "node", str(DRIVER / "open_page.mjs"),
                           url, str(canvas), *unlock], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LIBGL_ALWAYS_SOFTWARE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def grey(png: Path) -> np.ndarray:
    return np.asarray(Image.open(png).convert("L"), dtype=np.float32)


def test_the_passphrase_page_opens_in_firefox_and_saves_the_zips_files(philips_share: SharedHead,
                                                                       tmp_path: Path) -> None:
    saved = tmp_path / "all.zip"
    seen = in_firefox(philips_share.page.as_uri(), tmp_path / "canvas.png", philips_share.passphrase, str(saved))
    assert seen["version"].startswith("firefox/") and seen["secure"] and seen["subtle"]  # WebCrypto on file://
    assert (seen["unlock"], seen["viewer"]) == ("open", "ready")
    assert four_cells_show_the_head(grey(tmp_path / "canvas.png"))
    top, expected = philips_share.members()
    assert seen["files"] == len(expected)
    everything = zipfile.ZipFile(io.BytesIO(saved.read_bytes()))
    assert {n.removeprefix(f"{top}/"): hashlib.sha256(everything.read(n)).hexdigest()
            for n in everything.namelist()} == expected
    assert [u for u in seen["requests"] if not u.startswith(LOCAL_SCHEMES)] == []
    assert seen["errors"] == []


def test_the_extracted_index_opens_in_firefox(philips_share: SharedHead, tmp_path: Path) -> None:
    """index.html loads the viewer and its volumes as classic scripts beside it: Firefox allows that on file://."""
    seen = in_firefox(philips_share.extracted_index(tmp_path / "x").as_uri(), tmp_path / "canvas.png")
    assert seen["viewer"] == "ready" and four_cells_show_the_head(grey(tmp_path / "canvas.png"))
    assert [u for u in seen["requests"] if not u.startswith(LOCAL_SCHEMES)] == []
    assert seen["errors"] == []
