"""UID remapping is deterministic, keyed, valid and leaves standard UIDs alone."""

from __future__ import annotations

import re

from pydicom.uid import UID

from tui.core.dicom.uidmap import UidMap

ORIGINAL = "1.2.826.0.1.3680043.8.498.19230405.4711.20230405101500.1.1"


def test_same_secret_same_uid_across_instances() -> None:
    assert UidMap(b"k" * 32).remap(ORIGINAL) == UidMap(b"k" * 32).remap(ORIGINAL)


def test_different_secret_different_uid() -> None:
    assert UidMap(b"k" * 32).remap(ORIGINAL) != UidMap(b"j" * 32).remap(ORIGINAL)


def test_new_uid_is_valid_2_25_and_hides_the_original() -> None:
    new = UidMap(b"k" * 32).remap(ORIGINAL)
    assert re.fullmatch(r"2\.25\.[1-9][0-9]*", new)
    assert len(new) <= 64 and UID(new).is_valid
    assert "19230405" not in new and "4711" not in new


def test_padding_is_ignored_and_standard_uids_pass() -> None:
    uids = UidMap(b"k" * 32)
    assert uids.remap(ORIGINAL + "\x00") == uids.remap(ORIGINAL)
    assert uids.remap("1.2.840.10008.5.1.4.1.1.4") == "1.2.840.10008.5.1.4.1.1.4"
    assert uids.remap("") == ""


def test_distinct_inputs_distinct_outputs() -> None:
    uids = UidMap(b"k" * 32)
    out = {uids.remap(f"1.2.3.{i}") for i in range(2000)}
    assert len(out) == 2000
