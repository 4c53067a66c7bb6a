"""`mrishare shares list|revoke|extend|cleanup|reveal` and `mrishare mail ROW`: the life of a share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from tui.cli.batch import default_ledger, open_ledger
from tui.cli.output import stdout
from tui.core.delivery.shares import row_or_error
from tui.core.errors import MrishareError

if TYPE_CHECKING:
    from tui.core.delivery.base import Destination
    from tui.core.delivery.ledger import Ledger, LedgerRow


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `shares ...` and `mail`."""
    shares = subparsers.add_parser("shares", help="list, revoke, extend, clean up shares in the ledger")
    shares.add_argument("--ledger", type=Path, default=None,
                        help="share list (default: settings, else the data folder)")
    shares.add_argument("--credentials", type=Path, default=None, help="credentials.json (Nextcloud)")
    verbs = shares.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="one line per ledger row")
    listing.add_argument("--check", action="store_true",
                         help="ask the server for every shared row's link first; gone links become expired/revoked")
    listing.set_defaults(handler=list_rows)
    revoke = verbs.add_parser("revoke", help="delete the link and the remote file")
    revoke.add_argument("row")
    revoke.set_defaults(handler=revoke_row)
    extend = verbs.add_parser("extend", help="give the participant more days")
    extend.add_argument("row")
    extend.add_argument("days", type=int)
    extend.set_defaults(handler=extend_row)
    cleanup = verbs.add_parser("cleanup", help="delete remote files whose links expired")
    cleanup.set_defaults(handler=cleanup_rows)
    again = verbs.add_parser("again",
                             help="revoke the link, delete the remote file and the row: the next run shares anew")
    again.add_argument("row")
    again.set_defaults(handler=share_again_row)
    reveal = verbs.add_parser("reveal", help="print a row's passphrase (terminal only; prefer the app's reveal screen)")
    reveal.add_argument("row")
    reveal.set_defaults(handler=reveal_row)
    mail = subparsers.add_parser("mail", help="print the e-mail text for a row (link and expiry, never the passphrase)")
    mail.add_argument("row")
    mail.add_argument("--ledger", type=Path, default=None)
    mail.add_argument("--language", choices=("de", "en", "de+en"), default="de+en")
    mail.set_defaults(handler=print_mail)


def _ledger(args: argparse.Namespace) -> Ledger:
    """The ledger from `--ledger`, else the default one."""
    return open_ledger(args.ledger or default_ledger())


def _destination(args: argparse.Namespace, row: LedgerRow) -> Destination:
    """The destination a row was delivered to."""
    from tui.core.delivery.shares import row_destination

    return row_destination(row, credentials_path=args.credentials)


def _destinations(args: argparse.Namespace, ledger: Ledger, wanted: Callable[[LedgerRow], bool]) -> list[Destination]:
    """One destination per distinct `destination` column among the rows `wanted` picks."""
    rows = {row.destination: row for row in ledger.rows() if wanted(row)}
    return [_destination(args, row) for row in rows.values()]


def list_rows(args: argparse.Namespace) -> int:
    """Print the ledger (never the passphrase); with --check, after asking the server about every link."""
    from tui.core.delivery import shares

    with _ledger(args) as ledger:
        if args.check:
            for destination in _destinations(args, ledger, lambda row: row.status == "shared"):
                changed = shares.check(ledger, destination)
                destination.close()
                for row in changed:
                    stdout.print(Text(f"{row.id}: {row.status} ({row.last_action})"))
        rows = ledger.rows()
    for r in rows:  # a block per row: the link on a line of its own, whole at any width (staff copy it)
        works = f"  works until {r.expires - timedelta(days=1)}" if r.expires else ""
        action = f"  · {r.last_action}" if r.last_action else ""
        stdout.print(Text(f"{r.id}  {r.participant}  {r.status}{works}{action}"), soft_wrap=True)
        if r.link:
            stdout.print(Text(f"  {r.link}"), soft_wrap=True)
    if not rows:
        stdout.print(Text("the share list is empty"))
    return 0


def revoke_row(args: argparse.Namespace) -> int:
    """Revoke one row's share and remote file."""
    from tui.core.delivery import shares

    with _ledger(args) as ledger:
        row = shares.revoke(ledger, args.row, _destination(args, row_or_error(ledger, args.row)))
    stdout.print(Text(f"{row.id}: revoked"))
    return 0


def extend_row(args: argparse.Namespace) -> int:
    """Extend one row's link."""
    from tui.core.delivery import shares

    with _ledger(args) as ledger:
        row = shares.extend(ledger, args.row, args.days, _destination(args, row_or_error(ledger, args.row)))
    stdout.print(Text(f"{row.id}: link now works until {row.expires - timedelta(days=1)} inclusive"
                      if row.expires else f"{row.id}: link without expiry"))
    return 0


def cleanup_rows(args: argparse.Namespace) -> int:
    """Remove expired remote files for every destination the ledger mentions."""
    from tui.core.delivery import shares

    with _ledger(args) as ledger:
        def has_file(row: LedgerRow) -> bool:
            return bool(row.remote_path) and row.status in ("shared", "expired", "revoked", "failed")

        removed = [path for destination in _destinations(args, ledger, has_file)
                   for path in shares.cleanup_expired(ledger, destination)]
    stdout.print(Text(f"removed {len(removed)} remote file(s) of expired, revoked or failed shares"))
    return 0


def share_again_row(args: argparse.Namespace) -> int:
    """Withdraw one row's share and delete the row, so the next run makes a new package."""
    from tui.core.delivery.shares import share_again

    with _ledger(args) as ledger:
        row = share_again(ledger, args.row, _destination(args, row_or_error(ledger, args.row)))
    stdout.print(Text(f"{row.id}: withdrawn and removed from the ledger; the next run shares again"))
    return 0


def reveal_row(args: argparse.Namespace) -> int:
    """Print a passphrase to an interactive terminal only, and record that it was revealed."""
    if not sys.stdout.isatty():
        raise MrishareError("refusing to print a passphrase into a pipe or file; run it in a terminal")
    with _ledger(args) as ledger:
        row = row_or_error(ledger, args.row)
        if not row.passphrase:
            raise MrishareError("this row has no passphrase yet", row.id)
        print(row.passphrase)
        ledger.upsert(replace(row, revealed=datetime.now().replace(microsecond=0)))
        ledger.save()
    return 0


def print_mail(args: argparse.Namespace) -> int:
    """Print subject and body of the e-mail for one row."""
    from tui.core.delivery.mailtext import mail_text

    with _ledger(args) as ledger:
        row = row_or_error(ledger, args.row)
    if not row.link:
        raise MrishareError(f"row has no link (status {row.status})", row.id)
    subject, body = mail_text(row, args.language)
    print(f"Subject: {subject}\n\n{body}")
    return 0
