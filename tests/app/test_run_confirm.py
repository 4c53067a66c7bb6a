"""`r` says where the run goes and with which preset before anything starts."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import SIZE
from tests.app.pilot_helpers import go_to_row, settle
from tui.app.screens.confirm import ConfirmScreen


async def test_run_asks_first_with_destination_and_preset(make_app, demo_study: Path, settings) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
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


async def test_extend_asks_for_days_and_shows_the_last_day(make_app) -> None:
    from tui.app.messages import RowActionDone
    from tui.app.screens.extend import ExtendScreen

    done: list[RowActionDone] = []
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=lambda m: done.append(m) if isinstance(m, RowActionDone)
                            else None) as pilot:
        await settle(app, pilot)
        await pilot.press("e")  # on P0001, shared until 2026-11-30
        await pilot.pause()
        assert isinstance(app.screen, ExtendScreen)
        assert "now until 2026-11-30" in str(app.screen.query_one("#confirm-text").render())
        assert "works until 2026-12-05 inclusive" in str(app.screen.query_one("#extend-until").render())  # 14 d
        await pilot.press("backspace", "backspace", "3", "0")
        await pilot.pause()
        assert "works until 2026-12-21 inclusive" in str(app.screen.query_one("#extend-until").render())
        await pilot.press("backspace", "backspace", "x")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExtendScreen)  # not a number of days: nothing happens
        await pilot.press("backspace", "7", "enter")
        await settle(app, pilot)
        assert app.screen is app.ledger_screen and [m.verb for m in done if m.verb == "extend"] == ["extend"]
