"""`mrishare demo`: make the synthetic demo study and show what mrishare sees in it.

`--make DIR` only writes the study and prints the participant folders. Without it the study is
made (or reused) under the data folder, scanned, and one T1 slice is inspected.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.text import Text

from tui.cli.inspect import legend, table
from tui.cli.output import run_with_progress, stdout
from tui.cli.scan import print_result, shown_path
from tui.core.config import data_dir
from tui.core.demo import MARKER, make_demo_study
from tui.core.dicom_scan import ScanResult, Series, Skipped, read_header, scan_events
from tui.core.errors import MrishareError
from tui.core.tags import flatten

NEXT_STEPS = """\
Next steps (what the app will run on this study):
  1. de-identify every series (PS3.15 Annex E; try `mrishare inspect FILE`)
  2. convert to NIfTI and deface the T1
  3. zip with AES-256 and a word passphrase; deliver to a folder or Nextcloud
  4. record the share in share-list.xlsx"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    p = subparsers.add_parser("demo", help="make a synthetic demo study (invented people) and show it")
    p.add_argument("--make", type=Path, metavar="DIR", help="only write the demo study into DIR (empty or new)")
    p.add_argument("--participants", type=int, default=2, help="number of invented participants (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed: same seed, same files and UIDs")
    p.add_argument("--reveal", action="store_true", help="show the invented names, IDs and dates")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Make (or reuse) the demo study, then scan and inspect it unless only --make was asked."""
    if args.participants < 1:
        raise MrishareError("--participants must be at least 1")
    if args.make is not None:
        for folder in run_with_progress(make_demo_study(args.make, args.participants, args.seed)):
            print(folder)
        return 0
    out = data_dir() / "demo"
    if _reusable(out, args.participants, args.seed):
        stdout.print(Text(f"using the demo study in {out}"))
    else:
        run_with_progress(make_demo_study(out, args.participants, args.seed))
        stdout.print(Text(f"made a demo study in {out}"))
    result = run_with_progress(scan_events(out))
    print_result(result, reveal=args.reveal)
    _inspect_t1(result, args.reveal)
    stdout.print(Text(NEXT_STEPS))
    return 0


def _reusable(out: Path, participants: int, seed: int) -> bool:
    """True if `out` holds a complete earlier demo study made with the same settings."""
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
    series = _t1(result)
    path = series.files[len(series.files) // 2]
    ds = read_header(path)
    if isinstance(ds, Skipped):
        raise MrishareError(ds.reason, where=path)
    rows = [r for r in flatten(ds) if "identifying" in r.flags]
    stdout.print(Text(f"\nWhat de-identification would change in one T1 slice ({len(rows)} elements):", style="bold"))
    stdout.print(table(rows, reveal, Path(shown_path(path, result, reveal))))
    stdout.print(legend(frozenset(), reveal))
