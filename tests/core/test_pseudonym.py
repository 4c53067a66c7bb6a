"""Pseudonym schemes, padding, the ADIT rule, the CSV batch file and the 0600 mapping file."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from tui.core.errors import MrishareError
from tui.core.pseudonym import (
    Pseudonymizer,
    adit_pseudonym,
    mapping_path,
    parse_scheme,
    record_mapping,
)

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
