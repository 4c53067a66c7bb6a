"""What the CLI prints while a job runs: one line per quarantine reason (with a count), no raw pydicom warnings,
no doubled labels ('scan scan:', 'deid: deid:')."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from tui.core.delivery.ledger import Ledger
from tui.core.demo import make_demo_study
from tui.core.events import drain


@pytest.fixture(scope="module")
def odd_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's localizer (3 files) marked as burned-in, with a StationName longer than SH allows."""
    demo = tmp_path_factory.mktemp("demo")
    drain(make_demo_study(demo, participants=1, seed=4))
    study = tmp_path_factory.mktemp("odd")
    target = study / "PERSON" / "loc"
    target.mkdir(parents=True)
    for source in sorted(demo.rglob("01_localizer/*.dcm")):
        ds = pydicom.dcmread(source)
        ds.BurnedInAnnotation = "YES"
        ds.StationName = "S" * 40  # SH allows 16: pydicom warns when it reads this
        ds.save_as(target / source.name)
    return study


def mrishare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, timeout=300,
                          env=os.environ, check=False)


def test_quarantine_lines_grouped_with_a_count_and_no_pydicom_warning(odd_study: Path, tmp_path: Path) -> None:
    done = mrishare("deid", str(odd_study), str(tmp_path / "out"))
    lines = done.stderr.splitlines()
    text = " ".join(done.stderr.split())  # rich wraps long lines at 80 columns without a terminal
    assert text.count("BurnedInAnnotation is YES") == 1, done.stderr
    assert "quarantined 3 files: BurnedInAnnotation is YES" in text and "(first: " in text
    assert "UserWarning" not in text and "exceeds the maximum length" not in text, done.stderr
    assert not any(line.startswith("scan scan:") or ": deid: " in line for line in lines), done.stderr


def test_inspect_shows_no_pydicom_warning(odd_study: Path) -> None:
    done = mrishare("inspect", str(odd_study))
    assert done.returncode == 0, done.stderr
    assert "exceeds the maximum length" not in done.stderr + done.stdout and "StationName" in done.stdout


def test_scan_says_burned_in_only_with_evidence_and_names_it(odd_study: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    drain(make_demo_study(plain, participants=1, seed=4))
    said = mrishare("scan", str(plain)).stdout
    assert "burned-in" not in said.lower() and "t1_mprage" in said  # plain MR without the tag: no claim
    said = " ".join(mrishare("scan", str(odd_study)).stdout.split())
    assert "BURNED-IN TEXT (BurnedInAnnotation = YES)" in said


def test_shares_list_at_80_columns_shows_the_whole_link(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import date

    from tui.cli import main, output
    from tui.core.delivery.ledger import LedgerRow

    link = "https://cloud.example-university-hospital.org/index.php/s/Ab3dEfGh1jKlMn0pQ?dl=1"
    ledger_path = tmp_path / "share-list.xlsx"
    with Ledger.open(ledger_path) as ledger:
        ledger.upsert(LedgerRow(id="s0123456789", participant="P0001", status="shared", link=link,
                                expires=date(2026, 12, 21), last_action="link shared", passphrase="a-b-c"))
        ledger.save()
    monkeypatch.setattr(output.stdout, "_width", 80)
    assert main(["shares", "--ledger", str(ledger_path), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].strip() == link  # on a line of its own, not cut with an ellipsis
    assert "s0123456789" in lines[0] and "shared" in lines[0] and "a-b-c" not in "".join(lines)
    assert "works until 2026-12-20" in lines[0]  # the last day, as the e-mail says it (expires: 2026-12-21)
