"""Issue 21 points 1-2 end to end: damaged, gapped, unreadable and mixed-patient folders never share silently.

Every case is a copy of the real multivendor/siemens_prisma_t1_fl2d_sag_35sl series (PatientName/ID
replaced) in tmp_path, shared with `mrishare share` to a folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tui.cli import main
from tui.core.delivery.ledger import Ledger

PRISMA = "multivendor/siemens_prisma_t1_fl2d_sag_35sl/dicom"


@pytest.fixture(scope="module")
def prisma_copy(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 35 slices with an invented name and ID (made once; each test copies it)."""
    out = tmp_path_factory.mktemp("prisma")
    for path in sorted((shared_data / PRISMA).iterdir()):
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID = "Testperson^Erika", "TP123456"
        ds.save_as(out / path.name)
    return out


@pytest.fixture
def series(prisma_copy: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "participant"
    shutil.copytree(prisma_copy, folder)
    return folder


def slice_file(folder: Path, number: int) -> Path:
    [path] = folder.glob(f"{number:04d}_*.dcm")
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def damage_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[132:4096] = bytes(range(256)) * 15 + bytes(range(124))  # after the preamble, inside the header
    path.write_bytes(bytes(data))


def cut_before_pixels(path: Path) -> None:
    """End the file where the pixel data element starts: every element left is whole (seen in fuzz seed 318)."""
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b"\xe0\x7f\x10\x00")])


def cut_before_image_group(path: Path) -> None:
    """End the file where group 0028 starts: no Rows, no pixel data, every element left whole (fuzz seed 318)."""
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\x28\x00\x02\x00", 132)])


def damage_meta_vr(path: Path) -> None:
    """The VR of (0002,0002) in the file meta becomes 'TI' (fuzz seed 365: an internal error before)."""
    data = path.read_bytes()
    path.write_bytes(data.replace(b"\x02\x00\x02\x00UI", b"\x02\x00\x02\x00TI", 1))


def second_series(folder: Path, target: Path, patient: tuple[str, str] | None = None, count: int = 35) -> None:
    """A copy of the series as another, complete series (same patient unless `patient` = (name, id)); cut to
    `count` slices, it leaves out the Siemens protocol, which would declare 35."""
    target.mkdir(parents=True)
    uid, study = generate_uid(), generate_uid()
    for path in sorted(folder.glob("*.dcm"))[:count]:
        ds = pydicom.dcmread(path)
        if count < 35:
            del ds[0x0029, 0x1020]
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SOPInstanceUID = uid, 99, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if patient:
            ds.PatientName, ds.PatientID, ds.StudyInstanceUID = patient[0], patient[1], study
        ds.save_as(target / path.name)


def refuse_listing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """The OS refuses to list `folder` (the tests run as root, whom chmod 000 does not stop)."""
    real = os.scandir

    def scandir(path=".", *rest):
        if isinstance(path, (str, os.PathLike)) and Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *rest)

    monkeypatch.setattr(os, "scandir", scandir)


def share(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str]:
    code = main(["share", str(folder), "--dest", f"folder:{tmp_path / 'dest'}", "--ledger",
                 str(tmp_path / "ledger.xlsx"), "--deface", "off", *flags])
    captured = capsys.readouterr()
    # colour codes, when an earlier test in the session left the console forcing colour, split the phrases
    return code, " ".join(re.sub(r"\x1b\[[0-9;]*m", "", captured.out + captured.err).split())


def packages(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "dest").rglob("*.zip"))


def ledger_row(tmp_path: Path):
    with Ledger.open(tmp_path / "ledger.xlsx") as ledger:
        [row] = ledger.rows()
    return row


def unbroken(text: str) -> str:
    """Terminal tables wrap long names: compare without whitespace."""
    return "".join(text.split())


@pytest.mark.parametrize("damage, number, expected", [
    (truncate, 1, "a file could not be read"),
    (truncate, 35, "a file could not be read"),
    (damage_header, 1, "a file could not be read"),
    (truncate, 18, "a file could not be read"),
    (cut_before_pixels, 35, "truncated (no pixel data)"),
    (cut_before_image_group, 1, "truncated (no pixel data)"),
    (damage_meta_vr, 1, "damaged file meta: element (0002,0002) (unknown VR)"),
    (Path.unlink, 18, "gap at slice 18 of 35: 1 slice missing"),
])
def test_a_damaged_or_missing_slice_withholds_the_series_and_names_it(
        series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage, number: int, expected: str) -> None:
    path = slice_file(series, number)
    name = path.name
    damage(path)
    code, out = share(series, tmp_path, capsys)
    assert code != 0 and packages(tmp_path) == []
    assert expected in out and (damage is Path.unlink or unbroken(name) in unbroken(out))
    row = ledger_row(tmp_path)
    assert row.status == "failed" and expected in row.note
    if damage is Path.unlink:  # the neighbours are named
        assert unbroken(slice_file(series, 17).name) in unbroken(row.note)
        assert unbroken(slice_file(series, 19).name) in unbroken(row.note)


@pytest.mark.parametrize("number", [1, 35])
def test_an_edge_slice_deleted_is_seen_in_the_siemens_protocol(
        series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], number: int) -> None:
    """Neither positions nor instance numbers show a first or last slice gone; the 2D protocol's slice count does."""
    slice_file(series, number).unlink()
    code, out = share(series, tmp_path, capsys)
    assert code != 0 and packages(tmp_path) == []
    assert "the series declares 35 slices (Siemens protocol, sSliceArray.lSize), 34 were read" in out


