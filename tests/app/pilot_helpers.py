"""Helpers shared by the Pilot tests."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from tui.app.app import TuiApp
from tui.app.screens.ledger import LedgerTable


async def settle(app: TuiApp, pilot: Pilot[None]) -> None:
    """Let every worker finish and the UI catch up."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def go_to_row(app: TuiApp, pilot: Pilot[None], predicate: Callable[..., bool]) -> None:
    """Move the ledger cursor onto the first entry matching `predicate`."""
    index = next(i for i, e in enumerate(app.ledger_screen._shown) if predicate(e))
    app.ledger_screen.query_one(LedgerTable).move_cursor(index)
    await pilot.pause()
