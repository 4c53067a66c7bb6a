"""What the participant viewer costs, for the two shared heads (converted from their DICOM as a share does):

  previews    s to render and write the two preview PNGs (load of the NIfTI counted apart)
  viewer      s to write the viewer copy; its size
  zip         AES package size without and with the viewer (include_viewer off/on), and the ratio
  page        passphrase page size, and s to write it
  open        s from clicking "Open" with the passphrase to the first rendered frame in headless chromium
              (SwiftShader software WebGL), the page's JS heap at that moment, and the peak memory of all the
              browser's processes (PSS, sampled every 0.1 s; see bench_unlock_limit.py)
  share       the whole `mrishare share` of the head against dicognito + dcm2niix + 7z chained by hand, in the
              same run (bench_share_vs_tools.py; --repeat runs each, alternating)
Run:  python tests/bench/bench_viewer.py [--no-browser] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

from bench_share_vs_tools import by_hand, share

from tui.core.delivery import package
from tui.core.delivery.passphrase import Passphrase
from tui.core.delivery.unlock_page import write_unlock_page
from tui.core.events import drain
from tui.core.nifti import preview
from tui.core.nifti.conversion import SeriesInput, convert_series, subject_dir
from tui.core.nifti.participant_docs import write_participant_docs

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "head-mri"
HEADS = {"siemens 2 mm": "siemens_prisma_xa30_mprage_2mm", "philips 1 mm": "philips_ingenia_elitionx_adni_mprage_1mm"}
PHRASE = "apple-river-stone-cloud-seven"


def package_size(folder: Path, out: Path, viewer: bool, previews: dict) -> tuple[int, Path]:
    """Write the docs with or without the viewer, pack; the zip size and path."""
    shutil.rmtree(folder / "viewer", ignore_errors=True)
    write_participant_docs(folder, list(previews), previews, viewer=viewer)
    zip_path = out / f"{folder.name}-{'viewer' if viewer else 'plain'}.zip"
    drain(package.build_package(folder, zip_path, Passphrase.from_text(PHRASE, "en")))
    return zip_path.stat().st_size, zip_path


def open_time(page_file: Path, profile: Path) -> tuple[float, float, float]:
    """(s from Open to the first frame, JS heap MB, peak PSS MB of all chromium processes) in headless chromium."""
    from bench_unlock_limit import PeakSampler
    from browser_helpers import open_browser

    for browser in open_browser(profile):
        page = browser.page
        with PeakSampler(profile) as memory:
            page.goto(page_file.as_uri())
            page.fill("#unlock-phrase", PHRASE)
            started = time.perf_counter()
            page.click("#unlock-button")
            page.wait_for_selector("body[data-viewer=ready]", timeout=600_000)
            elapsed = time.perf_counter() - started
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0") / 1e6
        assert browser.remote() == [], browser.remote()
        return elapsed, heap, memory.peak
    raise RuntimeError("no browser")


def bench(name: str, folder_name: str, root: Path, browser: bool, repeat: int) -> None:
    files = sorted((DATA / folder_name / "dicom").iterdir())
    items = drain(convert_series([SeriesInput("s1", files)], root / name.replace(" ", ""), "BENCH"))
    folder = subject_dir(root / name.replace(" ", ""), "BENCH")
    nifti = items[0].nifti
    started = time.perf_counter()
    volume, zooms = preview.load_volume(nifti)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    previews = {nifti: preview.make_previews(nifti, folder / "previews")}
    preview_s = time.perf_counter() - started
    out = root / f"out-{name.replace(' ', '')}"
    plain, _ = package_size(folder, out, False, previews)
    started = time.perf_counter()
    with_viewer, zip_path = package_size(folder, out, True, previews)
    docs_s = time.perf_counter() - started
    copy = sum(p.stat().st_size for p in (folder / "viewer").glob("*.js") if p.name != "niivue.umd.js")
    started = time.perf_counter()
    page = write_unlock_page(zip_path, PHRASE, folder)
    page_s = time.perf_counter() - started
    print(f"{name}: NIfTI {nifti.stat().st_size / 1e6:.1f} MB {volume.shape} {zooms[0]:.1f} mm | load {loaded:.2f} s"
          f" | previews {preview_s:.2f} s | docs+viewer+pack {docs_s:.1f} s, viewer copy {copy / 1e6:.2f} MB")
    print(f"  zip without viewer {plain / 1e6:.2f} MB, with {with_viewer / 1e6:.2f} MB "
          f"(+{(with_viewer - plain) / plain:.0%}) | page {page.path.stat().st_size / 1e6:.2f} MB in {page_s:.1f} s")
    if browser:
        seconds, heap, peak = open_time(page.path, root / f"profile-{name.replace(' ', '')}")
        print(f"  passphrase -> first frame {seconds:.1f} s, JS heap {heap:.0f} MB, browser peak PSS {peak:.0f} MB")
    if repeat:
        tools, ours = [], []
        for _ in range(repeat):
            tools.append(by_hand(DATA / folder_name / "dicom", root / "tools"))
            ours.append(share(DATA / folder_name / "dicom", root / "share"))
        hand, mine = statistics.median(tools), statistics.median(ours)
        print(f"  whole share {mine:.2f} s vs by hand {hand:.2f} s (medians of {repeat}): ratio {mine / hand:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="skip the chromium timing")
    parser.add_argument("--repeat", type=int, default=3, help="whole-share runs per side (0: skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in HEADS.items():
            bench(name, folder, Path(tmp), not args.no_browser, args.repeat)


if __name__ == "__main__":
    main()
