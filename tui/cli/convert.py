"""`mrishare convert SRC OUT`: one participant's DICOM folder -> BIDS NIfTI, previews, README, leak gate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from tui.cli.output import run_with_progress, stdout
from tui.core.errors import MrishareError
from tui.core.presets import ENGINES

if TYPE_CHECKING:
    from tui.core.nifti.conversion import Converted, NotConverted


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `convert` subcommand."""
    p = subparsers.add_parser(
        "convert", help="convert one participant's DICOM folder to NIfTI with previews and a README",
        description="Convert every series under SRC (one participant) to OUT/sub-<subject>/ses-<n>/... "
                    "(.nii.gz + whitelisted .json), write previews, index.html and README.txt, then run "
                    "the leak gate against the identifiers in SRC's headers. Exit 1 if the gate finds any.")
    p.add_argument("src", type=Path, metavar="SRC", help="DICOM folder of one participant")
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (BIDS root)")
    p.add_argument("--subject", default="01", help="participant label for file names: a pseudonym, letters and "
                                                   "digits only, never a name or ID (default: 01)")
    p.add_argument("--session", default="1", help="session label (default: 1)")
    p.add_argument("--engine", choices=ENGINES, default=ENGINES[0],
                   help="dcm2niix (default; falls back to dicom2nifti per series) or dicom2nifti")
    p.add_argument("--no-previews", action="store_true", help="skip preview PNGs, index.html and README.txt")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notes")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Scan, convert, write previews/docs, run the leak gate; print one row per series."""
    from tui.core.deid import leakcheck
    from tui.core.dicom.scan import scan_events
    from tui.core.nifti.conversion import Converted, convert_series, inputs_from_scan, subject_dir
    from tui.core.nifti.participant_docs import write_participant_docs
    from tui.core.nifti.preview import make_previews

    found = run_with_progress(scan_events(args.src, as_participant=True), quiet=args.quiet)
    if not found.participants:
        raise MrishareError("no DICOM series found", args.src)
    participant = found.participants[0]
    results = run_with_progress(
        convert_series(inputs_from_scan(participant.series()), args.out, args.subject, args.session, args.engine),
        quiet=args.quiet)
    converted = [r for r in results if isinstance(r, Converted)]
    folder = subject_dir(args.out, args.subject)
    if converted and not args.no_previews:
        previews = {c.series_key: make_previews(c.nifti, folder / "previews") for c in converted}
        write_participant_docs(folder, converted, previews)
    _print_results(results, args.out)
    if not converted:
        raise MrishareError("no series could be converted", args.src)
    identifiers = leakcheck.collect_identifiers(participant)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    findings = leakcheck.check_files(files, identifiers, root=args.out)
    leaks = [leak for leak in findings if leak.blocks]
    for line in leakcheck.summarize(findings, limit=20):
        stdout.print(f"leak gate: {line}", style="red" if leaks else None, markup=False)
    if leaks:
        stdout.print(f"leak gate FAILED: {len(leaks)} identifying value(s) in {folder}; do not release it",
                     style="red", markup=False)
        return 1
    stdout.print(f"leak gate passed: {len(files)} files checked", markup=False)
    return 0


def _print_results(results: list[Converted | NotConverted], out: Path) -> None:
    """One row per output or skipped series: series number, kind, file or reason."""
    from tui.core.nifti.conversion import Converted

    table = Table(title="conversion", title_justify="left")
    for column in ("series", "kind", "result"):
        table.add_column(column)
    for r in results:
        if isinstance(r, Converted):
            incomplete = f" (incomplete: {r.shortfall})" if r.shortfall else ""
            table.add_row(Text(r.series_key), Text(r.suffix),
                          Text(f"{r.nifti.relative_to(out)}{incomplete}", style="yellow" if incomplete else ""))
        else:
            table.add_row(Text(r.series_key), Text("-"), Text(f"skipped: {r.reason}", style="yellow"))
    stdout.print(table)
