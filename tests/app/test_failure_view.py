"""Failures that can be read: Enter on a failed row shows the whole reason, grouped findings and the next step;
the batch log opens over the whole screen."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tests.app.conftest import SIZE
from tests.app.pilot_helpers import go_to_row, settle
from tui.app.screens.failure import FailureScreen, findings, next_step
from tui.core.delivery.ledger import Ledger
from tui.core.events import StepFailed, StepNote, StepStarted

LEAK = ("leak gate: 3 identifying value(s) found (PatientName in bytes @2002, PatientName in bytes @2002, "
        "PatientID in name sub-x/anat); nothing released")


def test_findings_group_identical_lines_and_drop_file_names() -> None:
    notes = [f"quarantined IM{n:04d}.dcm: burned-in annotation" for n in range(35)] + ["face check failed on T1w"]
    assert findings(LEAK, notes) == ["quarantined: burned-in annotation  ×35", "PatientName in bytes @2002  ×2",
                                     "PatientID in name sub-x/anat", "face check failed on T1w"]


def test_next_step_follows_the_reason_then_the_stage() -> None:
    assert "press i" in next_step("pack", LEAK)
    assert "Settings (f2" in next_step("upload", "login refused: check username and app password")
    assert "make the link" in next_step("share", "HTTP 503")
    gap = "every series is incomplete; nothing shared (series 3: gap at slice 18 of 35: 1 slice missing)"
    assert "then A on a series flagged G" in next_step("deidentify", gap)
    shortfall = "every series is incomplete; nothing shared (series 3: 34 of 35 slices converted)"
    assert "--allow-incomplete" in next_step("convert", shortfall)
    assert "run again (r)" in next_step("deface", "something new")
    assert "P to choose the patient" in next_step("prepare", "2 patients in one participant folder (35 + 20 files)")


async def test_enter_on_a_failed_row_shows_the_whole_reason(make_app, ledger_path: Path) -> None:
    with Ledger.open(ledger_path) as ledger:
        row = next(r for r in ledger.rows() if r.status == "failed")
        ledger.upsert(type(row)(**{**row.__dict__, "note": LEAK, "last_action": "pack failed"}))
        ledger.save()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "failed")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, FailureScreen)
        assert str(app.screen.query_one("#failure-reason").render()) == LEAK  # whole, not cut at 80 columns
        assert "at pack" in str(app.screen.query_one("#failure-title").render())
        assert "PatientName in bytes @2002  ×2" in str(app.screen.query_one("#failure-findings").render())
        assert "press i" in str(app.screen.query_one("#failure-next").render())
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.ledger_screen


async def test_log_opens_full_screen_and_wraps(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        batch = app.batch_screen
        batch.start(["p-1"], datetime(2026, 11, 21, 9, 30))
        app.action_show_batch()
        await pilot.pause()
        long = "quarantined IM0001.dcm: " + "a long reason that does not fit in eighty columns " * 2
        for event in (StepStarted("p-1", "deidentify"), StepNote("p-1", "deidentify", long, "warning"),
                      StepFailed("p-1", "deidentify", "nothing released (1 quarantined, 0 skipped)")):
            batch.apply(event, datetime(2026, 11, 21, 9, 31))
        await pilot.press("l")
        await pilot.pause()
        log = batch.query_one("#batch-log")
        assert log.region.height >= SIZE[1] - 3 and not batch.query_one("#batch-table").display
        text = "".join(strip.text for strip in log.lines)
        assert "eighty columns a long reason" in text.replace("\n", "")  # wrapped, not cut
        assert batch.warnings["p-1"] == [long]
