"""`mrishare deface IN OUT`: OUT may be a folder; a wrong name is explained in one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def deface(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", "deface", *args, "--no-check"], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize(("name", "out", "says"), [
    ("head.nii.gz", "out.txt", "OUT must be a folder or a file name ending in .nii.gz or .nii"),
    ("head.nii.gz", "missing/out.nii.gz", "the folder for OUT does not exist"),
    ("head.txt", "out.nii.gz", "expected a NIfTI head scan ending in .nii.gz or .nii"),
    ("absent.nii.gz", "out.nii.gz", "no such NIfTI file"),
    ("head.nii.gz", ".", "OUT would overwrite the input"),
])
def test_wrong_arguments_are_one_line(tmp_path: Path, name: str, out: str, says: str) -> None:
    if name != "absent.nii.gz":
        (tmp_path / name).write_bytes(b"\x1f\x8b not really a head")
    done = subprocess.run([sys.executable, "-m", "tui", "deface", name, out, "--no-check"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_folder_as_out_gets_the_input_name(shared_data: Path, tmp_path: Path) -> None:
    heads = sorted((shared_data / "head-mri").rglob("*.nii.gz"), key=lambda p: p.stat().st_size)  # 2 mm first
    assert heads, "no NIfTI head under shared data head-mri"
    outdir = tmp_path / "out"
    outdir.mkdir()
    done = deface(str(heads[0]), str(outdir))
    assert done.returncode == 0, done.stderr
    assert (outdir / heads[0].name).is_file()
