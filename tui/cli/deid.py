"""`mrishare deid SRC OUT` and `mrishare deid-csv IN OUT`: de-identify DICOM folders and study tables.

Nothing identifying is printed: participants appear by their key, files by their quarantine
copy's number, reasons and leak kinds without values.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from tui.cli.batch import add_release_argument
from tui.cli.output import run_with_progress, stderr, stdout
from tui.core.deid.pseudonym_list import check_list_path
from tui.core.dicom import annex_e
from tui.core.errors import MrishareError
from tui.core.presets import DEID_OPTIONS

if TYPE_CHECKING:
    from tui.core.deid.deidentify import DeidResult, DeidSettings


LIST_HELP = ("write PatientID,Pseudonym per participant to FILE (mode 0600, local only: never inside OUT, "
             "a package or a destination); failed participants are marked")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `deid` and `deid-csv` subcommands."""
    p = subparsers.add_parser("deid", help="de-identify DICOM (PS3.15 Annex E) into OUT/<pseudonym>/...")
    p.add_argument("source", type=Path, metavar="SRC", help="a study folder or one participant's folder")
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (only releasable files go here)")
    p.add_argument("--option", action="append", default=None, metavar="NAME",
                   help=f"Annex E option, repeatable: {', '.join(annex_e.OPTIONS)}; 'none' for the Basic "
                        f"Profile alone (default: {', '.join(sorted(DEID_OPTIONS))})")
    p.add_argument("--pseudonym", default="keyed", metavar="SCHEME",
                   help="keyed (default), adit:SEED, adit-upload:DEPARTMENT, csv:FILE or fixed:VALUE")
    p.add_argument("--modalities", default="MR", help="allowed modalities, comma separated (default MR)")
    p.add_argument("--pseudonym-list", type=Path, default=None, metavar="FILE", help=LIST_HELP)
    p.add_argument("--participant", action="store_true", help="treat SRC as one participant's folder")
    p.add_argument("--keep-originals-in-audit", action="store_true",
                   help="store original values and source paths in the local audit file (mode 0600)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    add_release_argument(p)
    p.set_defaults(handler=run)

    c = subparsers.add_parser("deid-csv", help="pseudonymize a study-variables CSV like the DICOM data")
    c.add_argument("source", type=Path, metavar="IN")
    c.add_argument("out", type=Path, metavar="OUT")
    c.add_argument("--id-column", required=True, help="column holding the PatientID")
    c.add_argument("--date-columns", default="", help="comma-separated columns to shift like DICOM dates")
    c.add_argument("--pseudonym", default="keyed", metavar="SCHEME", help="as for deid")
    c.add_argument("--delimiter", default=None, help="field delimiter (default: detected)")
    c.set_defaults(handler=run_csv)


def options_from(values: list[str] | None) -> frozenset[str]:
    """The --option values as a validated set ('none' = Basic Profile only)."""
    if values is None:
        return DEID_OPTIONS
    names = {v.strip() for value in values for v in value.split(",") if v.strip()}
    return annex_e.validate_options(names - {"none"})


def run(args: argparse.Namespace) -> int:
    """Scan SRC, de-identify each participant, print a summary; exit 1 if anything was held back."""
    from tui.core.deid.deidentify import DeidSettings, deidentify_participant, quiet_pydicom
    from tui.core.dicom.scan import scan_events
    from tui.core.settings import load_settings

    settings = DeidSettings(
        options=options_from(args.option), pseudonym=args.pseudonym, protocol_pages=load_settings().protocol_pages,
        modalities=frozenset(m.strip().upper() for m in args.modalities.split(",") if m.strip()),
        keep_originals_in_audit=args.keep_originals_in_audit, workers=args.workers,
        release_values=tuple(args.release_value),
    )
    if args.out.resolve() == args.source.resolve() or args.source.resolve() in args.out.resolve().parents:
        raise MrishareError("OUT must not be inside SRC", args.out)
    if args.pseudonym_list is not None:
        check_list_path(args.pseudonym_list, [args.out], args.pseudonym)
    with quiet_pydicom():  # pydicom warnings quote values: never on the terminal
        found = run_with_progress(scan_events(args.source, workers=args.workers, as_participant=args.participant))
    results: list[tuple[str, DeidResult | str]] = []
    for participant in found.participants:
        try:
            results.append((participant.key, run_with_progress(
                deidentify_participant(participant, args.out, settings))))
        except MrishareError as error:
            results.append((participant.key, error.reason))
    print_summary(results, len(found.skipped), settings)
    if args.pseudonym_list is not None:
        save_list(args.pseudonym_list, found.participants, results, settings.pseudonym, args.out)
    failed = any(isinstance(r, str) or r.leaks for _, r in results)
    return 1 if failed or not results else 0


def save_list(path: Path, participants: list, results: list[tuple[str, DeidResult | str]], scheme: str,
              out: Path) -> None:
    """Write the pseudonym list of this run; participants that failed or released nothing are marked."""
    from tui.core.deid.pseudonym_list import entries_for, write_pseudonym_list

    failures = {key: r if isinstance(r, str) else "nothing released" for key, r in results
                if isinstance(r, str) or not r.released}
    used = {key: r.pseudonym for key, r in results if not isinstance(r, str)}
    written = write_pseudonym_list(path, entries_for(participants, scheme, failures, used), [out], scheme)
    stdout.print(f"pseudonym list: {written} ({len(participants)} participants, {len(failures)} marked failed; "
                 "mode 0600, keep it local)", markup=False)


def print_summary(results: list[tuple[str, DeidResult | str]], unused: int, settings: DeidSettings) -> None:
    """A table per participant, then reasons for quarantined and skipped files (no values)."""
    table = Table(title="de-identification", title_justify="left")
    for column in ("participant", "pseudonym", "released", "quarantined", "skipped", "status"):
        table.add_column(column)
    reasons: Counter[str] = Counter()
    audit = None
    for key, result in results:
        if isinstance(result, str):
            table.add_row(key, "-", "0", "-", "-", "failed")
            reasons[f"participant failed: {result}"] += 1
            continue
        audit = result.audit_path
        status = f"{len(result.leaks)} leak(s) held back" if result.leaks else "ok"
        table.add_row(key, result.pseudonym, str(len(result.released)), str(len(result.quarantined)),
                      str(len(result.skipped)), status)
        reasons.update(f"quarantined: {reason}" for _, reason in result.quarantined)
        reasons.update(f"skipped: {reason}" for _, reason in result.skipped)
    stdout.print(table)
    for reason, n in sorted(reasons.items()):
        stdout.print(f"  {n:4d}  {reason}", markup=False, highlight=False)
    if unused:
        stdout.print(f"  {unused} file(s) under SRC were not DICOM images (see `mrishare scan`)", markup=False)
    stdout.print(f"options: {', '.join(sorted(settings.options)) or 'Basic Profile only'}", markup=False)
    if audit is not None:
        stdout.print(f"audit: {audit}", markup=False)
    if settings.quarantine_dir is None:
        stderr.print("quarantined files are kept locally under the data folder (quarantine/<run>), never released",
                     markup=False)


def run_csv(args: argparse.Namespace) -> int:
    """Pseudonymize the ID column and shift the date columns of a CSV."""
    from tui.core.deid.study_csv import deidentify_csv

    dates = [c.strip() for c in args.date_columns.split(",") if c.strip()]
    rows = deidentify_csv(args.source, args.out, args.id_column, dates, args.pseudonym, args.delimiter)
    stdout.print(f"{rows} rows written to {args.out}", markup=False)
    return 0
