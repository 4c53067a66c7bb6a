"""Where the passphrase page stops working in Chromium, and what it costs on the way (issue 20, point 2).

The Siemens 2 mm head's package (NIfTI, previews, viewer, README) plus an incompressible filler of N MB named like
a series (it stands in for more series: .nii.gz does not compress further and the page's zip stores it) is packed,
its page written, and opened in Debian's headless chromium (SwiftShader). Per size:

  page      MB of the HTML file (the payload as base64: 4/3 of the plain zip)
  load      s from navigation to the page's `load` event (the browser parses the whole file)
  unlock    s from clicking Open with the passphrase to `data-unlock=open` (base64 decode, PBKDF2, AES-GCM)
  viewer    s from Open to the first rendered frame (or the state it ended in)
  peak PSS  MB summed over every chromium process of the run (browser, renderer, GPU), sampled every 0.1 s;
            beside it the same sum with a blank page, before the page is opened
  JS heap   MB the page's JS heap used at the end (performance.memory)
  saved     whether the filler, saved through its link on the page, has the SHA-256 of the original

With --deflated the filler is named .nii (not .nii.gz): the page's zip deflates it and the browser must inflate it
(the way a large uncompressed image or many DICOM files would arrive).

Run:  python tests/bench/bench_unlock_limit.py [--filler-mib 0 100 250 400] [--deflated]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

from browser_helpers import HEAD, PHRASE, open_browser

from tui.core.delivery import package
from tui.core.delivery.passphrase import Passphrase
from tui.core.delivery.unlock_page import write_unlock_page
from tui.core.events import drain
from tui.core.nifti import preview
from tui.core.nifti.participant_docs import write_participant_docs

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def tree_pss_mb(profile: Path) -> float:
    """Memory of the chromium started with `profile` and all its descendants, in MB: the sum of their PSS (shared
    pages split among the processes that share them; a sum of RSS would count the shared libraries ~10 times)."""
    parents: dict[int, int] = {}
    roots = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[pid] = int(fields.get("PPid", "0").strip())
        if f"--user-data-dir={profile}".encode() in cmdline and b"--type=" not in cmdline:
            roots.append(pid)

    def under_root(pid: int) -> bool:
        while pid > 1:
            if pid in roots:
                return True
            pid = parents.get(pid, 0)
        return False

    total = 0
    for pid in parents:
        if under_root(pid):
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            total += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return total / 1024


class PeakSampler:
    """Samples `tree_pss_mb` every 0.1 s on a thread; `peak` is the highest value seen."""

    def __init__(self, profile: Path) -> None:
        self.profile, self.peak, self._stop = profile, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss_mb(self.profile))
            self._stop.wait(0.1)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_page(root: Path, filler_mib: int, suffix: str = ".nii.gz") -> Path:
    """The head's package plus `filler_mib` MB of random bytes (a file named `sub-BENCH_filler<suffix>`), packed, and
    its passphrase page."""
    folder = root / f"f{filler_mib}" / "sub-BENCH"
    (folder / "anat").mkdir(parents=True)
    nifti = folder / "anat" / "sub-BENCH_T1w.nii.gz"
    shutil.copyfile(DATA / HEAD, nifti)
    previews = {nifti: preview.make_previews(nifti, folder / "previews")}
    write_participant_docs(folder, [nifti], previews, viewer=True)
    if filler_mib:
        # named like a series: the page's zip stores .nii.gz as they are (deflating them again gains nothing), so the
        # browser only copies them out, as it does for real series
        with open(folder / "anat" / f"sub-BENCH_filler{suffix}", "wb") as out:
            for _ in range(filler_mib):
                out.write(os.urandom(1 << 20))
    zip_path = root / f"f{filler_mib}" / "sub-BENCH.zip"
    drain(package.build_package(folder, zip_path, Passphrase.from_text(PHRASE, "en")))
    return write_unlock_page(zip_path, PHRASE, folder).path


def saved(page: object, folder: Path) -> str:
    """Save the filler through its link on the page: 'ok' if the file has the original's SHA-256."""
    filler = next((folder / "anat").glob("sub-BENCH_filler*"), None)
    if filler is None:
        return "-"
    try:
        with page.expect_download() as download:
            page.click(f'#files a[data-path="anat/{filler.name}"]')
        digest = hashlib.sha256(Path(download.value.path()).read_bytes()).hexdigest()
    except Exception as error:  # the download the browser could not finish: that is the finding
        return f"failed ({type(error).__name__}: {str(error)[:60]})"
    return "ok" if digest == hashlib.sha256(filler.read_bytes()).hexdigest() else "WRONG BYTES"


def measure(page_file: Path, profile: Path) -> str:
    """One line of numbers for one page."""
    for browser in open_browser(profile):
        page = browser.page
        page.set_default_timeout(600_000)
        idle = tree_pss_mb(profile)  # chromium with a blank page: the floor under every number below
        with PeakSampler(profile) as sampler:
            started = time.perf_counter()
            page.goto(page_file.as_uri(), wait_until="load")
            load_s = time.perf_counter() - started
            page.fill("#unlock-phrase", PHRASE)
            started = time.perf_counter()
            page.click("#unlock-button")
            page.wait_for_selector("body:not([data-unlock=working]):not([data-unlock=locked])")
            unlock_s, unlocked = time.perf_counter() - started, page.get_attribute("body", "data-unlock")
            viewer = "-"
            if unlocked == "open":
                page.wait_for_selector("body[data-viewer]:not([data-viewer=loading]):not([data-viewer=picking])")
                viewer = f"{time.perf_counter() - started:.1f} s ({page.get_attribute('body', 'data-viewer')})"
                unlocked = page.get_attribute("body", "data-unlock")  # `incomplete` if a file could not be unpacked
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0") / 1e6
            status = page.inner_text("#unlock-status") if unlocked != "open" else ""
            kept = saved(page, page_file.parent / "sub-BENCH") if unlocked in ("open", "incomplete") else "-"
        remote = browser.remote()
        return (f"page {page_file.stat().st_size / 1e6:7.1f} MB | load {load_s:5.1f} s | unlock {unlock_s:5.1f} s "
                f"({unlocked}{': ' + status[:80] if status else ''}) | viewer {viewer} | peak PSS "
                f"{sampler.peak:6.0f} MB (blank page {idle:.0f} MB) | JS heap {heap:5.0f} MB | "
                f"saved {kept} | remote requests {len(remote)}")
    raise RuntimeError("no browser")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filler-mib", type=int, nargs="+", default=[0, 100, 250, 400])
    parser.add_argument("--deflated", action="store_true", help="a .nii filler: deflated in the page, inflated there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for filler in args.filler_mib:
            root = Path(tmp)
            page = make_page(root, filler, ".nii" if args.deflated else ".nii.gz")
            try:
                line = measure(page, root / f"profile-{filler}")
            except Exception as error:  # a page the browser cannot take: that is the finding
                line = f"page {page.stat().st_size / 1e6:7.1f} MB | failed: {type(error).__name__}: {str(error)[:160]}"
            print(f"filler {filler:4d} MB | {line}", flush=True)
            shutil.rmtree(root / f"f{filler}", ignore_errors=True)


if __name__ == "__main__":
    main()
