"""`mrishare demo`: make, scan and inspect the demo study; `--make DIR` only writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.cli import main


@pytest.mark.slow
def test_demo_makes_scans_inspects_and_reuses(capsys: pytest.CaptureFixture[str], mrishare_home: Path) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "made a demo study" in out
    assert out.count("participant p-") == 2 and "t1_mprage_sag_p2_iso  176 files" in out
    assert "PatientName" in out and "[MRISHARE DEMO 1.0]01" in out
    assert "Doe^Jane" not in out and "DOE_JANE" not in out  # masked without --reveal
    assert out.count(" shared ") == 2  # headless (no terminal): the pipeline ran to the local folder
    assert (mrishare_home / "data" / "demo" / "mrishare-demo.json").is_file()
    outbox = mrishare_home / "data" / "demo-outbox"
    assert len(list(outbox.rglob("*.zip"))) == 2
    assert (mrishare_home / "data" / "demo-share-list.xlsx").is_file()
    assert main(["demo", "--reveal"]) == 0
    out = capsys.readouterr().out
    assert "using the demo study" in out and "Doe^Jane" in out
    assert len(list(outbox.rglob("*.zip"))) == 2  # the second run finds both shared: nothing twice


def test_demo_make_prints_the_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--make", str(tmp_path / "study"), "--participants", "1", "--seed", "5"]) == 0
    folders = [Path(line) for line in capsys.readouterr().out.splitlines()]
    assert len(folders) == 1 and folders[0].parent == tmp_path / "study"
    assert len([f for f in folders[0].rglob("*") if f.is_file()]) == 3 + 176 + 30
    assert main(["demo", "--make", str(tmp_path / "study" / folders[0].name)]) == 2
