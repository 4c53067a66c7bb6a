"""Quarantine rules on real corpus files, and the local quarantine folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pydicom
import pytest

from tui.core.quarantine import QuarantineStore, quarantine_reason

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
