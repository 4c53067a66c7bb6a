"""Cancelling a run: it stops at the next safe point, never uploads or shares afterwards, and a rerun resumes.

The cancel is set the moment a stage starts (the stream runs in this thread, so the point is exact).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tui.core.delivery.destinations import destination_from
from tui.core.delivery.ledger import Ledger
from tui.core.demo import make_demo_study
from tui.core.dicom.scan import scan
from tui.core.events import StepFinished, StepStarted, drain
from tui.core.pipeline import (
    CANCELLED,
    STAGES,
    LedgerGate,
    PipelineSettings,
    run_participant,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One invented participant (localizer, 3D T1, T2)."""
    out = tmp_path_factory.mktemp("demo")
    drain(make_demo_study(out, participants=1, seed=7))
    return out


def run_once(demo: Path, tmp_path: Path, cancel_at: str | None) -> tuple[str, list[str]]:
    """One pass over the participant, cancelled when `cancel_at` starts; returns (status, finished stages)."""
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    settings = PipelineSettings(destination=f"folder:{outbox}", work_dir=tmp_path / "work")
    cancel = threading.Event()
    finished: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, StepStarted) and event.step == cancel_at:
            cancel.set()
        if isinstance(event, StepFinished):
            finished.append(f"{event.step}: {event.summary}")

    participant = scan(demo).participants[0]
    destination = destination_from(settings.destination, None)
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        outcome = drain(run_participant(participant, settings, LedgerGate(ledger), destination, cancel), on_event)
    return outcome.status, finished


def test_cancel_at_each_stage_sends_nothing_then_the_rerun_resumes(demo: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    for number, stage in enumerate(STAGES):
        status, finished = run_once(demo, tmp_path, cancel_at=stage)
        assert status == CANCELLED, (stage, finished)
        # the stages before were done by earlier passes, the stopped one and later ones never finish
        assert [f.split(":")[0] for f in finished] == list(STAGES[:number]), (stage, finished)
        # a rerun resumes: only the stage the previous pass stopped at is done now, the rest were done earlier
        assert all("done earlier" in f or f == "deface: off" for f in finished[:-1]), finished
        with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
            (row,) = ledger.rows()
        assert row.status != "shared" and not row.link and row.last_action == f"cancelled during {stage}"
        sent = [p for p in outbox.rglob("*") if p.is_file()]
        assert sent == [] or stage == "share", (stage, sent)  # the zip arrives only in an upload never cancelled
        assert not list(tmp_path.rglob("*.part")), stage
        if stage == "upload":  # the next pass makes the upload, which this pass did not start
            assert not sent
    status, finished = run_once(demo, tmp_path, cancel_at=None)
    assert status == "shared", finished
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        (row,) = ledger.rows()
    assert row.status == "shared" and row.link
    assert len(list(outbox.rglob("*.zip"))) == 1
    assert not list((tmp_path / "work").rglob("*.zip")), "the zip copy in the work folder is cleaned up"
