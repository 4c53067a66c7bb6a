"""`mrishare scan`: JSON and human output on the PHI corpus, masked unless --reveal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui.cli import main

A = "synthetic/KANARIENVOGEL_ADELHEID_19230405"


@pytest.fixture(scope="module")
def files(shared_data: Path) -> Path:
    return shared_data / "phi-corpus" / "files"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[dict, str]:
    assert main(["scan", *args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out), out


def test_json_lists_participants_dicomdir_files_and_misfiled(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, text = run_json(capsys, str(files))
    folders = {str(Path(p["folder"]).relative_to(files)): p for p in data["participants"]}
    assert {A, "synthetic/MUESSIGGAENGER_JUERGEN", "synthetic/PHANTOM_QA"} <= set(folders)
    a = folders[A]
    assert a["mixed_patients"] and a["misfiled"] == [str(files / A / "07_misfiled_other_patient" / "IM0001.dcm")]
    b = folders["synthetic/MUESSIGGAENGER_JUERGEN"]
    b_files = [f for pa in b["patients"] for st in pa["studies"] for se in st["series"] for f in se["files"]]
    assert len(b_files) == 8 and all("/PT000000/ST00000" in f for f in b_files)
    reasons = {s["path"]: s["reason"] for s in data["skipped"]}
    assert reasons[str(files / A / "08_odd_files" / "truncated_in_pixeldata.dcm")] == "truncated in pixel data"
    assert reasons[str(files / "synthetic/MUESSIGGAENGER_JUERGEN/DICOMDIR")].startswith("DICOMDIR")
    # identifying values only with --reveal
    assert "PID-CANARY-4711" not in text and "Adelheid^Marie" not in text and "patient_name" not in text


def test_json_reveal(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = run_json(capsys, str(files / A), "--participant", "--reveal")
    (only,) = data["participants"]
    assert [p["patient_id"] for p in only["patients"]] == ["PID-CANARY-4711", "PID-CANARY-0815"]
    assert only["patients"][0]["patient_name"] == "Kanarienvogel^Adelheid^Marie"


def test_human_output_is_masked(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(files)]) == 0
    out = capsys.readouterr().out
    assert "KANARIENVOGEL" not in out and "PID-CANARY" not in out and "19230405" not in out
    assert "patient 1 of 2" in out and "misfiled (other patient)" in out
    assert "truncated in pixel data" in out and "corrupt after DICM preamble" in out
    assert "t1_mprage_sag CANARY-A" in out and "128x128x3" in out


def test_human_output_reveal(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(files / A), "--reveal"]) == 0
    out = capsys.readouterr().out
    assert "PID-CANARY-4711" in out and "07_misfiled_other_patient/IM0001.dcm" in out


def test_not_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
