"""`--pseudonym-list FILE` of deid, share and batch on real series: ADIT's PatientID,Pseudonym list, 0600, local."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from tui.cli import main

ORIENT = "realworld/siemens_orientation_2slice"  # PatientID crlab; 2-slice series: de-identifies, does not convert
XA30 = "head-mri/siemens_prisma_xa30_mprage_2mm"  # PatientID 12343@hucheng; goes through the whole pipeline


@pytest.fixture
def study(shared_data: Path, tmp_path: Path) -> Path:
    """Two real participants in one study folder."""
    folder = tmp_path / "study"
    shutil.copytree(shared_data / ORIENT, folder / "orient")
    shutil.copytree(shared_data / XA30, folder / "xa30")
    return folder


def batch_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "batch.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_deid_list_equals_the_csv_batch_file(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = batch_file(tmp_path, "PatientID,Pseudonym\n12343@hucheng,P002\ncrlab,P001\n")
    listed = tmp_path / "local" / "list.csv"
    assert main(["deid", str(study), str(tmp_path / "out"), "--pseudonym", f"csv:{table}",
                 "--pseudonym-list", str(listed), "--workers", "1"]) == 0
    assert stat.S_IMODE(listed.stat().st_mode) == 0o600
    lines = listed.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "PatientID,Pseudonym"
    assert sorted(lines[1:]) == sorted(table.read_text(encoding="utf-8").splitlines()[1:])
    assert "pseudonym list:" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["P001", "P002"]  # nothing else in OUT


def test_deid_list_marks_the_failed_participant(study: Path, tmp_path: Path) -> None:
    table = batch_file(tmp_path, "PatientID,Pseudonym\ncrlab,P001\n")
    listed = tmp_path / "list.csv"
    assert main(["deid", str(study), str(tmp_path / "out"), "--pseudonym", f"csv:{table}",
                 "--pseudonym-list", str(listed), "--workers", "1"]) == 1
    rows = sorted(listed.read_text(encoding="utf-8").splitlines())
    assert rows == ["12343@hucheng,,failed: PatientID not found in the pseudonym CSV", "PatientID,Pseudonym,Status",
                    "crlab,P001,ok"]


@pytest.mark.parametrize("where", ["out/list.csv", "out", "batch.csv"])
def test_deid_refuses_a_list_inside_the_output_or_over_the_batch_file(
        study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    table = batch_file(tmp_path, "PatientID,Pseudonym\ncrlab,P001\n12343@hucheng,P002\n")
    (tmp_path / "out").mkdir()
    code = main(["deid", str(study), str(tmp_path / "out"), "--pseudonym", f"csv:{table}",
                 "--pseudonym-list", str(tmp_path / where), "--workers", "1"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error
    assert "pseudonym list" in error
    assert table.read_text(encoding="utf-8").count("P00") == 2


def test_share_writes_the_list_and_batch_refuses_it_inside_the_destination(
        study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outbox = tmp_path / "outbox"
    common = ["--dest", f"folder:{outbox}", "--ledger", str(tmp_path / "ledger.xlsx"),
              "--pseudonym", "adit-upload:Neuroradiologie"]
    assert main(["batch", str(study), *common, "--pseudonym-list", str(outbox / "list.csv")]) == 2
    assert "must stay outside" in capsys.readouterr().err and not (tmp_path / "ledger.xlsx").exists()
    listed = tmp_path / "list.csv"
    assert main(["share", str(study / "xa30"), *common, "--pseudonym-list", str(listed)]) == 0
    # printf '%-64s%-64s' 'Neuroradiologie' '12343@hucheng' | openssl dgst -sha3-256
    expected = "a3b9a4098bdeae6caa0a1064bb49649b82791f670d2814dc1a0e3d6fc596c1ef"
    assert listed.read_text(encoding="utf-8") == f"PatientID,Pseudonym\n12343@hucheng,{expected}\n"
    assert stat.S_IMODE(listed.stat().st_mode) == 0o600
    delivered = sorted(p.name for p in outbox.rglob("*") if p.is_file())
    assert delivered == [".mrishare-shares.json", f"sub-{expected}.zip", f"sub-{expected}_oeffnen_open.html"]
    members = zipfile.ZipFile(next(outbox.rglob("*.zip"))).namelist()  # names are readable without the phrase
    assert members and not [m for m in members if m.endswith(".csv") or "12343" in m]
