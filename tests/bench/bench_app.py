"""App responsiveness: first frame, 10,000-row ledger, and the longest UI stall during a real batch.

Run: python tests/bench/bench_app.py [--rows 10000] [--skip-batch]
The UI stall is the event loop's lag: a 20 ms timer records how late each tick fires.
There is no reference tool for a TUI; targets come from issue 6 (first frame < 1 s, stall < 100 ms).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TICK = 0.02


class LagMeter:
    """Records how late a repeating timer fires on the app's event loop."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._last = 0.0
        self.context = ""
        self.worst_context = ""

    def start(self, app: object) -> None:
        self._last = time.perf_counter()
        app.set_interval(TICK, self._tick)  # type: ignore[attr-defined]

    def reset(self) -> None:
        self.worst = 0.0
        self._last = time.perf_counter()

    def _tick(self) -> None:
        now = time.perf_counter()
        if now - self._last - TICK > self.worst:
            self.worst = now - self._last - TICK
            self.worst_context = self.context
        self._last = now


def first_frame_tmux(ledger: Path) -> float | None:
    """Seconds from starting `python -m tui app` in tmux (80x24) until its ledger screen is drawn."""
    if shutil.which("tmux") is None:
        return None
    session = f"bench-{os.getpid()}"
    command = f"{sys.executable} -m tui app --ledger {ledger}"
    start = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command], check=True)
    try:
        while time.perf_counter() - start < 30:
            pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
            if "Participant" in pane and "Quit" in pane:
                return time.perf_counter() - start
            time.sleep(0.01)
        return None
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


async def first_frame_in_process(ledger: Path) -> tuple[float, float]:
    """Seconds to import the app, and from starting it until its ledger screen is composed (headless)."""
    start = time.perf_counter()
    from tui.app.app import TuiApp
    from tui.app.services import Services

    imported = time.perf_counter() - start
    app = TuiApp(Services(ledger_path=ledger))
    start = time.perf_counter()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        return imported, time.perf_counter() - start


def write_ledger(path: Path, rows: int) -> float:
    """A ledger with `rows` shared rows; returns seconds taken."""
    from tui.core.delivery.ledger import Ledger, LedgerRow

    start = time.perf_counter()
    with Ledger.open(path) as ledger:
        for n in range(rows):
            ledger.upsert(LedgerRow(id=f"s{n:010x}", participant=f"P{n:05d}", series=3, size=50_000_000 + n,
                                    link=f"https://cloud.example.org/s/x{n}", passphrase="fake-words-only",
                                    expires=date(2027, 1, 1), status="shared", created=datetime(2026, 1, 1),
                                    last_action="shared"))
        ledger.save()
    return time.perf_counter() - start


async def ledger_open(path: Path, rows: int) -> tuple[float, float]:
    """Seconds until all rows are in the table, and the worst UI stall meanwhile."""
    from tui.app.app import TuiApp
    from tui.app.screens.ledger import LedgerTable
    from tui.app.services import Services

    app = TuiApp(Services(ledger_path=path))
    meter = LagMeter()
    start = time.perf_counter()
    async with app.run_test(size=(80, 24)) as pilot:
        meter.start(app)  # from the first frame on: loading must not freeze what is already drawn
        table = app.ledger_screen.query_one(LedgerTable)
        while table.row_count < rows and time.perf_counter() - start < 120:
            await pilot.pause(0.01)
        took = time.perf_counter() - start
        await pilot.pause(0.1)
    return took, meter.worst


async def batch_stall(study: Path, work: Path) -> tuple[float, float, int]:
    """Run the real pipeline for one demo participant; seconds, worst UI stall, events seen."""
    from tui.app.app import TuiApp
    from tui.app.messages import BatchEventArrived
    from tui.app.services import Services
    from tui.core.pipeline import PipelineSettings

    (work / "outbox").mkdir(parents=True, exist_ok=True)
    settings = PipelineSettings(destination=f"folder:{work / 'outbox'}", work_dir=work / "work")
    seen = []
    app = TuiApp(Services(ledger_path=work / "share-list.xlsx", settings=settings), study_dir=study)
    meter = LagMeter()

    def hook(message: object) -> None:
        if isinstance(message, BatchEventArrived):
            seen.append(message)
            event = message.event
            meter.context = f"after {type(event).__name__} {event.step}"

    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        entry = next(e for e in app.ledger_screen.entries if e.status == "scanned")
        meter.start(app)
        start = time.perf_counter()
        app.start_batch([entry.scanned])
        await pilot.pause()
        meter.reset()
        await app.workers.wait_for_complete()
        took = time.perf_counter() - start
        await pilot.pause()
        state = app.batch_screen.lines[entry.participant].state
    print(f"  batch state: {state}; worst stall came {meter.worst_context}")
    return took, meter.worst, len(seen)


def main() -> None:
    import asyncio

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--skip-batch", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["MRISHARE_HOME"] = str(root / "home")
        small = root / "small.xlsx"
        write_ledger(small, 5)
        imported, drawn = asyncio.run(first_frame_in_process(small))
        print(f"app import {imported:.2f} s; start to first frame (headless) {drawn:.2f} s")
        frame = first_frame_tmux(small)
        print(f"first frame (python -m tui app in tmux 80x24): {frame:.2f} s" if frame else "first frame: tmux missing")

        big = root / "big.xlsx"
        wrote = write_ledger(big, args.rows)
        print(f"wrote a {args.rows}-row ledger in {wrote:.1f} s (core, not the UI)")
        took, stall = asyncio.run(ledger_open(big, args.rows))
        print(f"{args.rows}-row ledger: all rows in the table after {took:.2f} s; worst UI stall {stall * 1000:.0f} ms")

        if not args.skip_batch:
            from tui.core.demo import make_demo_study
            from tui.core.events import drain

            study = root / "study"
            drain(make_demo_study(study, participants=1))
            took, stall, events = asyncio.run(batch_stall(study, root / "run"))
            print(f"batch of 1 demo participant: {took:.1f} s, {events} events; worst UI stall {stall * 1000:.0f} ms")


if __name__ == "__main__":
    main()
