"""Benchmark: de-identification throughput on 1,000 MR slices, next to dicognito on the same files.

    python tests/bench/bench_deid.py [--files 1000] [--workers N]

The input is the Philips head-mri series (170 classic MR slices) copied round-robin to N files,
each with a new SOPInstanceUID and InstanceNumber, in one participant folder. Ours: scan +
`deidentify_participant` (default options, process pool, leak gate on every file). dicognito:
read, `Anonymizer().anonymize`, write, one file after another (what its CLI does).
Target: >= 200 files/s on a 2-core machine (dicognito reaches about 80 there).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
SERIES = REPO.parent / "shared" / "data" / "head-mri" / "philips_ingenia_elitionx_adni_mprage_1mm" / "dicom"


def make_input(folder: Path, count: int) -> list[Path]:
    """`count` copies of the Philips slices with fresh instance UIDs, in `folder`."""
    sources = sorted(SERIES.iterdir())
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        ds = pydicom.dcmread(sources[index % len(sources)])
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = index + 1
        path = folder / f"IM{index:05d}"
        ds.save_as(path)
        paths.append(path)
    return paths


def run_ours(source: Path, out: Path, workers: int | None) -> tuple[float, float, int]:
    """(scan seconds, de-identification seconds, released files)."""
    from tui.core.deid.deidentify import DeidSettings, deidentify_participant
    from tui.core.dicom.scan import scan
    from tui.core.events import drain

    start = time.perf_counter()
    found = scan(source, as_participant=True, workers=workers)
    scanned = time.perf_counter()
    result = drain(deidentify_participant(found.participants[0], out, DeidSettings(workers=workers)))
    return scanned - start, time.perf_counter() - scanned, len(result.released)


def run_dicognito(paths: list[Path], out: Path) -> float:
    """Seconds for dicognito to read, anonymize and write every file."""
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    out.mkdir(parents=True)
    start = time.perf_counter()
    for index, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        anonymizer.anonymize(ds)
        ds.save_as(out / f"{index:05d}.dcm")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deid-") as tmp:
        base = Path(tmp)
        os.environ["MRISHARE_HOME"] = str(base / "home")
        paths = make_input(base / "src" / "participant", args.files)
        scan_s, deid_s, released = run_ours(base / "src" / "participant", base / "ours", args.workers)
        dicognito_s = run_dicognito(paths, base / "dicognito")
    n = args.files
    ours_rate = n / deid_s
    print(f"files: {n} MR slices ({released} released), cores: {len(os.sched_getaffinity(0))}, "
          f"load average: {os.getloadavg()[0]:.1f}")
    print(f"mrishare deid      : {deid_s:6.2f} s  {ours_rate:7.1f} files/s   (+ scan {scan_s:.2f} s: "
          f"{n / (scan_s + deid_s):.1f} files/s end to end)")
    print(f"dicognito          : {dicognito_s:6.2f} s  {n / dicognito_s:7.1f} files/s")
    print(f"ratio (ours/dicognito): {dicognito_s / deid_s:.2f}x   target: >= 200 files/s")


if __name__ == "__main__":
    main()
