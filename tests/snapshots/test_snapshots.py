"""Snapshots of the key screens at 80x24 with fixed data, clock and fake passphrase.

Update only after looking at snapshot_report.html: `pytest tests/snapshots --snapshot-update`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual.pilot import Pilot

from tests.app import pilot_helpers
from tests.app.conftest import NOW, SIZE
from tui.core.events import StepFailed, StepFinished, StepNote, StepProgress, StepStarted
from tui.core.pipeline import STAGES


async def settle(pilot: Pilot[None]) -> None:
    """Let the ledger load (and a scan finish) before the picture is taken."""
    await pilot_helpers.settle(pilot.app, pilot)


def test_ledger(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=settle)


def test_ledger_filtered_and_selected(snap_compare, make_app) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("space", "slash", *"p000")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_participant_tags(snap_compare, make_app, demo_study: Path) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await open_participant(pilot)
        await pilot.press("tab", "i")
        await pilot.pause()

    assert snap_compare(make_app(demo_study), terminal_size=SIZE, run_before=before)


def test_batch_mid_run(snap_compare, make_app) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        batch = pilot.app.batch_screen
        batch.start(["p-1f2e3d4c5b", "p-a0b1c2d3e4", "p-99aa88bb77"], NOW)
        events = [StepStarted("p-1f2e3d4c5b", s) for s in STAGES[:3]]
        events += [StepFinished("p-1f2e3d4c5b", s, "ok") for s in STAGES[:2]]
        events += [StepProgress("p-1f2e3d4c5b", "deface", 3, 8, "steps"), StepStarted("p-a0b1c2d3e4", "deidentify")]
        events += [StepProgress("p-a0b1c2d3e4", "deidentify", 40, 209, "files")]
        events += [StepNote("p-a0b1c2d3e4", "deidentify", "series 1 quarantined: burned-in annotation", "warning")]
        events += [StepFailed("p-99aa88bb77", "deidentify", "no series left after the modality allow-list (MR)")]
        for event in events:
            batch.apply(event, NOW.replace(minute=31))
        pilot.app.action_show_batch()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_reveal_with_spelling(snap_compare, make_app) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("p", "right", "n")
        await pilot.pause()

    assert snap_compare(make_app(reveal_seconds=3600), terminal_size=SIZE, run_before=before)


def test_help(snap_compare, make_app) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_settings(snap_compare, make_app, settings) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("f2")
        await pilot.pause()

    fixed = replace(settings, destination="folder:/srv/mrishare/outbox")
    assert snap_compare(make_app(settings=fixed), terminal_size=SIZE, run_before=before)


async def open_participant(pilot: Pilot[None]) -> None:
    """From the ledger into the first scanned participant."""
    await settle(pilot)
    await pilot_helpers.go_to_row(pilot.app, pilot, lambda e: e.status == "scanned")
    await pilot.press("enter")
    await settle(pilot)


def test_participant_options_open(snap_compare, make_app, demo_study: Path) -> None:
    """At 80x24 the options panel leaves Keyword, Act, Value and After readable; an off option is an empty box."""
    async def before(pilot: Pilot[None]) -> None:
        await open_participant(pilot)
        await pilot.press("tab", "o")
        await settle(pilot)

    assert snap_compare(make_app(demo_study), terminal_size=SIZE, run_before=before)


def test_participant_tags_wide(snap_compare, make_app, demo_study: Path) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await open_participant(pilot)
        await pilot.press("tab", "o")
        await settle(pilot)

    assert snap_compare(make_app(demo_study), terminal_size=(120, 40), run_before=before)


def test_failure_view(snap_compare, make_app, ledger_path: Path) -> None:
    from tui.core.delivery.ledger import Ledger

    with Ledger.open(ledger_path) as ledger:
        row = next(r for r in ledger.rows() if r.status == "failed")
        ledger.upsert(replace(row, last_action="pack failed", note=(
            "leak gate: 3 identifying value(s) found (PatientName in bytes @2002, PatientName in bytes @2002, "
            "PatientID in name sub-x/anat); nothing released")))
        ledger.save()

    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot_helpers.go_to_row(pilot.app, pilot, lambda e: e.status == "failed")
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_batch_log_full_screen(snap_compare, make_app) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        batch = pilot.app.batch_screen
        batch.start(["p-1f2e3d4c5b"], NOW)
        for event in (StepStarted("p-1f2e3d4c5b", "deidentify"),
                      StepNote("p-1f2e3d4c5b", "deidentify", "quarantined 3 files: BurnedInAnnotation is YES (text "
                               "in the pixels) (first: 0001.dcm)", "warning"),
                      StepFailed("p-1f2e3d4c5b", "deidentify", "nothing released (3 quarantined, 0 skipped)")):
            batch.apply(event, NOW.replace(minute=31))
        pilot.app.action_show_batch()
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_confirm_revoke_wraps_on_words(snap_compare, make_app) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("x")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_extend_asks_for_days(snap_compare, make_app) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)
