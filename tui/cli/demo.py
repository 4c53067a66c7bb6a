"""`mrishare demo`: make the synthetic demo study and show what mrishare sees in it.

`--make DIR` only writes the study and prints the participant folders. Without it the study is
made (or reused) under the data folder, scanned, and one T1 slice is inspected.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from tui.cli.inspect import legend, table
from tui.cli.output import run_with_progress, stdout
from tui.cli.scan import print_result, shown_path
from tui.core.config import data_dir
from tui.core.errors import MrishareError

if TYPE_CHECKING:
    from tui.core.dicom.scan import ScanResult, Series


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    p = subparsers.add_parser("demo", help="try mrishare on a synthetic study (invented people), no server needed")
    p.add_argument("--make", type=Path, metavar="DIR", help="only write the demo study into DIR (empty or new)")
    p.add_argument("--participants", type=int, default=2, help="number of invented participants (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed: same seed, same files and UIDs")
    p.add_argument("--headless", action="store_true",
                   help="no app: show the scan and one inspection, then run the pipeline (default without a terminal)")
    p.add_argument("--reveal", action="store_true", help="show the invented names, IDs and dates")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Make (or reuse) the demo study, then open the app on it, or run it headless."""
    from tui.core.demo import make_demo_study
    from tui.core.dicom.scan import scan_events

    if args.participants < 1:
        raise MrishareError("--participants must be at least 1")
    if args.make is not None:
        for folder in run_with_progress(make_demo_study(args.make, args.participants, args.seed)):
            print(folder)
        return 0
    study = data_dir() / "demo"
    if _reusable(study, args.participants, args.seed):
        stdout.print(Text(f"using the demo study in {study}"))
    else:
        shutil.rmtree(study, ignore_errors=True)
        run_with_progress(make_demo_study(study, args.participants, args.seed))
        stdout.print(Text(f"made a demo study in {study}"))
    outbox, ledger = data_dir() / "demo-outbox", data_dir() / "demo-share-list.xlsx"
    outbox.mkdir(parents=True, exist_ok=True)
    pipeline_args = ["--dest", f"folder:{outbox}", "--ledger", str(ledger)]
    if not args.headless and sys.stdin.isatty() and sys.stdout.isatty():
        from tui.cli.app import build_app_parser, run_app

        return run_app(build_app_parser().parse_args([str(study), *pipeline_args]))
    result = run_with_progress(scan_events(study))
    print_result(result, reveal=args.reveal)
    _inspect_t1(result, args.reveal)
    stdout.print(Text(f"\nRunning the pipeline for every participant into {outbox} ...", style="bold"))
    from tui.cli.batch import build_batch_parser
    from tui.cli.batch import run as run_batch

    return run_batch(build_batch_parser().parse_args([str(study), *pipeline_args]))


def _reusable(out: Path, participants: int, seed: int) -> bool:
    """True if `out` holds a complete earlier demo study made with the same settings."""
    from tui.core.demo import MARKER

    marker = out / MARKER
    if not marker.is_file():
        return False
    try:
        made = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    names = made.get("participants", [])
    return made.get("seed") == seed and len(names) == participants and all((out / n).is_dir() for n in names)


def _t1(result: ScanResult) -> Series:
    """The first participant's series with the most slices (the 3D T1)."""
    if not result.participants:
        raise MrishareError("the demo study has no participants", where=result.root)
    return max(result.participants[0].series(), key=lambda s: s.slices)


def _inspect_t1(result: ScanResult, reveal: bool) -> None:
    """Show the identifying elements of the middle T1 slice and their Annex E actions."""
    from tui.core.dicom.scan import Skipped, read_header
    from tui.core.dicom.tags import flatten

    series = _t1(result)
    path = series.files[len(series.files) // 2]
    ds = read_header(path)
    if isinstance(ds, Skipped):
        raise MrishareError(ds.reason, where=path)
    rows = [r for r in flatten(ds) if "identifying" in r.flags]
    stdout.print(Text(f"\nWhat de-identification would change in one T1 slice ({len(rows)} elements):", style="bold"))
    stdout.print(table(rows, reveal, Path(shown_path(path, result, reveal))))
    stdout.print(legend(frozenset(), reveal, "options"))
