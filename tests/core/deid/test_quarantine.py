"""Quarantine rules on real corpus files, and the local quarantine folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pydicom
import pytest

from tests.protocol_pages import copy_with_protocol_page
from tui.core.deid.quarantine import QuarantineStore, quarantine_reason

MR = frozenset({"MR"})


@pytest.fixture
def files(shared_data: Path) -> Path:
    return shared_data / "phi-corpus/files"


A = "synthetic/KANARIENVOGEL_ADELHEID_19230405/"


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        (A + "03_localizer_screensave/SC_burned_in_YES.dcm", (), "BurnedInAnnotation"),
        (A + "04_mpr_capture_no_flag/MR_burned_in_flag_missing.dcm", (), "secondary"),
        (A + "05_report_sr/SR_basic_text.dcm", (), "structured report"),
        (A + "06_consent_pdf/DOC_encapsulated_pdf.dcm", (), "BurnedInAnnotation"),
        ("found/deid-data/humans/ctbrain1.dcm", (), "secondary capture"),
        ("found/deid-data/ultrasounds/GREYSCALE_IMAGE.dcm", (), "BurnedInAnnotation"),
        (A + "01_t1_mprage_sag/IM0001", (), None),
        (A + "05_report_sr/SR_basic_text.dcm", ("clean_struct_cont",), None),
    ],
)
def test_rules(files: Path, name: str, options: tuple[str, ...], expected: str | None) -> None:
    reason = quarantine_reason(pydicom.dcmread(files / name, stop_before_pixels=True), MR, options)
    assert (reason is None) if expected is None else (expected in reason)


def test_pdf_without_burned_in_flag_is_still_a_document(files: Path) -> None:
    ds = pydicom.dcmread(files / A / "06_consent_pdf/DOC_encapsulated_pdf.dcm")
    del ds.BurnedInAnnotation
    assert "encapsulated PDF" in quarantine_reason(ds, MR, ())


def test_modality_allow_list(files: Path) -> None:
    ds = pydicom.dcmread(files / A / "01_t1_mprage_sag/IM0002")
    ds.Modality = "CT"
    assert "modality CT" in quarantine_reason(ds, MR, ())
    assert quarantine_reason(ds, frozenset({"MR", "CT"}), ()) is None
    ds.Modality = ""
    assert quarantine_reason(ds, MR, ()) == "no Modality"


def test_store_copies_unchanged_with_reason_and_private_modes(files: Path, tmp_path: Path) -> None:
    source = files / A / "07_misfiled_other_patient/IM0001.dcm"
    store = QuarantineStore(tmp_path / "q", "run1")
    first = store.put(source, "another patient", "p-123")
    second = store.put(source, "another patient", "p-123")
    assert first.name == "0001.dcm" and second.name == "0002.dcm"
    assert first.read_bytes() == source.read_bytes()
    assert first.with_suffix(".reason.txt").read_text() == "another patient\n"
    assert stat.S_IMODE(first.stat().st_mode) == 0o600 and stat.S_IMODE(first.parent.stat().st_mode) == 0o700
    assert "KANARIENVOGEL" not in str(first) and "IM0001" not in str(first)


def test_default_folder_is_local_data(files: Path) -> None:
    store = QuarantineStore(run_id="r")
    assert store.root.parts[-2:] == ("quarantine", "r") and "data" in store.root.parts


# -- protocol/report pages (dicom-anon's rule): a real series re-described, placed among real images ----------

@pytest.fixture
def with_protocol_page(shared_data: Path, tmp_path: Path) -> Path:
    return copy_with_protocol_page(shared_data, tmp_path / "participant")


def test_protocol_page_matches_the_list_case_insensitively() -> None:
    from tui.core.deid.quarantine import protocol_page

    assert protocol_page("PATIENT protocol ") == "Patient Protocol"
    assert protocol_page("phoenixzipreport\x00") == "PhoenixZIPReport"
    assert protocol_page("t1_mprage_sag") is None and protocol_page("") is None and protocol_page(None) is None
    assert protocol_page("Patient Protocol", ("Dose Report",)) is None


def test_protocol_page_series_is_quarantined_among_real_images(with_protocol_page: Path, tmp_path: Path) -> None:
    from tui.core.deid.deidentify import DeidSettings, deidentify_participant
    from tui.core.dicom.scan import scan
    from tui.core.events import drain

    participant = scan(with_protocol_page, as_participant=True).participants[0]
    result = drain(deidentify_participant(participant, tmp_path / "out", DeidSettings(workers=1)))
    assert len(result.released) == 42 and len(result.quarantined) == 2
    assert {reason for _, reason in result.quarantined} == {
        "protocol/report page (SeriesDescription 'Patient Protocol' is on the withheld list: text in the pixels)"}
    for copy, _ in result.quarantined:
        assert pydicom.dcmread(copy).SeriesDescription == "PATIENT protocol"  # unchanged copy, held locally
    # the list is the user's: without the entry the same files are released (they are real MR images)
    edited = drain(deidentify_participant(participant, tmp_path / "out2",
                                          DeidSettings(workers=1, protocol_pages=("Dose Report",))))
    assert len(edited.released) == 44 and not edited.quarantined


def test_scan_says_why_the_series_is_withheld(with_protocol_page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tui.cli import main

    assert main(["scan", str(with_protocol_page), "--participant"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # the console may wrap the line
    assert text.count("WITHHELD") == 1 and "#99 MR PATIENT protocol" in text
    assert "WITHHELD: protocol/report page (SeriesDescription 'Patient Protocol' is on the withheld list" in text
    assert main(["scan", str(with_protocol_page), "--participant", "--json"]) == 0
    series = [s for p in json.loads(capsys.readouterr().out)["participants"] for pat in p["patients"]
              for st in pat["studies"] for s in st["series"]]
    assert [s["number"] for s in series if s["withheld"]] == [99]
    assert all("protocol/report page" in s["withheld"] for s in series if s["withheld"])
