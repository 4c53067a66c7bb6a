"""Study-variables CSV: the same pseudonym and date offset as the DICOM run, formats kept."""

from __future__ import annotations

import argparse
import csv
from datetime import date
from pathlib import Path

import pytest

from tui.cli import deid as deid_cli
from tui.core.config import site_secret
from tui.core.deid.pseudonym import keyed_pseudonym, mapping_path
from tui.core.deid.study_csv import deidentify_csv, shift_cell
from tui.core.dicom.dateshift import offset_days
from tui.core.errors import MrishareError

ROWS = (
    "pid;visit;scan_date;birthday;score\n"
    "PID-CANARY-0815 ;1;20230110;02.01.1987;17\n"
    "PID-CANARY-0815;2;2024-02-15;;18\n"
)


def test_same_pseudonym_and_offset_as_dicom(tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(ROWS, encoding="utf-8")
    assert deidentify_csv(source, out, "pid", ["scan_date", "birthday"]) == 2
    rows = list(csv.DictReader(out.open(encoding="utf-8"), delimiter=";"))
    secret = site_secret()
    assert rows[0]["pid"] == rows[1]["pid"] == keyed_pseudonym(secret, "PID-CANARY-0815")
    days = offset_days(secret, "PID-CANARY-0815")
    first = date(int(rows[0]["scan_date"][:4]), int(rows[0]["scan_date"][4:6]), int(rows[0]["scan_date"][6:]))
    assert (date(2023, 1, 10) - first).days == -days
    second = date.fromisoformat(rows[1]["scan_date"])
    assert (second - first).days == 401
    assert rows[0]["birthday"].count(".") == 2 and rows[0]["birthday"] != "02.01.1987"
    assert rows[1]["birthday"] == "" and rows[0]["score"] == "17"
    assert "PID-CANARY-0815" not in out.read_text() and "PID-CANARY-0815" in mapping_path().read_text()


def test_bad_input_errors_without_values(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("pid,scan_date\nPID-SECRET-1,yesterday\n", encoding="utf-8")
    with pytest.raises(MrishareError) as error:
        deidentify_csv(source, tmp_path / "o.csv", "pid", ["scan_date"])
    assert "PID-SECRET-1" not in str(error.value) and "yesterday" not in str(error.value)
    with pytest.raises(MrishareError, match="no column"):
        deidentify_csv(source, tmp_path / "o.csv", "id", [])
    source.write_text("pid,scan_date\n,20230101\n", encoding="utf-8")
    with pytest.raises(MrishareError, match="empty pid"):
        deidentify_csv(source, tmp_path / "o.csv", "pid", ["scan_date"])


def test_shift_cell_formats() -> None:
    assert shift_cell("2023-01-10", -10) == "2022-12-31"
    assert shift_cell("10/01/2023", -10) == "31/12/2022"
    assert shift_cell("", -10) == "" and shift_cell("soon", -1) is None


def test_cli_command(tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(ROWS, encoding="utf-8")
    parser = argparse.ArgumentParser()
    deid_cli.register(parser.add_subparsers())
    args = parser.parse_args(["deid-csv", str(source), str(out), "--id-column", "pid", "--date-columns",
                              "scan_date,birthday", "--pseudonym", "fixed:S01"])
    assert args.handler(args) == 0
    assert [r["pid"] for r in csv.DictReader(out.open(), delimiter=";")] == ["S01", "S01"]
