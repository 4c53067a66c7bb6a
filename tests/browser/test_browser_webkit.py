"""The participant's page and the extracted index.html in WebKit, Safari's engine: Debian's WebKitGTK MiniBrowser
driven over W3C WebDriver (WebKitWebDriver, package webkit2gtk-driver) on Xvfb, from file://.

Same checks as in Chromium and Firefox: the ledger's passphrase opens the page, the viewer shows the head in slices
and 3D, "save all" gives the zip's exact files. WebDriver classic has no request log: the page's resource timing
entries stand in for it (every script, image and fetch the page loads is one), and the page's CSP forbids the rest.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import SharedHead, four_cells_show_the_head
from PIL import Image

pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.slow]
MINIBROWSER = Path("/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser")
STATE = ("return {unlock: document.body.dataset.unlock || '', viewer: document.body.dataset.viewer || '',"
         " secure: window.isSecureContext, subtle: Boolean(window.crypto && crypto.subtle),"
         " files: document.querySelectorAll('#files a').length,"
         " remote: performance.getEntriesByType('resource').map(e => e.name)"
         ".filter(u => !/^(file|data|blob):/.test(u))}")
SAVE_ALL = """const done = arguments[arguments.length - 1];
const link = document.getElementById("save-all");
link.dispatchEvent(new MouseEvent("click", {cancelable: true}));  // the page makes the blob on the click
fetch(link.href).then(r => r.arrayBuffer()).then(buffer => {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  done(btoa(text));
});"""


class WebKit:
    """One WebDriver session of the WebKitGTK MiniBrowser (the few W3C commands these tests need)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        caps = {"alwaysMatch": {"browserName": "MiniBrowser", "webkitgtk:browserOptions": {
            "binary": str(MINIBROWSER), "args": ["--automation"]}}}
        self.session = f"/session/{self.call('POST', '/session', {'capabilities': caps})['sessionId']}"
        self.call("POST", f"{self.session}/window/rect", {"width": 1100, "height": 1350})

    def call(self, method: str, path: str, body: object = None) -> dict:
        request = urllib.request.Request(self.base + path, method=method, headers={"Content-Type": "application/json"},
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())["value"]

    def run(self, script: str, asynchronous: bool = False) -> object:
        return self.call("POST", f"{self.session}/execute/{'async' if asynchronous else 'sync'}",
                         {"script": script, "args": []})

    def element(self, css: str) -> str:
        found = self.call("POST", f"{self.session}/element", {"using": "css selector", "value": css})
        return str(next(iter(found.values())))

    def open(self, url: str, passphrase: str = "") -> dict:
        """Go to `url`, type `passphrase` if given, and wait until the viewer settles; the page's state."""
        self.call("POST", f"{self.session}/url", {"url": url})
        if passphrase:
            self.call("POST", f"{self.session}/element/{self.element('#unlock-phrase')}/value", {"text": passphrase})
            self.call("POST", f"{self.session}/element/{self.element('#unlock-button')}/click", {})
        deadline = time.monotonic() + 180
        while True:
            state = self.run(STATE)
            assert isinstance(state, dict)
            if state["viewer"] not in ("", "loading", "picking") or time.monotonic() > deadline:
                return state
            time.sleep(0.3)

    def canvas(self) -> np.ndarray:
        """The viewer canvas in grey levels, cut from a screenshot of the window (scrolled into view)."""
        self.run("document.getElementById('viewer-canvas').scrollIntoView()")
        time.sleep(1.0)  # a frame or two after scrolling
        shot = Image.open(io.BytesIO(base64.b64decode(str(self.call("GET", f"{self.session}/screenshot")))))
        box = self.run("const r = document.getElementById('viewer-canvas').getBoundingClientRect();"
                       " return [r.left, r.top, r.right, r.bottom]")  # in the viewport, as the screenshot is
        assert isinstance(box, list)
        return np.asarray(shot.convert("L").crop(tuple(round(v) for v in box)), dtype=np.float32)


@pytest.fixture
def webkit() -> Iterator[WebKit]:
    """A MiniBrowser on its own Xvfb screen, driven by WebKitWebDriver."""
    assert MINIBROWSER.is_file() and shutil.which("WebKitWebDriver") and shutil.which("xvfb-run"), \
        "apt-get install webkit2gtk-driver xvfb xauth (.ci/run does)"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    driver = subprocess.Popen(["xvfb-run", "-a", "-s", "-screen 0 1280x1400x24", "WebKitWebDriver", f"--port={port}"],
                              env={**os.environ, "LIBGL_ALWAYS_SOFTWARE": "1"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                browser = WebKit(port)
                break
            except OSError:
                assert time.monotonic() < deadline and driver.poll() is None, "WebKitWebDriver did not start"
                time.sleep(0.3)
        yield browser
        browser.call("DELETE", browser.session)
    finally:
        os.killpg(driver.pid, 15)
        driver.wait(10)


def test_the_passphrase_page_opens_in_webkit_and_saves_the_zips_files(philips_share: SharedHead,
                                                                      webkit: WebKit) -> None:
    state = webkit.open(philips_share.page.as_uri(), philips_share.passphrase)
    assert state["secure"] and state["subtle"]  # WebCrypto on file://
    assert (state["unlock"], state["viewer"]) == ("open", "ready")
    assert four_cells_show_the_head(webkit.canvas())
    top, expected = philips_share.members()
    assert state["files"] == len(expected)
    everything = zipfile.ZipFile(io.BytesIO(base64.b64decode(str(webkit.run(SAVE_ALL, asynchronous=True)))))
    assert {n.removeprefix(f"{top}/"): hashlib.sha256(everything.read(n)).hexdigest()
            for n in everything.namelist()} == expected
    assert state["remote"] == []


def test_the_extracted_index_opens_in_webkit(philips_share: SharedHead, webkit: WebKit, tmp_path: Path) -> None:
    """index.html loads the viewer and its volumes as classic scripts beside it: WebKit allows that on file://."""
    state = webkit.open(philips_share.extracted_index(tmp_path / "x").as_uri())
    assert state["viewer"] == "ready" and four_cells_show_the_head(webkit.canvas())
    assert state["remote"] == []
