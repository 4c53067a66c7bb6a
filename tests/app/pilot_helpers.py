"""Helpers shared by the Pilot tests."""

from __future__ import annotations

from textual.pilot import Pilot

from tui.app.app import TuiApp


async def settle(app: TuiApp, pilot: Pilot[None]) -> None:
    """Let every worker finish and the UI catch up."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
