"""The ledger screen shows the scanned study, not every study ever run; `t` shows every row."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import SIZE
from tests.app.pilot_helpers import settle


async def test_scanned_study_first_then_every_study(make_app, demo_study: Path) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.ledger_screen
        assert {e.status for e in screen._shown} == {"scanned"} and len(screen._shown) == 2  # the fixed rows are
        assert len(screen.entries) == 7  # from other studies: kept, not shown
        assert "2/7 shown of this study (t: all)" in str(screen.query_one("#ledger-status").render())
        await pilot.press("t")
        await pilot.pause()
        assert len(screen._shown) == 7 and "of every study" in str(screen.query_one("#ledger-status").render())


async def test_without_a_scan_every_row_is_shown(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert len(app.ledger_screen._shown) == 5
