"""End to end (issue 11): every real series in ../shared/data shares to a folder with the default preset.

`mrishare share SERIES --dest folder:OUT` in-process, one case per series folder (head-mri,
multivendor incl. d2n_tiny, realworld): the run must exit 0, the ledger row must say shared, and
the encrypted package must hold NIfTI images. A leak-gate false alarm, an empty PatientID or a
series that cannot be converted fails the case with the reason the CLI printed.
"""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from tui.cli import main
from tui.core.delivery.ledger import Ledger

SHARED = Path(os.environ.get("MRISHARE_SHARED", Path(__file__).resolve().parents[1].parent / "shared")) / "data"
_PATTERNS = ("head-mri/*/dicom", "multivendor/*/dicom", "multivendor/d2n_tiny/*", "realworld/*")
SERIES = [p for pattern in _PATTERNS for p in sorted(SHARED.glob(pattern)) if p.is_dir()]


def test_all_real_series_are_listed() -> None:
    assert len(SERIES) == 13


@pytest.mark.slow
@pytest.mark.parametrize("series", SERIES, ids=[str(p.relative_to(SHARED)).removesuffix("/dicom") for p in SERIES])
def test_real_series_shares_to_a_folder(series: Path, tmp_path: Path) -> None:
    out, ledger = tmp_path / "out", tmp_path / "share-list.xlsx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = main(["share", str(series), "--dest", f"folder:{out}", "--ledger", str(ledger), "--workers", "1"])
    failure = next((line for line in printed.getvalue().splitlines() if "failed" in line), "")
    assert code == 0, failure
    with Ledger.open(ledger) as book:
        assert [row.status for row in book.rows()] == ["shared"]
    (package,) = out.rglob("*.zip")
    with zipfile.ZipFile(package) as archive:
        assert any(name.endswith(".nii.gz") for name in archive.namelist())