def test_other_series_go_on_and_the_run_ends_partly_shared(
        series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second_series(series, series / "complete")
    truncate(slice_file(series, 1))
    code, out = share(series, tmp_path, capsys)
    assert code == 1 and "partly shared" in out
    [package] = packages(tmp_path)
    row = ledger_row(tmp_path)
    assert row.status == "shared" and row.note.startswith("partly shared: withheld series 3")
    with zipfile.ZipFile(package) as z:
        z.setpassword(row.passphrase.encode())
        niftis = [n for n in z.namelist() if n.endswith(".nii.gz")]
    assert len(niftis) == 1


def test_allow_incomplete_releases_and_records_the_gap(
        series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truncate(slice_file(series, 35))
    code, _ = share(series, tmp_path, capsys, "--allow-incomplete", "--keep-work")
    assert code == 0 and packages(tmp_path)
    row = ledger_row(tmp_path)
    assert row.status == "shared" and row.note.startswith("incomplete series released on request: series 3")
    [readme] = (Path(os.environ["MRISHARE_HOME"])).rglob("package/*/README.txt")
    text = readme.read_text()
    assert "INCOMPLETE DATA" in text and "series 3: a file could not be read" in text
    assert "0035_" not in text  # file names stay out of the package
    [audit] = Path(os.environ["MRISHARE_HOME"]).rglob("audit/*.jsonl")
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    [record] = [r for r in records if r.get("type") == "incomplete"]
    assert record["decision"] == "released" and "0035_" in record["problems"][0]


def test_an_unreadable_subfolder_is_named_with_the_os_error(
        series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    hidden = series / "rest"
    hidden.mkdir()
    for number in range(31, 36):
        shutil.move(slice_file(series, number), hidden)
    refuse_listing(monkeypatch, hidden)
    code, out = share(series, tmp_path, capsys)
    assert code == 1 and packages(tmp_path) == []  # the folder beside the series' files counts as part of it
    assert "a folder could not be read (permission denied (Permission denied, errno 13)): rest" in out


def test_an_unreadable_folder_apart_from_every_series_is_named_and_the_run_is_partly_shared(
        series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (series / "a").mkdir()
    for path in series.glob("*.dcm"):
        shutil.move(path, series / "a")
    hidden = series / "b" / "deeper"
    hidden.mkdir(parents=True)
    refuse_listing(monkeypatch, hidden)
    code, out = share(series, tmp_path, capsys)
    assert code == 1 and "partly shared" in out and len(packages(tmp_path)) == 1
    note = ledger_row(tmp_path).note
    assert note.startswith("partly shared: withheld participant folder: not read (folder permission denied")
    assert str(hidden) in note


def test_truncated_enhanced_file_says_why_no_participant(
        shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "xa30"
    folder.mkdir()
    [source] = (shared_data / "head-mri/siemens_prisma_xa30_mprage_2mm/dicom").iterdir()
    (folder / source.name).write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    code, out = share(folder, tmp_path, capsys)
    assert code == 2
    assert "no DICOM participant found: 1 file(s) or folder(s) could not be read" in out
    assert unbroken(source.name) in unbroken(out) and "truncated" in out


def test_two_patients_in_one_folder_stop_and_name_only_counts(
        series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second_series(series, series / "other", patient=("Anders^Max", "XY987654"), count=20)
    code, out = share(series, tmp_path, capsys)
    assert code == 1 and packages(tmp_path) == []
    assert "2 patients in one participant folder (35 + 20 files)" in out and "--patient-index" in out
    assert "Anders" not in out and "Testperson" not in out and "XY987654" not in out
    assert "2 patients in one participant folder" in ledger_row(tmp_path).note


def test_patient_index_shares_the_chosen_patient(
        series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second_series(series, series / "other", patient=("Anders^Max", "XY987654"), count=20)
    code, out = share(series, tmp_path, capsys, "--patient-index", "2")
    assert code == 0 and len(packages(tmp_path)) == 1
    assert "20 released, 35 quarantined" in out


def test_scan_shows_the_gap_before_anything_is_shared(series: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slice_file(series, 18).unlink()
    assert main(["scan", str(series), "--json"]) == 0
    [participant] = json.loads(capsys.readouterr().out)["participants"]
    [only] = participant["patients"][0]["studies"][0]["series"]
    [problem] = only["problems"]
    assert problem.startswith("gap at slice 18 of 35: 1 slice missing: between 0017_")
    assert main(["scan", str(series)]) == 0
    assert "INCOMPLETE" in capsys.readouterr().out


def test_a_flipped_byte_that_splits_a_series_loses_no_slice(
        shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Fuzz seeds 313/322: a flipped header byte splits the real GE series into 3 + 1 slices; dcm2niix once wrote
    the second part over the first (rc 0 with 1 of 4 slices). Both parts are now delivered, all 4 slices."""
    import math

    import nibabel as nib

    from tests.core.test_pipeline_shortfall import FLIPPED, flip_study_time
    from tests.fuzz.mutate import prepare_base

    folder = prepare_base(shared_data, "ge4", tmp_path / "P01")
    flip_study_time(folder / FLIPPED)
    code, out = share(folder, tmp_path, capsys, "--keep-work")
    assert code == 0 and "partly" not in out, out[-800:]
    niftis = sorted(Path(os.environ["MRISHARE_HOME"]).rglob("package/*/ses-1/anat/*.nii.gz"))
    assert [p.name.split("_")[-2] for p in niftis] == ["run-1", "run-2"]
    assert sum(math.prod(nib.load(p).shape) for p in niftis) == 4 * 256 * 256  # every voxel of the 4 slices
