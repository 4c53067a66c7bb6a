"""Discovery speed: mrishare's scan vs a plain `pydicom.dcmread(f, stop_before_pixels=True)` loop.

Builds a temp study with real files: head-mri (Philips 170 classic + Siemens enhanced),
multivendor (183 files) and copies of the Philips series up to --files in all. Then, on the
same files, in one run (each timing the best of --repeat):
  pydicom   for f in files: dcmread(f, stop_before_pixels=True)    (one process; the file list is given)
  scan      tui.core.dicom.scan.scan(root): walk + sniff + headers + truncation check + grouping,
            worker processes above 200 files, one per idle core (the default)
  scan-1    the same with workers=1 (one process)
  scan-2    the same with workers=2 (two processes, even when the machine is busy)
Cold cache = `sync; echo 3 > /proc/sys/vm/drop_caches` before each timing (needs root; the
script says when it cannot). Run:  python tests/bench/bench_scan.py [--files 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tui.core.dicom.scan import scan

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SOURCES = (
    DATA / "head-mri" / "philips_ingenia_elitionx_adni_mprage_1mm" / "dicom",
    DATA / "head-mri" / "siemens_prisma_xa30_mprage_2mm" / "dicom",
    *sorted(p for p in (DATA / "multivendor").rglob("*") if p.is_dir() and any(
        f.is_file() and not f.name.startswith("LICENSE") for f in p.iterdir()) and not any(
        d.is_dir() for d in p.iterdir())),
)
PHILIPS = SOURCES[0]


def make_input(root: Path, total: int) -> list[Path]:
    """Copy the real series into root/<series>/ and add Philips copies until `total` files."""
    files = []
    for index, src in enumerate(SOURCES):
        dest = root / f"{index:02d}_{src.parent.name}"
        dest.mkdir(parents=True)
        for f in sorted(src.iterdir()):
            if f.is_file() and not f.name.startswith("LICENSE"):
                files.append(Path(shutil.copyfile(f, dest / f.name)))
    copy = 0
    while len(files) < total:
        dest = root / f"copy{copy:02d}"
        dest.mkdir()
        for f in sorted(PHILIPS.iterdir())[: total - len(files)]:
            files.append(Path(shutil.copyfile(f, dest / f.name)))
        copy += 1
    return files


def drop_caches() -> bool:
    """Empty the page cache (root only); False if not permitted."""
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def best(runs: dict[str, Callable[[], object]], repeat: int, cold: bool) -> dict[str, float]:
    """Shortest wall time of each run over `repeat` rounds, interleaved so load changes hit all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            if cold:
                drop_caches()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        root = Path(tmp)
        files = make_input(root, args.files)
        size = sum(f.stat().st_size for f in files)
        expected = scan(root, workers=1)
        assert sum(p.files for p in expected.participants) == len(files), "scan missed files"
        assert not expected.skipped, expected.skipped[:3]
        can_drop = drop_caches()
        print(f"{len(files)} files, {size / 1e6:.0f} MB; cores: {len(os.sched_getaffinity(0))}; "
              f"load average: {os.getloadavg()[0]:.1f}")
        if not can_drop:
            print("cannot drop the page cache (not root): the 'cold' rows are warm too")

        def plain() -> None:
            for f in files:
                pydicom.dcmread(f, stop_before_pixels=True)

        runs = {"pydicom": plain, "scan": lambda: scan(root), "scan-1": lambda: scan(root, workers=1),
                "scan-2": lambda: scan(root, workers=2)}
        print("files/s (ratio to pydicom)")
        print(f"{'cache':<6}" + "".join(f"{name:>16}" for name in runs))
        for cold in (True, False):
            if not cold:
                plain()  # warm the cache
            rate = {name: len(files) / t for name, t in best(runs, args.repeat, cold).items()}
            cells = [f"{rate[name]:.0f}" + ("" if name == "pydicom" else f" ({rate[name] / rate['pydicom']:.2f})")
                     for name in runs]
            print(f"{'cold' if cold else 'warm':<6}" + "".join(f"{c:>16}" for c in cells))
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
