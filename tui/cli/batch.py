"""`mrishare batch STUDY_DIR` and `mrishare share PARTICIPANT_DIR`: the whole pipeline, headless."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from tui.cli.output import run_with_progress, stdout, stop_on_ctrl_c
from tui.core import annex_e
from tui.core.config import data_dir
from tui.core.errors import Cancelled, MrishareError
from tui.core.presets import DEFACE_MODES, ENCRYPTIONS, ENGINES, PRESETS

if TYPE_CHECKING:
    from tui.core.run_settings import PipelineSettings


def default_ledger() -> Path:
    """Where the ledger lives unless `--ledger` says otherwise (settings.json, else the data folder)."""
    from tui.core.settings import load_settings

    return load_settings().ledger or data_dir() / "share-list.xlsx"


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by `batch`, `share` and `demo`."""
    p.add_argument("--dest", default=None, metavar="folder:PATH|nextcloud",
                   help="where packages go (default: the credentials file's destination, else a local folder)")
    p.add_argument("--ledger", type=Path, default=None, help="share list (default: settings, else the data folder)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default participant-copy")
    p.add_argument("--option", action="append", default=None, choices=annex_e.OPTIONS, metavar="NAME",
                   help="Annex E option (repeatable); replaces the preset's options")
    p.add_argument("--deface", choices=DEFACE_MODES, default=None, help="override the preset")
    p.add_argument("--pseudonym", default=None, help="keyed (default) | adit:SEED | csv:FILE | fixed:VALUE")
    p.add_argument("--modalities", default=None, help="comma-separated allow-list (default MR)")
    p.add_argument("--engine", choices=ENGINES, default=None, help=f"default {ENGINES[0]}")
    p.add_argument("--encryption", choices=ENCRYPTIONS, default=None, help="default aes")
    p.add_argument("--expiry-days", type=int, default=None, help="full days the link works (default 14)")
    p.add_argument("--credentials", type=Path, default=None, help="credentials.json (Nextcloud)")
    p.add_argument("--workers", type=int, default=2, help="participants processed at once")
    p.add_argument("--keep-work", action="store_true", help="keep de-identified DICOM and unpacked packages")


BATCH_HELP = "run the pipeline for every participant under a study folder"


def _batch_arguments(batch: argparse.ArgumentParser) -> None:
    batch.add_argument("folder", type=Path, metavar="STUDY_DIR")
    add_pipeline_arguments(batch)
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
    share.set_defaults(handler=run, as_participant=True)


def settings_from(args: argparse.Namespace) -> PipelineSettings:
    """Pipeline settings: command-line flags over `settings.json` over the credentials file over defaults."""
    from tui.core.settings import load_settings

    return load_settings().with_flags(args).pipeline_settings(args.credentials, keep_work=args.keep_work)


def run(args: argparse.Namespace) -> int:
    """Scan, run every participant, print one line each; exit 1 if any failed."""
    from tui.core.dicom_scan import scan_events
    from tui.core.ledger import Ledger
    from tui.core.pipeline import run_batch

    settings = settings_from(args)
    scanned = run_with_progress(scan_events(args.folder, as_participant=args.as_participant))
    if not scanned.participants:
        raise MrishareError("no DICOM participant found", args.folder)
    ledger_path = args.ledger or default_ledger()
    with Ledger.open(ledger_path) as ledger, stop_on_ctrl_c() as cancel:
        result = run_with_progress(run_batch(scanned.participants, settings, ledger, cancel, workers=args.workers))
    table = Table("participant", "row", "status", "reason", title=f"ledger: {ledger_path}")
    for outcome in result.outcomes:
        table.add_row(Text(outcome.key), Text(outcome.row_id), Text(outcome.status), Text(outcome.reason))
    stdout.print(table)
    ledger_flag = f" --ledger {ledger_path}" if args.ledger else ""
    stdout.print(Text(f"Passphrases are in the ledger only; show one with `mrishare shares{ledger_flag} reveal ROW`,"
                      f" the e-mail text with `mrishare mail{ledger_flag} ROW`."))
    if result.cancelled:
        raise Cancelled(f"stopped by Ctrl-C: {len(result.cancelled)} of {len(result.outcomes)} participant(s) "
                        "cancelled; run the same command again to resume")
    return 1 if result.failed else 0
