"""The ledger at scale (issue 15 point 5): open and save of share-list.xlsx with --rows rows.

Builds a ledger of --rows shared rows through the public API (timed once: "save all"), then times,
each the median of --repeat runs:
  open           Ledger.open(path) + rows() + close() of a file this process has not read (parsed):
                 `shares list`, a run, the app's start
  open again     the same for the file this process last read or wrote (known by its SHA-256, not
                 parsed): the app re-opening after every change
  save one       open, change one row, save (the timing covers save() alone): a pipeline step
  save new       open, add one row, save (save() alone): a new participant
  delete one     open, delete one row, save (save() alone): "share again" moves all rows below up
  open after a LibreOffice save, and a save in that file: what a person's edit leaves (shared
                 strings, LibreOffice's styles and XML); only when `soffice` is installed
Each timing is wall time and, in brackets, the CPU time of this process (the wall time of a
loaded machine is several times its CPU time).
Run:  python tests/bench/bench_ledger.py [--rows 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tui.core.delivery.ledger import Ledger, LedgerRow


def sample_row(number: int) -> LedgerRow:
    """A realistic shared row: unique link, passphrase and checksum, dates set."""
    return LedgerRow(
        f"{number:06d}-{number * 7919 % 100000:05d}", participant=f"sub-{number:05d}", pseudonym=f"ps{number:05d}",
        source_folder=f"/data/study/sub-{number:05d}", series=5, size=123_456_789 + number,
        sha256=f"{number * 2654435761:064x}"[-64:], destination="nextcloud",
        remote_path=f"/mrishare/sub-{number:05d}.zip", share_id=str(1000 + number),
        link=f"https://cloud.example.org/s/{number * 48271:015x}", passphrase=f"quartz-walrus-{number}-lagoon-zephyr",
        expires=date(2026, 12, 24), status="shared", mode="aes", created=datetime(2026, 11, 20, 9, 30),
        last_action="share", note="")


def build(path: Path, rows: int) -> Timing:
    """Write a ledger of `rows` rows; returns the time of its one save."""
    with Ledger.open(path) as ledger:
        for number in range(rows):
            ledger.upsert(sample_row(number))
        start = _clock()
        ledger.save()
        return _since(start)


Timing = tuple[float, float]
"""(wall seconds, CPU seconds of this process): on a shared machine the wall time grows with the load."""


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def timed_open(path: Path) -> Timing:
    start = _clock()
    with Ledger.open(path) as ledger:
        ledger.rows()
    return _since(start)


def timed_cold_open(path: Path) -> Timing:
    """Open a copy under a name this process never read: parsed, as by a new process (`shares list`)."""
    copy = path.with_name(f"cold-{time.perf_counter_ns()}.xlsx")
    copy.write_bytes(path.read_bytes())
    try:
        return timed_open(copy)
    finally:
        copy.unlink()


def timed_save(path: Path, change: Callable[[Ledger], None]) -> Timing:
    with Ledger.open(path) as ledger:
        change(ledger)
        start = _clock()
        ledger.save()
        return _since(start)


def median(repeat: int, run: Callable[[], Timing]) -> str:
    """'wall s (CPU s)', the medians of `repeat` runs."""
    runs = [run() for _ in range(repeat)]
    return f"{statistics.median(r[0] for r in runs):6.2f} s ({statistics.median(r[1] for r in runs):.2f} s CPU)"


def shown(timing: Timing) -> str:
    return f"{timing[0]:6.2f} s ({timing[1]:.2f} s CPU)"


def edited_in_libreoffice(path: Path, work: Path) -> Path | None:
    """The ledger as LibreOffice saves it (xlsx -> xlsx round trip), or None without soffice."""
    soffice = shutil.which("soffice")
    if soffice is None:
        return None
    out = work / "lo"
    subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{work}/lo-profile", "--convert-to",
                    "xlsx:Calc MS Excel 2007 XML", "--outdir", str(out), str(path)], check=True,
                   capture_output=True, timeout=600)
    return out / path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = work / "share-list.xlsx"
        bulk = build(path, args.rows)
        print(f"{args.rows} rows, {path.stat().st_size / 1e6:.1f} MB; load average {os.getloadavg()[0]:.1f}; "
              f"median of {args.repeat}")
        print(f"  {f'save all (one save of {args.rows} new rows)':<38}{shown(bulk)}")
        print(f"  {'open (first in a process: parses)':<38}{median(args.repeat, lambda: timed_cold_open(path))}")
        print(f"  {'open again (file unchanged)':<38}{median(args.repeat, lambda: timed_open(path))}")
        counter = iter(range(10**9))

        def change_one(ledger: Ledger) -> None:
            row = ledger.rows()[len(ledger.rows()) // 2]
            ledger.upsert(replace(row, last_action=f"checked {next(counter)}"))

        def add_one(ledger: Ledger) -> None:
            ledger.upsert(sample_row(args.rows + next(counter)))

        def delete_one(ledger: Ledger) -> None:
            ledger.delete(ledger.rows()[1].id)

        for label, change in (("save one changed row", change_one), ("save one new row", add_one),
                              ("delete one row (rows below move up)", delete_one)):
            print(f"  {label:<38}{median(args.repeat, lambda: timed_save(path, change))}")  # noqa: B023
        edited = edited_in_libreoffice(path, work)
        if edited is None:
            print(f"  {'open after a LibreOffice save':<38}(soffice not installed)")
            return
        shutil.copy(edited, path)
        print(f"  {'open after a LibreOffice save':<38}{median(args.repeat, lambda: timed_cold_open(path))}")
        print(f"  {'save one changed row in it':<38}{median(args.repeat, lambda: timed_save(path, change_one))}")


if __name__ == "__main__":
    main()
