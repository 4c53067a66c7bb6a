"""Ctrl-C on `mrishare share`: a real subprocess gets SIGINT (to its whole process group, as a terminal
sends it) when a stage's start line appears; it exits 130, sends nothing, and the next run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tui.core.delivery.ledger import Ledger
from tui.core.demo import make_demo_study
from tui.core.events import drain

pytestmark = pytest.mark.slow

SLOW_STAGES = ("deidentify", "convert", "deface", "pack")
"""Stages long enough for a signal to land inside them (upload and share: tests/core/test_pipeline_cancel.py)."""


def share_until(args: list[str], stage: str | None) -> tuple[int, str]:
    """Run `mrishare share`, Ctrl-C when `stage` starts (None: let it finish); return (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "tui", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if stage is not None and line.rstrip().endswith(f" {stage}: started"):
            os.killpg(proc.pid, signal.SIGINT)
            stage = None
    proc.communicate(timeout=600)
    return proc.returncode, "".join(lines)


def test_ctrl_c_at_each_stage_stops_sends_nothing_and_resumes(tmp_path: Path) -> None:
    study, outbox, ledger = tmp_path / "study", tmp_path / "outbox", tmp_path / "share-list.xlsx"
    outbox.mkdir()
    (folder,) = drain(make_demo_study(study, participants=1, seed=3))
    args = ["share", str(folder), "--dest", f"folder:{outbox}", "--ledger", str(ledger), "--preset", "research",
            "--engine", "dcm2niix"]
    for stage in SLOW_STAGES:
        code, err = share_until(args, stage)
        assert code == 130, err
        assert f"cancelled during {stage}" in err and "run the same command again to resume" in err, err
        after = err.split(f" {stage}: started", 1)[1]
        assert " upload: started" not in after and " share: started" not in after, err
        assert "Traceback" not in err and "UserWarning" not in err, err
        assert not [p for p in outbox.rglob("*") if p.is_file()], err
        assert not list(tmp_path.rglob("*.part")), err
        with Ledger.open(ledger) as book:
            (row,) = book.rows()
        assert row.status != "shared" and not row.link and row.last_action == f"cancelled during {stage}"
    code, err = share_until(args, None)
    assert code == 0, err
    assert "deidentify: done earlier" in err and "convert: done earlier" in err and "deface: done earlier" in err
    with Ledger.open(ledger) as book:
        (row,) = book.rows()
    assert row.status == "shared" and row.link
    assert len(list(outbox.rglob("*.zip"))) == 1
