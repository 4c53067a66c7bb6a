"""Pseudonym schemes, padding, the ADIT rule, the CSV batch file and the 0600 mapping file."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from tui.core.deid.pseudonym import (
    Pseudonymizer,
    adit_pseudonym,
    adit_upload_pseudonym,
    mapping_path,
    parse_scheme,
    record_mapping,
)
from tui.core.errors import MrishareError

SECRET = b"k" * 32


def test_keyed_is_readable_stable_keyed_and_strips_padding() -> None:
    keyed = Pseudonymizer(parse_scheme("keyed"), SECRET)
    value = keyed.pseudonym("PID-CANARY-4711")
    assert value.startswith("sub") and len(value) == 13 and value.isalnum()
    assert keyed.pseudonym("PID-CANARY-4711 ") == value == keyed.pseudonym("PID-CANARY-4711\x00")
    assert Pseudonymizer(parse_scheme("keyed"), b"j" * 32).pseudonym("PID-CANARY-4711") != value
    assert "4711" not in value


def test_adit_matches_the_published_rule() -> None:
    # Recomputed independently from ADIT's description: sha256(seed + id), base-36 digits LSB first.
    number = int.from_bytes(hashlib.sha256(b"salt" + b"PID-CANARY-4711").digest(), "big")
    expected = ""
    for _ in range(14):
        number, index = divmod(number, 36)
        expected += "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[index]
    assert adit_pseudonym("salt", "PID-CANARY-4711") == expected
    assert Pseudonymizer(parse_scheme("adit:salt"), SECRET).pseudonym("PID-CANARY-4711  ") == expected


@pytest.mark.parametrize("scheme", ["keyed", "adit:salt"])
def test_empty_patient_id_is_a_clear_error(scheme: str) -> None:
    with pytest.raises(MrishareError, match="empty PatientID"):
        Pseudonymizer(parse_scheme(scheme), SECRET).pseudonym("  \x00")


def test_fixed_and_csv(tmp_path: Path) -> None:
    assert Pseudonymizer(parse_scheme("fixed:QA01"), SECRET).pseudonym("") == "QA01"
    table = tmp_path / "map.csv"
    table.write_text("PatientID,pseudonym\nPID-CANARY-4711,P001\nPID-CANARY-0815,P002\n")
    batch = Pseudonymizer(parse_scheme(f"csv:{table}"), SECRET)
    assert batch.pseudonym("PID-CANARY-0815 ") == "P002"
    with pytest.raises(MrishareError) as error:
        batch.pseudonym("PID-SECRET-9")
    assert "PID-SECRET-9" not in str(error.value)


@pytest.mark.parametrize("spec", ["nope", "keyed:x", "adit", "fixed:../x", "fixed:a b", "csv:"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(MrishareError):
        parse_scheme(spec)


def test_mapping_file_is_private_deduplicated_and_refuses_collisions() -> None:
    scheme = parse_scheme("keyed")
    record_mapping(scheme, "PID-CANARY-4711 ", "subaaaa")
    record_mapping(scheme, "PID-CANARY-4711", "subaaaa")
    path = mapping_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().count("PID-CANARY-4711") == 1
    with pytest.raises(MrishareError, match="same pseudonym"):
        record_mapping(scheme, "PID-OTHER", "subaaaa")


# Test vectors computed outside the code, with OpenSSL on the padded text:
#   printf '%-64s%-64s' 'Neuroradiologie' 'PID-CANARY-4711' | openssl dgst -sha3-256
UPLOAD_VECTOR = "d7f711ef0fbc278fb814b0dd0b34a7b881615e7b0a7429c6c1dac542c53c383a"
#   printf '%-64s%-64s' 'Neuroradiologie' '12343@hucheng' | openssl dgst -sha3-256   (the XA30 series' PatientID)
UPLOAD_XA30 = "a3b9a4098bdeae6caa0a1064bb49649b82791f670d2814dc1a0e3d6fc596c1ef"


def test_adit_upload_matches_an_independent_vector_and_strips_padding() -> None:
    assert adit_upload_pseudonym("Neuroradiologie", "PID-CANARY-4711") == UPLOAD_VECTOR
    names = Pseudonymizer(parse_scheme("adit-upload:Neuroradiologie"), SECRET)
    assert names.pseudonym("PID-CANARY-4711 \x00") == UPLOAD_VECTOR
    assert names.pseudonym("PID-CANARY-4712") != UPLOAD_VECTOR
    assert Pseudonymizer(parse_scheme("adit-upload:Radiologie"), SECRET).pseudonym("PID-CANARY-4711") != UPLOAD_VECTOR


@pytest.mark.parametrize(("spec", "message"), [("adit-upload:", "DEPARTMENT"), ("adit-upload:   ", "empty"),
                                               ("adit-upload:" + "x" * 65, "65 characters")])
def test_adit_upload_department_must_be_1_to_64_characters(spec: str, message: str) -> None:
    with pytest.raises(MrishareError, match=message):
        parse_scheme(spec)
    assert len(adit_upload_pseudonym("x" * 64, "1")) == 64


def test_adit_upload_names_the_real_series_its_folder_and_files(shared_data: Path, tmp_path: Path) -> None:
    import pydicom

    from tui.core.deid.deidentify import DeidSettings, deidentify_participant
    from tui.core.dicom.scan import scan
    from tui.core.events import drain

    folder = shared_data / "head-mri/siemens_prisma_xa30_mprage_2mm"
    participant = scan(folder, as_participant=True).participants[0]
    result = drain(deidentify_participant(participant, tmp_path, DeidSettings(pseudonym="adit-upload:Neuroradiologie",
                                                                               workers=1)))
    assert result.pseudonym == UPLOAD_XA30 and len(result.released) == 1
    assert {p.relative_to(tmp_path).parts[0] for p in result.released} == {UPLOAD_XA30}
    ds = pydicom.dcmread(result.released[0])
    assert ds.PatientID == UPLOAD_XA30 and str(ds.PatientName) == UPLOAD_XA30
    assert ds.data_element("PatientName").VR == "PN" and "^" not in str(ds.PatientName)
