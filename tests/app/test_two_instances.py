"""Two instances: the app locks the ledger only while writing, and reads it again when another mrishare
changed it; a write while someone else holds the lock is explained, not lost."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.app.conftest import SIZE
from tests.app.pilot_helpers import settle
from tui.app.app import LEDGER_POLL_SECONDS
from tui.cli import main
from tui.core.delivery.ledger import Ledger


async def test_cli_works_while_the_app_is_open_and_the_app_sees_its_change(make_app, ledger_path: Path,
                                                                          capsys) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert [e.participant for e in app.ledger_screen.entries][:1] == ["P0001"]
        # `mrishare mail` used to refuse here: the app held the lock for its whole lifetime
        assert main(["mail", "--ledger", str(ledger_path), "s0000000001", "--language", "en"]) == 0
        with Ledger.open(ledger_path) as ledger:  # another mrishare writes a change
            row = ledger.get("s0000000002")
            ledger.upsert(replace(row, last_action="changed elsewhere"))
            ledger.save()
        await pilot.pause(LEDGER_POLL_SECONDS + 0.5)
        await settle(app, pilot)
        changed = next(e for e in app.ledger_screen.entries if e.id == "s0000000002")
        assert changed.last_action == "changed elsewhere"


async def test_a_write_during_someone_elses_write_is_explained_and_kept(make_app, ledger_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        with Ledger.open(ledger_path):  # someone else is writing right now
            app.update_row("s0000000001", note="told by phone")
            await settle(app, pilot)
            assert app._pending, "the change is kept, not dropped"
            notes = [n.message for n in app._notifications]
            assert any("lock" in n or "in use" in n or "running" in n for n in notes), notes
        app.update_row("s0000000003", note="second change")
        await settle(app, pilot)
        assert not app._pending
    with Ledger.open(ledger_path) as ledger:
        assert ledger.get("s0000000001").note == "told by phone" and ledger.get("s0000000003").note == "second change"


async def test_a_stale_lock_taken_over_is_shown_as_the_cli_says_it(make_app, ledger_path: Path) -> None:
    import json
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = ledger_path.with_name(f".{ledger_path.name}.mrishare-lock")
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": 0}))  # a killed run's
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        notes = [n.message for n in app._notifications]
        assert f"took over the lock of mrishare pid {dead.pid}, which is no longer running" in notes, notes
        assert [e.participant for e in app.ledger_screen.entries][:1] == ["P0001"]
    assert not lock.exists()
