"""`r` says where the run goes and with which preset before anything starts."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import SIZE
from tests.app.pilot_helpers import settle
from tui.app.screens.confirm import ConfirmScreen
from tui.app.screens.ledger import LedgerTable


async def test_run_asks_first_with_destination_and_preset(make_app, demo_study: Path, settings) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        index = next(i for i, e in enumerate(app.ledger_screen._shown) if e.status == "scanned")
        app.ledger_screen.query_one(LedgerTable).move_cursor(index)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        text = str(app.screen.query_one("#confirm-text").render())
        assert settings.destination in text and f"Preset: {settings.preset}" in text
        assert "rtn_long_full_dates" in text and "14 full days" in text
        assert "Share 1 participant?" in str(app.screen.query_one("#confirm-title").render())
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is app.ledger_screen and not app.batch_running and not app.batch_screen.lines
