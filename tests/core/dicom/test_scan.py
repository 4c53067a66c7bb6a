"""Discovery on the shared corpus (odd files, DICOMDIR, misfiled patient) and on tiny files built here."""

from __future__ import annotations

import csv
import os
import shutil
import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from tui.core.dicom.scan import (
    Instance,
    Skipped,
    participant_key,
    read_header,
    read_instance,
    scan,
    scan_events,
)
from tui.core.errors import MrishareError
from tui.core.events import StepFinished, StepProgress, StepStarted, drain

A = "synthetic/KANARIENVOGEL_ADELHEID_19230405"
B = "synthetic/MUESSIGGAENGER_JUERGEN"
C = "synthetic/PHANTOM_QA"


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> Path:
    return shared_data / "phi-corpus"


@pytest.fixture(scope="module")
def corpus_scan(corpus: Path):
    return scan(corpus / "files")


def by_folder(result, root: Path) -> dict[str, object]:
    return {str(p.folder.relative_to(root)): p for p in result.participants}


def write_mr(path: Path, patient_id: str, series_uid: str, number: int = 1, study_uid: str = "1.2.3.4") -> None:
    """A tiny valid MR image file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientName = "Test^" + patient_id
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "MR"
    ds.InstanceNumber = number
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\x00" * 8
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_corpus_participants_match_the_answer_key(corpus: Path, corpus_scan) -> None:
    root = corpus / "files"
    found = by_folder(corpus_scan, root)
    with open(corpus / "participants.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        participant = found[row["folder"].removeprefix("files/")]
        expected_id = "" if row["PatientID"] == "(empty)" else row["PatientID"]
        assert participant.main_patient.patient_id == expected_id
        assert participant.main_patient.patient_name == row["PatientName"]
        expected_dates = sorted(s.split(";")[0].strip() for s in row["studies(StudyDate;StudyInstanceUID)"].split("|"))
        assert sorted(s.date for s in participant.main_patient.studies) == expected_dates
    assert {f for f in found if f.startswith("found/")} == {
        "found/deid-data/humans", "found/deid-data/ultrasounds", "found/dicognito", "found/pydicom"}


def test_misfiled_file_in_participant_a_is_flagged(corpus: Path, corpus_scan) -> None:
    root = corpus / "files"
    a = by_folder(corpus_scan, root)[A]
    assert a.mixed_patients
    assert a.misfiled == [root / A / "07_misfiled_other_patient" / "IM0001.dcm"]
    assert [p.patient_id for p in a.patients] == ["PID-CANARY-4711", "PID-CANARY-0815"]
    b = by_folder(corpus_scan, root)[B]
    assert not b.mixed_patients and b.misfiled == []


def test_participant_b_via_dicomdir(corpus: Path, corpus_scan) -> None:
    root = corpus / "files"
    b = by_folder(corpus_scan, root)[B]
    assert b.files == 8
    assert [len(s.series) for s in b.main_patient.studies] == [2, 2]
    reasons = {s.path: s.reason for s in b.skipped}
    assert reasons == {root / B / "DICOMDIR": "DICOMDIR (index; 8 referenced files resolved)"}


def test_every_unusable_file_has_its_reason(corpus: Path, corpus_scan) -> None:
    root = corpus / "files"
    reasons = {str(s.path.relative_to(root)): s.reason for s in corpus_scan.skipped}
    odd = f"{A}/08_odd_files"
    assert reasons[f"{odd}/truncated_in_pixeldata.dcm"] == "truncated in pixel data"
    assert reasons[f"{odd}/truncated_in_sequence.dcm"].startswith("truncated")
    assert reasons[f"{odd}/corrupt_after_DICM.dcm"] == "corrupt after DICM preamble"
    assert reasons[f"{A}/Aufklaerung_Kanarienvogel.txt"] == "not DICOM"
    assert reasons["found/dicognito/bad.dcm"] == "no data set after the file meta (empty or zeroed)"
    assert reasons["found/dicognito/not_a_dicom_file.txt"] == "not DICOM"
    assert reasons["found/pydicom/MR_truncated.dcm"] == "truncated in pixel data"
    assert reasons["found/pydicom/dicomdirtests/DICOMDIR"].startswith("DICOMDIR")
    missing = [p for p, r in reasons.items() if r == "referenced by DICOMDIR but missing"]
    assert len(missing) == 31 and all(p.startswith("found/pydicom/dicomdirtests/") for p in missing)
    # every file on disk is either used or listed with a reason
    used = {f for p in corpus_scan.participants for s in p.series() for f in s.files}
    on_disk = {p for p in root.rglob("*") if p.is_file()}
    assert on_disk == used | ({s.path for s in corpus_scan.skipped} & on_disk)
    assert all("\n" not in s.reason and s.reason for s in corpus_scan.skipped)


def test_odd_but_valid_encodings_are_used(corpus: Path, corpus_scan) -> None:
    root = corpus / "files"
    used = {f for p in corpus_scan.participants for s in p.series() for f in s.files}
    odd = root / A / "08_odd_files"
    assert {odd / "RAW_IMPLICIT_NO_META", odd / "deflated_explicit_le.dcm"} <= used
    a = by_folder(corpus_scan, root)[A]
    syntaxes = {t for s in a.series() for t in s.transfer_syntaxes}
    assert "1.2.840.10008.1.2.1.99" in syntaxes and "1.2.840.10008.1.2" in syntaxes


def test_series_details(corpus: Path, corpus_scan) -> None:
    a = by_folder(corpus_scan, corpus / "files")[A]
    series = {s.description: s for s in a.series()}
    t1 = series["t1_mprage_sag CANARY-A"]
    assert (t1.modality, t1.rows, t1.cols, t1.slices, len(t1.files)) == ("MR", 128, 128, 3, 3)
    assert t1.files[0].name == "IM0001"  # sorted by InstanceNumber, not by name
    assert series["ep2d_diff_enhanced CANARY-A"].slices == 10
    assert series["localizer screen save CANARY-A"].burned_in == "YES"
    assert series["MPR screen capture CANARY-A"].burned_in is None


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the odd encodings it reads
def test_pydicom_test_files_all_accounted_for() -> None:
    """pydicom's own odd files: big endian without meta, implicit pixel element in explicit VR, JPEG..."""
    root = Path(pydicom.__file__).parent / "data" / "test_files"
    result = scan(root, as_participant=True)
    used = {f.name for s in result.participants[0].series() for f in s.files}
    assert {"ExplVR_BigEndNoMeta.dcm", "SC_rgb_jpeg.dcm", "SC_ybr_full_422_uncompressed.dcm", "MR_small_bigendian.dcm",
            "SC_rgb_small_odd_big_endian.dcm", "JPEG2000.dcm"} <= used
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons["rtplan_truncated.dcm"] == "truncated (header ends early)"
    assert reasons["MR_truncated.dcm"] == "truncated in pixel data"
    assert reasons["nested_priv_SQ.dcm"] == "DICOM without SOPClassUID and SeriesInstanceUID (not a stored object)"
    on_disk = {p for p in root.rglob("*") if p.is_file()}
    used_paths = {f for s in result.participants[0].series() for f in s.files}
    assert on_disk == used_paths | ({s.path for s in result.skipped} & on_disk)


