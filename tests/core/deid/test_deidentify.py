"""The Annex E engine on real corpus files: every depth, every option family, marking, determinism, audit."""

from __future__ import annotations

import io
import json
import logging
import stat
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from tui.core.config import site_secret
from tui.core.deid.audit import read_records
from tui.core.deid.cleaner import DeidContext, deidentify_dataset
from tui.core.deid.deidentify import DeidSettings, deidentify_participant
from tui.core.deid.leakcheck import check_dataset, identifiers_from_datasets
from tui.core.dicom.scan import scan
from tui.core.dicom.uidmap import UidMap
from tui.core.events import StepNote, drain

SECRET = b"s" * 32


@pytest.fixture
def folder_a(shared_data: Path) -> Path:
    return shared_data / "phi-corpus/files/synthetic/KANARIENVOGEL_ADELHEID_19230405"


def _canaries(shared_data: Path) -> list[str]:
    text = (shared_data / "phi-corpus/canary_strings.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _deid(path: Path, options: set[str]) -> tuple[Dataset, Dataset]:
    original = pydicom.dcmread(path, force=True)
    ds = pydicom.dcmread(path, force=True)
    opts = frozenset(options)
    ctx = DeidContext(opts, "subtest", identifiers_from_datasets([original], opts), SECRET, -1000, -7200)
    deidentify_dataset(ds, ctx)
    return original, ds


def test_basic_profile_on_classic_mr(folder_a: Path) -> None:
    original, ds = _deid(folder_a / "01_t1_mprage_sag/IM0001", set())
    assert ds.PatientName == "subtest" and ds.PatientID == "subtest"
    assert not ds.get("PatientBirthDate") and not ds.get("AccessionNumber") and "StudyDate" in ds
    assert not ds.StudyDate and not ds.get("InstitutionName") and "OtherPatientIDsSequence" not in ds
    assert not any(0x6000 <= e.tag.group <= 0x601E for e in ds), "overlay groups must go"
    assert "IconImageSequence" not in ds
    assert not any(e.tag.is_private for e in ds), "private blocks go without rtn_safe_priv"
    uids = UidMap(SECRET)
    assert ds.SOPInstanceUID == uids.remap(original.SOPInstanceUID) == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.StudyInstanceUID == uids.remap(original.StudyInstanceUID)
    assert ds.SOPClassUID == original.SOPClassUID
    assert ds.PixelData == original.PixelData
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert not check_dataset(ds, identifiers_from_datasets([original]))


def test_safe_private_kept_only_with_the_option(folder_a: Path) -> None:
    _, basic = _deid(folder_a / "02_ep2d_diff_enhanced/MR_enhanced_10frames.dcm", set())
    _, safe = _deid(folder_a / "02_ep2d_diff_enhanced/MR_enhanced_10frames.dcm", {"rtn_safe_priv"})
    assert not any(e.tag.is_private for e in basic)
    kept = [e for e in safe if e.tag.is_private]
    creators = {str(e.value) for e in kept if e.tag.element <= 0xFF}
    assert creators == {"SIEMENS MR HEADER"} and len(kept) >= 2
    assert "113111" in {c.CodeValue for c in safe.DeidentificationMethodCodeSequence}


def test_modified_dates_shift_every_depth_and_keep_intervals(folder_a: Path) -> None:
    original, ds = _deid(folder_a / "02_ep2d_diff_enhanced/MR_enhanced_10frames.dcm", {"rtn_long_modif_dates"})
    assert ds.StudyDate and ds.StudyDate != original.StudyDate
    assert ds.StudyTime != original.StudyTime
    frames_before = original.PerFrameFunctionalGroupsSequence
    frames_after = ds.PerFrameFunctionalGroupsSequence
    for before, after in zip(frames_before, frames_after, strict=False):
        old = before.FrameContentSequence[0].get("FrameAcquisitionDateTime")
        new = after.FrameContentSequence[0].get("FrameAcquisitionDateTime")
        if old:
            assert new and new[:8] != old[:8] and new[8:14] != old[8:14]
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    shared = ds.SharedFunctionalGroupsSequence[0].ReferencedImageSequence[0]
    assert shared.ReferencedSOPInstanceUID.startswith("2.25.")


def test_full_dates_keep_dates(folder_a: Path) -> None:
    original, ds = _deid(folder_a / "01_t1_mprage_sag/IM0002", {"rtn_long_full_dates"})
    assert ds.StudyDate == original.StudyDate and ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert not ds.get("PatientBirthDate")


def test_clean_descriptors_remove_names_and_keep_the_rest(folder_a: Path) -> None:
    original, ds = _deid(folder_a / "01_t1_mprage_sag/IM0001", {"clean_desc"})
    assert "Kanarienvogel" in original.StudyDescription
    assert ds.StudyDescription.startswith("MRT Schaedel") and "Kanarienvogel" not in ds.StudyDescription
    assert ds.SeriesDescription.startswith("t1_mprage_sag")


def test_unlisted_free_text_is_scrubbed_and_unlisted_names_emptied(folder_a: Path) -> None:
    path = folder_a / "01_t1_mprage_sag/IM0002"
    original = pydicom.dcmread(path)
    ds = pydicom.dcmread(path)
    ds.DocumentTitle = "Einwilligung MRT Kanarienvogel Adelheid"  # not in E.1-1
    ds.add_new(0x00140104, "PN", "Drossel^Dieter")  # SecondaryReviewerName: an unlisted PN
    ds.add_new(0x00181030, "LO", "t1 for Adelheid")  # ProtocolName: listed (X) for comparison
    ctx = DeidContext(frozenset(), "subtest", identifiers_from_datasets([original]), SECRET)
    report = deidentify_dataset(ds, ctx)
    assert ds.DocumentTitle.strip() == "Einwilligung MRT"
    assert not ds[0x00140104].value
    assert "ProtocolName" not in ds
    assert ("(0042,0010)", "C") in report.changes


def test_structured_report_content_is_dummied_or_cleaned(folder_a: Path) -> None:
    original, basic = _deid(folder_a / "05_report_sr/SR_basic_text.dcm", set())
    assert len(basic.ContentSequence) == 1 and len(basic.ContentSequence[0]) == 0
    _, cleaned = _deid(folder_a / "05_report_sr/SR_basic_text.dcm", {"clean_struct_cont"})
    assert len(cleaned.ContentSequence) == len(original.ContentSequence)
    assert not check_dataset(cleaned, identifiers_from_datasets([original], frozenset({"clean_struct_cont"})))


def _run(folder: Path, out: Path, **settings) -> tuple:
    participant = scan(folder, as_participant=True).participants[0]
    events: list = []
    result = drain(deidentify_participant(participant, out, DeidSettings(**settings)), events.append)
    return result, events


def test_participant_runs_are_deterministic_and_audited(folder_a: Path, tmp_path: Path) -> None:
    first, _ = _run(folder_a, tmp_path / "one")
    second, _ = _run(folder_a, tmp_path / "two")
    assert first.pseudonym == second.pseudonym and first.released
    names = sorted(p.relative_to(tmp_path / "one") for p in first.released)
    assert names == sorted(p.relative_to(tmp_path / "two") for p in second.released)
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert stat.S_IMODE(first.audit_path.stat().st_mode) == 0o600
    records = read_records(first.audit_path)
    assert records[0]["type"] == "run" and records[0]["table_edition"] == "PS3.15 2025e"
    assert records[0]["originals_stored"] is False
    audit_text = first.audit_path.read_text(encoding="utf-8")
    assert "Kanarienvogel" not in audit_text and "KANARIENVOGEL" not in audit_text
    released = [r for r in records if r.get("status") == "released"]
    assert released and all(r["changes"] for r in released)
    reasons = {reason for _, reason in first.quarantined}
    assert "another patient" in reasons
    assert any("BurnedInAnnotation" in r for r in reasons) and any("secondary" in r for r in reasons)


def test_originals_only_when_opted_in(folder_a: Path, tmp_path: Path) -> None:
    result, _ = _run(folder_a, tmp_path / "o", keep_originals_in_audit=True)
    records = read_records(result.audit_path)
    assert records[0]["originals_stored"] is True and "0600" in records[0]["note"]
    assert any("Kanarienvogel" in json.dumps(r.get("originals", {}), ensure_ascii=False) for r in records)


def test_nothing_identifying_in_events_logs_or_errors(shared_data: Path, folder_a: Path, tmp_path: Path) -> None:
    import shutil
    import warnings

    # A copy of participant A plus a file whose invalid values pydicom would quote in a warning.
    folder = tmp_path / "a_copy"
    shutil.copytree(folder_a, folder)
    odd = pydicom.dcmread(folder_a / "01_t1_mprage_sag/IM0002")
    odd.PatientSex = "Kanarienvogel!"
    odd.SOPInstanceUID = "1.2.3.4.5.66"
    odd.file_meta.MediaStorageSOPInstanceUID = odd.SOPInstanceUID
    odd.ImageType = ["ORIGINAL", "PID-CANARY-4711"]
    odd.StudyInstanceUID = odd.StudyInstanceUID + ".KANARIENVOGEL"  # invalid UI: remapping converts it
    odd.save_as(folder / "01_t1_mprage_sag/IM0099")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, events = _run(folder, tmp_path / "a")
            phantom = shared_data / "phi-corpus/files/synthetic/PHANTOM_QA"
            phantom_result, phantom_events = _run(phantom, tmp_path / "c")  # empty PatientID: processed
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue() + "\n".join(repr(e) for e in events + phantom_events)
    text += "\n".join(str(w.message) for w in caught)
    assert phantom_result.released and phantom_result.key_source == "PatientName+PatientBirthDate"
    assert any("empty PatientID: pseudonym derived from the PatientName+PatientBirthDate" in repr(e)
               for e in phantom_events)
    found = [c for c in _canaries(shared_data) if c.lower() in text.lower()]
    assert not found, found
    assert any(isinstance(e, StepNote) for e in events)


def test_empty_patient_id_keys_the_pseudonym_on_name_and_birth_date_else_the_folder(
        shared_data: Path, tmp_path: Path) -> None:
    # Issue 11: a batch user expects an empty PatientID processed with a clear note, not stopped.
    phantom = shared_data / "phi-corpus/files/synthetic/PHANTOM_QA"
    first, events = _run(phantom, tmp_path / "one")
    again, _ = _run(phantom, tmp_path / "two")
    assert first.released and first.key_source == "PatientName+PatientBirthDate"
    assert first.pseudonym == again.pseudonym, "the derived key is stable"
    assert any(isinstance(e, StepNote) and "pseudonym derived from the PatientName+PatientBirthDate" in e.message
               for e in events)
    audit = [json.loads(line) for line in first.audit_path.read_text().splitlines()]
    assert any(r.get("pseudonym_key") == "PatientName+PatientBirthDate" for r in audit)
    nameless = tmp_path / "src" / "folder_x"
    nameless.mkdir(parents=True)
    ds = pydicom.dcmread(next(phantom.iterdir()))
    ds.PatientName = ""
    ds.save_as(nameless / "IM1")
    other, _ = _run(nameless, tmp_path / "three")
    assert other.released and other.key_source == "participant folder name"
    assert other.pseudonym != first.pseudonym


def test_leak_gate_holds_back_what_the_profile_kept(folder_a: Path, tmp_path: Path) -> None:
    # A safe private element (kept by rtn_safe_priv) that carries the PatientID digits: the profile
    # keeps numeric private values, the gate must notice and hold the file back.
    source = tmp_path / "src" / "p"
    source.mkdir(parents=True)
    ds = pydicom.dcmread(folder_a / "01_t1_mprage_sag/IM0002")
    ds.PatientID = "98765432"
    block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    block.add_new(0x0C, "IS", "98765432")
    ds.save_as(source / "IM1")
    result, events = _run(source, tmp_path / "out", options=frozenset({"rtn_safe_priv"}))
    assert not result.released and result.leaks
    assert {leak.kind for leak in result.leaks} >= {"PatientID"}
    reason = next(r for _, r in result.quarantined if r.startswith("leak gate"))
    assert "PatientID" in reason and "98765432" not in reason
    assert not any("98765432" in repr(e) for e in events)
    assert site_secret()  # the run used this home's secret
    held = [e.message for e in events if isinstance(e, StepNote) and e.message.startswith("leak gate:")]
    assert len(held) == 1 and held[0].startswith("leak gate: PatientID in raw bytes: ") and held[0].endswith("(blocks)")
    audit = [json.loads(line) for line in result.audit_path.read_text().splitlines()]
    (finding,) = [f for r in audit for f in r.get("findings", ())]
    assert finding["kind"] == "PatientID" and finding["where"].startswith("bytes @") and finding["blocks"]
    # An operator who judges that value harmless releases it, for this value only, and the audit says so.
    again, events = _run(source, tmp_path / "again", options=frozenset({"rtn_safe_priv"}),
                         release_values=("PatientID=98765432",))
    assert again.released and not again.leaks
    audit = [json.loads(line) for line in again.audit_path.read_text().splitlines()]
    assert any(r.get("released_by_operator") == ["PatientID"] for r in audit)
    assert not any("98765432" in json.dumps(r) for r in audit), "the value itself only with opted-in originals"
    assert any("released by the operator: PatientID" in e.message for e in events if isinstance(e, StepNote))


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
def test_spliced_output_equals_a_full_rewrite(folder_a: Path, tmp_path: Path, syntax: str) -> None:
    from pydicom.uid import UID

    from tui.core.deid.cleaner import context_for
    from tui.core.deid.deidentify import FileJob, process_file

    source = tmp_path / "in.dcm"
    ds = pydicom.dcmread(folder_a / "01_t1_mprage_sag/IM0002")
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.save_as(source, implicit_vr=syntax == "1.2.840.10008.1.2", little_endian=True)
    ctx = context_for([pydicom.dcmread(source)], frozenset({"rtn_long_modif_dates", "clean_desc"}))
    outcome = process_file(FileJob(source, Path("sub/01/0001.dcm")), ctx, tmp_path / "out", frozenset({"MR"}))
    assert outcome.status == "released", outcome.reason
    written = pydicom.dcmread(outcome.target)
    expected = pydicom.dcmread(source)
    deidentify_dataset(expected, ctx)
    expected.save_as(tmp_path / "full.dcm", enforce_file_format=True)
    assert written.file_meta.TransferSyntaxUID == syntax
    assert written == pydicom.dcmread(tmp_path / "full.dcm")
    assert written.PixelData == pydicom.dcmread(source).PixelData


def test_cancel_stops_the_run(folder_a: Path, tmp_path: Path) -> None:
    import threading

    from tui.core.errors import MrishareError

    participant = scan(folder_a, as_participant=True).participants[0]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(MrishareError, match="cancelled"):
        drain(deidentify_participant(participant, tmp_path / "out", DeidSettings(), cancel))
    assert not (tmp_path / "out").exists()


def test_dummy_sequences_keep_only_remapped_references() -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR: the PPS reference is Type 1C there
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"
    item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.19230405.9"
    item.PerformedProcedureStepDescription = "Kanarienvogel"
    ds.ReferencedPerformedProcedureStepSequence = [item]
    ctx = DeidContext(frozenset(), "subtest", identifiers_from_datasets([ds]), SECRET)
    deidentify_dataset(ds, ctx)
    (kept,) = ds.ReferencedPerformedProcedureStepSequence
    assert set(kept.dir()) == {"ReferencedSOPClassUID", "ReferencedSOPInstanceUID"}
    assert kept.ReferencedSOPInstanceUID == UidMap(SECRET).remap("1.2.826.0.1.3680043.8.498.19230405.9")
