"""`mrishare jobs`: the lab side of cloud processing (issue 14): refresh the Job column, list, fetch results."""

from __future__ import annotations

import argparse
from pathlib import Path

from tui.cli.batch import default_ledger, open_ledger
from tui.cli.output import stdout

LOG_SHOWN = 10
"""Log lines of a failed job printed here (result.json keeps the last 50)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `jobs`."""
    jobs = subparsers.add_parser("jobs", help="processing jobs: ask the server, update the ledger, fetch results")
    jobs.add_argument("--ledger", type=Path, default=None, help="share list (default: settings, else the data folder)")
    jobs.add_argument("--credentials", type=Path, default=None, help="credentials.json (Nextcloud)")
    jobs.add_argument("--fetch", action="store_true",
                      help="download finished jobs' results, each file checked against result.json")
    jobs.add_argument("--results", type=Path, default=None,
                      help="where fetched results go, as <participant>/<job-id>/ (default: data folder/results)")
    jobs.set_defaults(handler=list_jobs)


def list_jobs(args: argparse.Namespace) -> int:
    """One line per processing row; a failed job's reason and last log lines. Exit 1 if any job failed."""
    from tui.core.config import data_dir
    from tui.core.credentials import load_credentials
    from tui.core.delivery.processing import track_jobs

    results = (args.results or data_dir() / "results") if args.fetch else None
    with open_ledger(args.ledger or default_ledger()) as ledger:
        rows = [r for r in ledger.rows() if r.destination.startswith("processing:")]
        found = track_jobs(ledger, load_credentials(args.credentials), results) if rows else []
    if not found:
        stdout.print("no processing jobs in the ledger", markup=False)
    for status in found:
        stdout.print(f"{status.row.id}  {status.row.participant}  {status.row.destination.removeprefix('processing:')}"
                     f"  {status.state}" + (f"  {status.location}" if status.location else ""), markup=False,
                     soft_wrap=True)
        if status.result is not None and status.state == "failed":
            stdout.print(f"    {status.result.reason}", markup=False, soft_wrap=True)
            for line in status.result.log_tail[-LOG_SHOWN:]:
                stdout.print(f"    | {line}", markup=False, soft_wrap=True)
    return 1 if any(s.state == "failed" for s in found) else 0
