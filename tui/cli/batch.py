"""`mrishare batch STUDY_DIR` and `mrishare share PARTICIPANT_DIR`: the whole pipeline, headless."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from tui.cli.output import run_with_progress, stderr, stdout, stop_on_ctrl_c
from tui.core.config import data_dir
from tui.core.dicom import annex_e
from tui.core.errors import Cancelled, MrishareError
from tui.core.presets import DEFACE_MODES, ENCRYPTIONS, ENGINES, PRESETS

if TYPE_CHECKING:
    from tui.core.delivery.ledger import Ledger
    from tui.core.run_settings import PipelineSettings


def default_ledger() -> Path:
    """Where the ledger lives unless `--ledger` says otherwise (settings.json, else the data folder)."""
    from tui.core.settings import load_settings

    return load_settings().ledger or data_dir() / "share-list.xlsx"


def open_ledger(path: Path) -> Ledger:
    """Open (lock) the ledger and tell the user about a stale lock that was taken over."""
    from tui.core.delivery.ledger import Ledger

    ledger = Ledger.open(path)
    for note in ledger.notes:
        stderr.print(f"mrishare: {note}", markup=False)
    return ledger


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by `batch`, `share` and `demo`."""
    p.add_argument("--dest", default=None, metavar="folder:PATH|nextcloud|processing:PIPELINE",
                   help="where packages go (default: the credentials file's destination, else a local folder)")
    p.add_argument("--ledger", type=Path, default=None, help="share list (default: settings, else the data folder)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default participant-copy")
    p.add_argument("--option", action="append", default=None, choices=annex_e.OPTIONS, metavar="NAME",
                   help="Annex E option (repeatable); replaces the preset's options")
    p.add_argument("--deface", choices=DEFACE_MODES, default=None, help="override the preset")
    p.add_argument("--pseudonym", default=None,
                   help="keyed (default) | adit:SEED | adit-upload:DEPARTMENT | csv:FILE | fixed:VALUE")
    p.add_argument("--modalities", default=None, help="comma-separated allow-list (default MR)")
    p.add_argument("--engine", choices=ENGINES, default=None, help=f"default {ENGINES[0]}")
    p.add_argument("--encryption", choices=ENCRYPTIONS, default=None, help="default aes")
    p.add_argument("--expiry-days", type=int, default=None, help="full days the link works (default 14)")
    p.add_argument("--credentials", type=Path, default=None, help="credentials.json (Nextcloud)")
    p.add_argument("--workers", type=int, default=2, help="participants processed at once")
    p.add_argument("--keep-work", action="store_true", help="keep de-identified DICOM and unpacked packages")
    p.add_argument("--keep-dicom", action="store_true",
                   help="put the de-identified DICOM into the package beside the NIfTI (faces removed from its "
                        "pixels unless --deface off; the leak gate searches it too)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="release a series with missing slices or unreadable files, the gaps recorded in the "
                        "package README and the audit (default: withhold it; the run ends 'partly shared')")
    p.add_argument("--patient-index", type=int, default=None, metavar="N",
                   help="a folder holding several patients: share patient N (1 = most files) and quarantine the "
                        "others (default: such a folder is an error)")
    add_release_argument(p)


def add_release_argument(p: argparse.ArgumentParser) -> None:
    """The leak gate's per-value override (shared with `deid`)."""
    p.add_argument("--release-value", action="append", default=[], metavar="KEYWORD=VALUE",
                   help="release one value the leak gate blocks that you judge not identifying, e.g. "
                        "InstitutionName=ACME (repeatable; recorded in the audit log)")


BATCH_HELP = "run the pipeline for every participant under a study folder"


def _list_argument(p: argparse.ArgumentParser) -> None:
    from tui.cli.deid import LIST_HELP

    p.add_argument("--pseudonym-list", type=Path, default=None, metavar="FILE", help=LIST_HELP)


def _batch_arguments(batch: argparse.ArgumentParser) -> None:
    batch.add_argument("folder", type=Path, metavar="STUDY_DIR")
    add_pipeline_arguments(batch)
    _list_argument(batch)
    batch.set_defaults(handler=run, as_participant=False)


