"""Issue 21: damaged headers, odd names, unexpected errors, hostile working folders, two ledgers.

Real series from ../shared/data with invented identity values (tests/fuzz/mutate.py), run through
the real CLI: in-process via `main` where the terminal does not matter, as `python -m tui`
subprocesses where it does (encoding of the output, the working folder on the import path).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.mutate import REPO, prepare_base
from tui.cli import main
from tui.core.delivery.ledger import Ledger

ODD = b"P\xff01"
SHARE = ["--deface", "off", "--workers", "1"]


@pytest.fixture(scope="module")
def tiny(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four real Siemens slices with invented PatientName/ID/BirthDate."""
    return prepare_base(shared_data, "siemens4", tmp_path_factory.mktemp("tiny") / "P01")


@pytest.fixture(scope="module")
def prisma(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 35-slice Siemens series (enough files for the de-identification process pool)."""
    return prepare_base(shared_data, "prisma35", tmp_path_factory.mktemp("prisma") / "P01")


def copy_study(source: Path, study: Path, name: bytes = b"P01") -> Path:
    """`study/<name>/` holding a copy of `source`; returns the participant folder."""
    import shutil

    target = Path(os.fsdecode(os.fsencode(study) + b"/" + name))
    shutil.copytree(source, target)
    return target


def damage_vr(path: Path, tag: bytes = b"\x18\x00\x95\x00") -> None:
    """Overwrite the VR bytes of an explicit-VR element (default (0018,0095) PixelBandwidth)."""
    data = bytearray(path.read_bytes())
    at = data.index(tag, 132)
    assert data[at + 4:at + 6] == b"DS"
    data[at + 4:at + 6] = b"Q?"
    path.write_bytes(bytes(data))


def cli(args: list[str], cwd: Path, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """`python -m tui ARGS` in `cwd` with its own MRISHARE_HOME."""
    env = {**os.environ, "MRISHARE_HOME": str(home), "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    env.pop("PYTHONSAFEPATH", None)
    return subprocess.run([sys.executable, "-m", "tui", *args], cwd=cwd, env=env, capture_output=True,
                          timeout=timeout, check=False)


def no_traceback(proc: subprocess.CompletedProcess[bytes]) -> str:
    """Both streams as text, asserting no traceback and no internal error in them."""
    out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in out and "internal error" not in out, out[-2000:]
    return out


# -- damaged headers (point 6) ---------------------------------------------------------------


def test_inspect_shows_the_damaged_element_and_names_it(prisma: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_study(prisma, tmp_path)
    damaged = sorted(folder.iterdir())[1]
    damage_vr(damaged)
    assert main(["inspect", "--json", str(damaged)]) == 1
    out, err = capsys.readouterr()
    rows = {r["tag"]: r for r in json.loads(out)}
    assert rows["(0018,0095)"]["value"] == "<unreadable: unknown VR>"
    assert rows["(0018,0095)"]["flags"] == ["malformed"]
    assert rows["(0018,0094)"]["value"] and rows["(0020,000D)"]["flags"]  # the rest is still shown
    assert str(damaged) in err and "(0018,0095) unreadable: unknown VR" in err


def test_deid_quarantines_the_damaged_file_naming_the_element(prisma: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_study(prisma, tmp_path / "study")
    damage_vr(sorted(folder.iterdir())[1])
    assert main(["deid", str(tmp_path / "study"), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "1  quarantined: damaged header: element (0018,0095) (unknown VR)" in out
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 34


def test_share_names_the_damaged_element_and_never_crashes(prisma: Path, tmp_path: Path) -> None:
    folder = copy_study(prisma, tmp_path / "study")
    damage_vr(min(folder.iterdir()))
    proc = cli(["share", str(folder), "--dest", f"folder:{tmp_path / 'dest'}", *SHARE], tmp_path, tmp_path / "home")
    out = no_traceback(proc)
    assert "damaged header: element (0018,0095) (unknown VR)" in out
    # the other 34 slices are shared, but never as if whole: the run ends 'partly shared' naming the file
    flat = " ".join(out.split())
    assert proc.returncode == 1 and "partly shared" in flat, flat[-1500:]
    assert re.search(r"withheld participant folder: damaged header: element \(0018,0095\) \(unknown VR\): \S+\.dcm",
                     flat), flat[-1500:]


# -- one line for every error (point 6, 5) ----------------------------------------------------


def test_unexpected_error_is_one_line_and_a_private_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str],
                                                           mrishare_home: Path) -> None:
    import tui.cli.scan

    def broken(args: object) -> int:  # stands in for a bug whose message quotes a patient value
        raise ValueError("Doe^Jane 19800101")

    monkeypatch.setattr(tui.cli.scan, "run", broken)
    assert main(["scan", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Doe" not in err and "internal error (ValueError)" in err
    [report] = (mrishare_home / "data" / "crash").iterdir()
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert "Doe^Jane" in report.read_text() and str(report) in err


def test_folder_destination_that_is_a_file(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    for dest in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        assert main(["share", str(tiny), "--dest", f"folder:{dest}", *SHARE]) == 2
        assert capsys.readouterr().err.strip() == (f"mrishare: {tmp_path / 'afile'}: is a file, not a folder: "
                                                   "a folder destination needs a folder")


# -- names that are not UTF-8 (points 3, 6) ----------------------------------------------------


def test_participant_and_destination_names_with_undecodable_bytes(tiny: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    folder = copy_study(tiny, study, ODD)
    dest = Path(os.fsdecode(os.fsencode(tmp_path) + b"/dest\xfe"))
    ledger = tmp_path / "share-list.xlsx"
    home = tmp_path / "home"
    scan = no_traceback(cli(["scan", str(study)], tmp_path, home))
    assert "P\\xff01" in scan or "1 participant," in scan
    assert cli(["inspect", str(folder)], tmp_path, home).returncode == 0
    proc = cli(["share", str(folder), "--dest", f"folder:{dest}", "--ledger", str(ledger), *SHARE], tmp_path, home)
    no_traceback(proc)
    assert proc.returncode == 0
    with Ledger.open(ledger) as opened:  # readable, with the bytes shown as escapes
        [row] = opened.rows()
    assert row.status == "shared" and row.participant == "P\\xff01" and "/dest%FE/" in row.link
    assert len(list(Path(dest).rglob("*.zip"))) == 1


# -- helper processes import only mrishare (point 7) -------------------------------------------


def test_helpers_ignore_modules_in_the_working_folder(prisma: Path, tmp_path: Path) -> None:
    copy_study(prisma, tmp_path / "study")
    (tmp_path / "dl").mkdir()  # python-gdcm's `import dl` took such a folder
    for name in ("numpy.py", "pydicom.py", "nibabel.py"):
        (tmp_path / name).write_text("import pathlib\npathlib.Path(__file__).with_name('IMPORTED').touch()\n")
    proc = cli(["deid", "study", "out", "--workers", "2"], tmp_path, tmp_path / "home")
    no_traceback(proc)
    assert proc.returncode == 0 and not (tmp_path / "IMPORTED").exists()
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 35
    proc = cli(["share", "study/P01", "--engine", "dicom2nifti", "--dest", "folder:dest", *SHARE],
               tmp_path, tmp_path / "home")
    no_traceback(proc)
    assert proc.returncode == 0 and not (tmp_path / "IMPORTED").exists()


# -- one owner per package (point 4) -----------------------------------------------------------


def test_second_ledger_gets_its_own_package(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    first, second = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    for ledger in (first, second):
        assert main(["share", str(tiny), "--dest", f"folder:{dest}", "--ledger", str(ledger), *SHARE]) == 0
    rows = []
    for ledger in (first, second):
        with Ledger.open(ledger) as opened:
            rows += opened.rows()
    assert [r.status for r in rows] == ["shared", "shared"] and rows[0].remote_path != rows[1].remote_path
    assert all((dest / r.remote_path).is_file() for r in rows)  # the first one's package is still there


def test_two_runs_on_one_participant_at_once(tiny: Path, tmp_path: Path) -> None:
    dest, ledger = tmp_path / "dest", tmp_path / "share-list.xlsx"
    args = [sys.executable, "-m", "tui", "share", str(tiny), "--dest", f"folder:{dest}", "--ledger", str(ledger),
            *SHARE]
    env = {**os.environ, "MRISHARE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    for proc, out in zip(procs, outs, strict=True):
        assert "Traceback" not in out and "internal error" not in out
        assert proc.returncode == 0 or "in use by another mrishare" in out
    assert len(list(dest.rglob("*.zip"))) == 1


def test_full_disk_during_share_is_one_line_naming_the_path(tiny: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(home)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        proc = cli(["share", str(tiny), "--dest", f"folder:{tmp_path / 'dest'}", "--ledger",
                    str(tmp_path / "share-list.xlsx"), *SHARE], tmp_path, home)
        out = no_traceback(proc)
        assert proc.returncode == 1  # 4 slices fit; the converter's output does not
        flat = " ".join(out.split())  # the terminal wraps a long line: read it as the one line it is
        mentions = [flat[m.end():m.end() + 300] for m in re.finditer(re.escape(f"{home}/data/work/"), flat)]
        assert mentions and all("disk full" in after for after in mentions), out
        assert not list(home.rglob("*.part"))
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)
