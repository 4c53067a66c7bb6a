"""`mrishare inspect` on corpus files: actions, masking, JSON, folders, literal values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from tui.cli import main, output

IM0001 = "phi-corpus/files/synthetic/KANARIENVOGEL_ADELHEID_19230405/01_t1_mprage_sag/IM0001"


@pytest.fixture
def slice_copy(shared_data: Path, tmp_path: Path) -> Path:
    """IM0001 under a neutral name, so the printed path carries no PHI."""
    target = tmp_path / "slice"
    shutil.copyfile(shared_data / IM0001, target)
    return target


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide console, so long values are not folded across lines."""
    monkeypatch.setattr(output.stdout, "_width", 200)


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict]:
    assert main(["inspect", *argv, "--json"]) == 0
    return {row["path"]: row for row in json.loads(capsys.readouterr().out)}


def test_table_masks_identifying_values(
    slice_copy: Path, shared_data: Path, capsys: pytest.CaptureFixture[str], wide: None
) -> None:
    assert main(["inspect", str(slice_copy)]) == 0
    out = capsys.readouterr().out
    canaries = [
        line for line in (shared_data / "phi-corpus/canary_strings.txt").read_text("utf-8").splitlines()
        if line and not line.startswith("#") and line != "CANARY CORP"  # creator names are shown
    ]
    assert not [c for c in canaries if c in out]
    assert "PatientName" in out and "••••• (28 chars)" in out and "X remove" in out
    assert main(["inspect", str(slice_copy), "--reveal"]) == 0
    assert "Kanarienvogel^Adelheid^Marie" in capsys.readouterr().out


def test_json_actions_and_options(slice_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys, str(slice_copy))
    assert rows["(0010,0010)"]["action"] == "Z" and rows["(0010,0010)"]["value"] == "••••• (28 chars)"
    # the share default (participant-copy) keeps the dates, so inspect says so; the value stays masked
    assert rows["(0008,0020)"]["action"] == "K" and rows["(0008,0020)"]["value"] == "••••• (8 chars)"
    assert rows["(0010,0010)"]["after"] == "pseudonym" and rows["(0008,0070)"]["value"] == "SIEMENS"
    research = _json(capsys, str(slice_copy), "--preset", "research")
    assert research["(0008,0020)"]["action"] == "C" and research["(0008,0020)"]["after"] == "shifted date"
    assert rows["(0009,1001)"]["action"] == "X" and "private" in rows["(0009,1001)"]["flags"]
    assert rows["(0019,100C)"]["action"] == "X"
    rows = _json(capsys, str(slice_copy), "--option", "rtn_long_full_dates", "--option", "rtn_safe_priv", "--reveal")
    assert rows["(0008,0020)"]["action"] == "K" and rows["(0008,0020)"]["value"] == "20230405"
    assert [rows[p]["action"] for p in ("(0019,100C)", "(0019,100D)", "(0019,100E)")] == ["C", "C", "C"]
    assert rows["(0009,1001)"]["action"] == "X"
    assert rows["(0010,0010)"]["reason"] == "E.1-1 (0010,0010) Patient's Name: basic Z"


def test_only_identifying(slice_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys, str(slice_copy), "--only-identifying")
    assert "(0028,0010)" not in rows and "(0010,0010)" in rows
    # Not identifying itself, but it holds identifying items, so it stays for context.
    assert "identifying" not in rows["(0008,1032)"]["flags"]
    assert "(0008,1032)[0](0008,0102)" in rows
    contexts = [p for p, r in rows.items() if "identifying" not in r["flags"]]
    assert all(any(q.startswith(p + "[") for q in rows) for p in contexts)


def test_folder_picks_first_dicom_by_content(
        shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_notes.dcm").write_text("not DICOM at all")
    (tmp_path / "b").mkdir()
    shutil.copyfile(shared_data / IM0001, tmp_path / "b" / "image.txt")
    rows = _json(capsys, str(tmp_path))
    assert rows["(0010,0010)"]["action"] == "Z"
    # A CD export: DICOMDIR at the top is skipped for the first image below it.
    rows = _json(capsys, str(shared_data / "phi-corpus/files/synthetic/MUESSIGGAENGER_JUERGEN"))
    assert "(0004,1220)" not in rows and rows["(0008,0016)"]["value"].startswith("1.2.840.10008.5.1.4.1.1.")


def test_markup_in_values_stays_literal(slice_copy: Path, capsys: pytest.CaptureFixture[str], wide: None) -> None:
    ds = pydicom.dcmread(slice_copy)
    ds.PatientName = "[/bold]Evil"
    ds.StudyDescription = "[red]x[/red] [link=http://e]y"
    ds.save_as(slice_copy)
    assert main(["inspect", str(slice_copy), "--reveal"]) == 0
    out = capsys.readouterr().out
    assert "[/bold]Evil" in out and "[red]x[/red] [link=http://e]y" in out


@pytest.mark.parametrize(
    "argv",
    [["missing-file"], ["--option", "rtn_long_full_dates", "--option", "rtn_long_modif_dates"]],
)
def test_errors_are_one_line(slice_copy: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    target = argv if argv[0] == "missing-file" else [str(slice_copy), *argv]
    assert main(["inspect", *target]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_folder_or_file_without_dicom(tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.dcm").write_bytes(b"\x00" * 300)
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no DICOM file found" in capsys.readouterr().err
    text = shared_data / "phi-corpus/files/found/dicognito/not_a_dicom_file.txt"
    assert main(["inspect", str(text)]) == 2
    assert "not a DICOM file" in capsys.readouterr().err