def build_batch_parser() -> argparse.ArgumentParser:
    """A stand-alone parser for `mrishare batch` (the demo builds its run with it)."""
    parser = argparse.ArgumentParser(prog="mrishare batch", description=BATCH_HELP)
    _batch_arguments(parser)
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `batch` and `share` subcommands."""
    _batch_arguments(subparsers.add_parser("batch", help=BATCH_HELP))
    share = subparsers.add_parser("share", help="run the pipeline for one participant's folder")
    share.add_argument("folder", type=Path, metavar="PARTICIPANT_DIR")
    add_pipeline_arguments(share)
    _list_argument(share)
    share.set_defaults(handler=run, as_participant=True)


def no_participant_reason(skipped: list) -> str:
    """'no DICOM participant found', with why the files that look like DICOM could not be used."""
    lost = [s for s in skipped if s.lost]
    if not lost:
        return "no DICOM participant found" + (f" ({len(skipped)} files, none DICOM)" if skipped else "")
    shown = "; ".join(f"{s.path.name}: {s.reason}" for s in lost[:3]) + (" ..." if len(lost) > 3 else "")
    return f"no DICOM participant found: {len(lost)} file(s) or folder(s) could not be read ({shown})"


def settings_from(args: argparse.Namespace) -> PipelineSettings:
    """Pipeline settings: command-line flags over `settings.json` over the credentials file over defaults."""
    from dataclasses import replace

    from tui.core.deid.leakcheck import parse_releases
    from tui.core.settings import load_settings

    parse_releases(args.release_value)  # a malformed override stops before any work
    settings = load_settings().with_flags(args).pipeline_settings(args.credentials, keep_work=args.keep_work)
    return replace(settings, release_values=tuple(args.release_value), allow_incomplete=args.allow_incomplete,
                   patient_index=args.patient_index, keep_dicom=args.keep_dicom)


def _say_if_outbox(settings: PipelineSettings, credentials: Path | None) -> None:
    """Tell the user when packages go to the local outbox because there is no credentials file."""
    from tui.core.credentials import credentials_path
    from tui.core.settings import default_outbox

    if settings.credentials is None and settings.destination == default_outbox():
        stdout.print(Text(f"No credentials file at {credentials_path(credentials)}: packages go to the local folder "
                          f"{settings.destination.removeprefix('folder:')} (no link is made on Nextcloud)."))


def run(args: argparse.Namespace) -> int:
    """Scan, run every participant, print one line each; exit 1 if any failed or was only partly shared."""
    from tui.core.deid.pseudonym_list import check_list_path, entries_for, released_folders, write_pseudonym_list
    from tui.core.dicom.scan import scan_events
    from tui.core.pipeline import run_batch

    settings = settings_from(args)
    list_path = getattr(args, "pseudonym_list", None)
    if list_path is not None:
        check_list_path(list_path, released_folders(settings), settings.pseudonym)
    _say_if_outbox(settings, args.credentials)
    scanned = run_with_progress(scan_events(args.folder, as_participant=args.as_participant))
    if not scanned.participants:
        raise MrishareError(no_participant_reason(scanned.skipped), args.folder)
    ledger_path = args.ledger or default_ledger()
    with open_ledger(ledger_path) as ledger, stop_on_ctrl_c() as cancel:
        result = run_with_progress(run_batch(scanned.participants, settings, ledger, cancel, workers=args.workers))
    if list_path is not None:
        failures = {o.key: o.reason or o.status for o in result.failed}
        written = write_pseudonym_list(list_path, entries_for(scanned.participants, settings.pseudonym, failures),
                                       released_folders(settings), settings.pseudonym)
        stdout.print(Text(f"pseudonym list: {written} ({len(scanned.participants)} participants, "
                          f"{len(failures)} marked failed; mode 0600, keep it local)"))
    table = Table("participant", "row", "status", "reason", title=f"ledger: {ledger_path}")
    for outcome in result.outcomes:
        table.add_row(Text(outcome.key), Text(outcome.row_id), Text(outcome.status), Text(outcome.reason))
    stdout.print(table)
    ledger_flag = f" --ledger {ledger_path}" if args.ledger else ""
    if settings.destination.startswith("processing:"):
        stdout.print(Text(f"Jobs are queued; follow them and fetch results with `mrishare jobs{ledger_flag} --fetch`."))
    else:
        stdout.print(Text(f"Passphrases are in the ledger only; show one with `mrishare shares{ledger_flag} reveal "
                          f"ROW`, the e-mail text with `mrishare mail{ledger_flag} ROW`."))
    if result.cancelled:
        raise Cancelled(f"stopped by Ctrl-C: {len(result.cancelled)} of {len(result.outcomes)} participant(s) "
                        "cancelled; run the same command again to resume")
    return 1 if result.failed else 0