def test_read_header_sniffs_content(corpus: Path) -> None:
    odd = corpus / "files" / A / "08_odd_files"
    raw = read_header(odd / "RAW_IMPLICIT_NO_META")
    assert isinstance(raw, Dataset) and raw.PatientID == "PID-CANARY-4711" and "PixelData" not in raw
    truncated = read_header(odd / "truncated_in_pixeldata.dcm")
    assert truncated == Skipped(odd / "truncated_in_pixeldata.dcm", "truncated in pixel data",
                                series_uid=truncated.series_uid, lost=True)
    assert truncated.series_uid.startswith("1.2.826.0.1.3680043.8.498.19230405")  # tied to its series
    assert isinstance(read_header(odd / "truncated_in_sequence.dcm"), Skipped)


def test_never_crashes_on_junk(tmp_path: Path) -> None:
    write_mr(tmp_path / "P" / "ok", "ID1", "1.2.3.5")
    (tmp_path / "P" / "zero").write_bytes(b"")
    (tmp_path / "P" / "zeros").write_bytes(bytes(4096))
    (tmp_path / "P" / "junk.dcm").write_bytes(os.urandom(3000))
    (tmp_path / "P" / "fake_dicm").write_bytes(bytes(128) + b"DICM" + os.urandom(200))
    (tmp_path / "P" / "group8_junk").write_bytes(b"\x08\x00\x05\x00" + b"\xff" * 60)
    (tmp_path / "P" / "loop").symlink_to(tmp_path / "P" / "loop")
    (tmp_path / "P" / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "P" / "dirlink").symlink_to(tmp_path / "P")
    os.mkfifo(tmp_path / "P" / "fifo")
    result = scan(tmp_path)
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons["zero"] == "empty file"
    assert reasons["zeros"] == "not DICOM"
    assert reasons["junk.dcm"] == "not DICOM"
    assert reasons["loop"] == "symbolic link loop"
    assert reasons["dangling"] == "broken symbolic link"
    assert reasons["dirlink"].startswith("symbolic link to a folder that is read already (loop")
    assert reasons["fifo"] == "not a regular file"
    assert "fake_dicm" in reasons and "group8_junk" in reasons
    assert [p.files for p in result.participants] == [1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of their mode")
def test_permission_denied_is_a_reason(tmp_path: Path) -> None:
    write_mr(tmp_path / "secret", "ID1", "1.2.3.5")
    (tmp_path / "secret").chmod(0)
    assert read_instance(tmp_path / "secret") == Skipped(tmp_path / "secret",
                                                         "permission denied (Permission denied, errno 13)", lost=True)


def test_study_folder_yields_one_participant_per_subfolder(tmp_path: Path) -> None:
    for pid in ("S01", "S02"):
        for series in (1, 2):
            write_mr(tmp_path / f"DOE_{pid}" / f"series{series}" / "IM1", pid, f"1.2.{int(pid[1:])}.{series}")
    result = scan(tmp_path)
    assert [p.folder.name for p in result.participants] == ["DOE_S01", "DOE_S02"]
    assert [len(list(p.series())) for p in result.participants] == [2, 2]
    keys = [p.key for p in result.participants]
    assert len(set(keys)) == 2 and all(k.startswith("p-") and len(k) == 12 for k in keys)
    assert all("DOE" not in k for k in keys)
    assert keys[0] == participant_key(tmp_path / "DOE_S01")


def test_participant_folder_is_the_same_from_the_study_or_its_own_folder(tmp_path: Path) -> None:
    for pid in ("P1", "P2"):
        for series in (1, 2):
            write_mr(tmp_path / "top" / "study" / f"DOE_{pid}" / "DICOM" / f"S{series}" / "IM1", pid,
                     f"1.2.{pid[1]}.{series}")
    study = tmp_path / "top" / "study"
    expected = [study / "DOE_P1", study / "DOE_P2"]
    for start in (tmp_path, tmp_path / "top", study):  # single-folder chains above the study are looked through
        assert [p.folder for p in scan(start).participants] == expected
    assert [p.folder for p in scan(study / "DOE_P1").participants] == [study / "DOE_P1"]
    (study / "DOE_P1" / "consent.pdf").write_bytes(b"%PDF-1.4")
    owner = scan(study).participants[0]
    assert [s.path.name for s in owner.skipped] == ["consent.pdf"]


def test_whole_shared_data_folder(shared_data: Path) -> None:
    result = scan(shared_data)
    folders = {str(p.folder.relative_to(shared_data)) for p in result.participants}
    assert f"phi-corpus/files/{A}" in folders and "phi-corpus/files/found/dicognito" in folders
    assert "head-mri/philips_ingenia_elitionx_adni_mprage_1mm" in folders
    # each realworld series folder (new in ../shared/data/realworld) is a participant of its own
    realworld = {f"realworld/{p.name}" for p in (shared_data / "realworld").iterdir() if p.is_dir()}
    assert len(realworld) == 5 and realworld <= folders
    assert len(folders) == 7 + 6 + 5


def test_one_participant_with_study_subfolders(tmp_path: Path) -> None:
    # three sub-folders, one patient dominant in two of them: series folders of one person
    write_mr(tmp_path / "visit1" / "IM1", "P1", "1.2.1")
    write_mr(tmp_path / "visit2" / "IM1", "P1", "1.2.2")
    write_mr(tmp_path / "odd" / "IM1", "P9", "1.2.3")
    result = scan(tmp_path)
    assert len(result.participants) == 1
    only = result.participants[0]
    assert only.folder == tmp_path and only.mixed_patients
    assert only.misfiled == [tmp_path / "odd" / "IM1"]


def test_as_participant_and_direct_files(tmp_path: Path) -> None:
    for pid in ("S01", "S02"):
        write_mr(tmp_path / pid / "IM1", pid, f"1.2.{int(pid[1:])}")
    assert len(scan(tmp_path).participants) == 2
    assert len(scan(tmp_path, as_participant=True).participants) == 1
    write_mr(tmp_path / "IM_top", "S01", "1.2.9")
    assert [p.folder for p in scan(tmp_path).participants] == [tmp_path]


def test_head_mri_series(shared_data: Path) -> None:
    result = scan(shared_data / "head-mri")
    series = {p.folder.name: list(p.series()) for p in result.participants}
    (philips,) = series["philips_ingenia_elitionx_adni_mprage_1mm"]
    assert (len(philips.files), philips.rows, philips.cols, philips.slices) == (170, 256, 256, 170)
    numbers = [pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber for f in philips.files[:5]]
    assert numbers == sorted(numbers)
    (siemens,) = series["siemens_prisma_xa30_mprage_2mm"]
    assert (len(siemens.files), siemens.slices, siemens.rows) == (1, 96, 128)
    assert siemens.sop_classes == {"1.2.840.10008.5.1.4.1.1.4.1"}
    # LICENSE, README and NIfTI files are listed, not silently dropped
    assert any(s.path.suffix == ".gz" and s.reason == "not DICOM" for s in result.skipped)


def test_multivendor(shared_data: Path) -> None:
    result = scan(shared_data / "multivendor")
    counts = {str(p.folder.relative_to(shared_data / "multivendor")): p.files for p in result.participants}
    assert counts["siemens_prisma_t1_fl2d_sag_35sl"] == 35
    assert counts["ge_signa_pioneer_3d_t1_mprage_130sl"] == 130
    assert counts["d2n_tiny"] == 16  # four vendors' files of one PatientID: one participant
    assert sum(counts.values()) == 183


@pytest.mark.slow
def test_parallel_read_equals_serial(tmp_path: Path, shared_data: Path) -> None:
    source = shared_data / "head-mri" / "philips_ingenia_elitionx_adni_mprage_1mm" / "dicom"
    for copy in ("a", "b"):
        (tmp_path / copy).mkdir()
        for f in source.iterdir():
            (tmp_path / copy / f.name).symlink_to(f)
    events = []
    parallel = drain(scan_events(tmp_path, workers=2, as_participant=True), events.append)
    serial = scan(tmp_path, workers=1, as_participant=True)
    assert parallel == serial
    (series,) = list(parallel.participants[0].series())
    assert len(series.files) == 340
    assert isinstance(events[0], StepStarted) and isinstance(events[-1], StepFinished)
    progress = [e for e in events if isinstance(e, StepProgress)]
    assert progress[-1].done == progress[-1].total == 340
    # from a worker thread (as in the app) the pool must not fork a threaded process: forkserver
    in_thread: list = []
    worker = threading.Thread(target=lambda: in_thread.append(scan(tmp_path, workers=2, as_participant=True)))
    worker.start()
    worker.join(timeout=120)
    assert in_thread == [serial]


def test_events_carry_no_folder_names(corpus: Path) -> None:
    events = []
    drain(scan_events(corpus / "files"), events.append)
    text = " ".join(str(e) for e in events)
    assert "KANARIENVOGEL" not in text and "MUESSIG" not in text
    assert {type(e) for e in events} >= {StepStarted, StepProgress, StepFinished}


def test_cancel(tmp_path: Path) -> None:
    write_mr(tmp_path / "IM1", "P1", "1.2.1")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(MrishareError, match="cancelled"):
        scan(tmp_path, cancel=cancel)


def test_read_instance_of_a_copied_file(tmp_path: Path, corpus: Path) -> None:
    source = corpus / "files" / C / "QA_0001.dcm"
    shutil.copy(source, tmp_path / "no_extension")
    inst = read_instance(tmp_path / "no_extension")
    assert isinstance(inst, Instance) and inst.patient_id == "" and inst.patient_name == "PHANTOM^QA^WEEKLY"
    assert scan(tmp_path).participants[0].main_patient.patient_id == ""


def test_raw_data_sharing_a_series_uid_is_its_own_series(shared_data: Path) -> None:
    """Philips exports Raw Data Storage under the image series' UID: images and raw data are grouped apart."""
    [p] = scan(shared_data / "realworld/philips_enhanced_with_raw", as_participant=True).participants
    series = list(p.series())
    assert len(series) == 11 and len({s.key for s in series}) == 11
    images = [s for s in series if not s.kind]
    assert [s.frames for s in images] == [40, 240, 212]
    assert all(s.sop_classes == {"1.2.840.10008.5.1.4.1.1.4.1"} for s in images)
    raw = [s for s in series if s.kind == "raw data"]
    assert len(raw) == 8 and {s.series_uid for s in images} <= {s.series_uid for s in raw}


def test_symlinked_participant_folders_are_followed_once(tmp_path: Path) -> None:
    """Issue 18.5: a study folder of symlinks finds its participants; a link loop is named, never followed twice."""
    data = tmp_path / "data"
    for pid in ("S01", "S02"):
        for number in (1, 2, 3):
            write_mr(data / pid / f"IM{number}", pid, f"1.2.3.{pid[-1]}", number)
    study = tmp_path / "study"
    study.mkdir()
    for pid in ("S01", "S02"):
        (study / f"link-{pid}").symlink_to(data / pid, target_is_directory=True)
    (data / "S01" / "up").symlink_to(study, target_is_directory=True)  # a loop back to the study folder
    result = scan(study)
    assert sorted(p.folder.name for p in result.participants) == ["link-S01", "link-S02"]
    assert [p.files for p in result.participants] == [3, 3]
    reasons = {s.path.relative_to(study).as_posix(): s.reason for s in result.skipped}
    assert reasons == {"link-S01/up": "symbolic link to a folder that is read already (loop or second link; "
                                      "not read twice)"}


def test_a_three_plane_localizer_is_no_gap(tmp_path: Path) -> None:
    """Positions are compared within one orientation only: planes at odd offsets are not 'missing slices'."""
    axial, sagittal = "1\\0\\0\\0\\1\\0", "0\\1\\0\\0\\0\\-1"
    # along each file's own normal: 0, 5, 10 (axial) and 40 (sagittal), which one stack would call a gap
    planes = [(axial, "0\\0\\0"), (axial, "0\\0\\5"), (axial, "0\\0\\10"), (sagittal, "-40\\0\\0")]
    for number, (orientation, position) in enumerate(planes, 1):
        write_mr(tmp_path / f"IM{number}", "ID1", "1.2.3.9", number)
        ds = pydicom.dcmread(tmp_path / f"IM{number}")
        ds.ImageOrientationPatient, ds.ImagePositionPatient = orientation.split("\\"), position.split("\\")
        ds.save_as(tmp_path / f"IM{number}")
    [series] = scan(tmp_path, as_participant=True).participants[0].series()
    assert series.problems == []


def test_gaps_in_positions_and_the_declared_count(tmp_path: Path) -> None:
    for number in (1, 2, 3, 5, 6):
        write_mr(tmp_path / f"IM{number}", "ID1", "1.2.3.9", number)
        ds = pydicom.dcmread(tmp_path / f"IM{number}")
        ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0, 0, 2.5 * number]
        ds.ImagesInAcquisition = 7
        ds.save_as(tmp_path / f"IM{number}")
    [series] = scan(tmp_path, as_participant=True).participants[0].series()
    assert [str(p) for p in series.problems] == [
        "gap at slice 4 of 6: 1 slice missing: between IM3 and IM5",
        "the series declares 7 images (ImagesInAcquisition), 5 were read"]
