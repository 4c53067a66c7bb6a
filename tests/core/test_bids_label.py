"""BIDS labels from pseudonyms: no doubled 'sub' in package and file names."""

from __future__ import annotations

import pytest

from tui.core.errors import MrishareError
from tui.core.pipeline import bids_label


@pytest.mark.parametrize(("pseudonym", "label"), [
    ("sub7j7ppitd2a", "7j7ppitd2a"),  # keyed: 'sub' + 10 base32 characters
    ("sub-001", "001"),
    ("sub_P7", "P7"),
    ("subject01", "subject01"),  # a word that starts with 'sub' keeps it
    ("P-0042", "P0042"),
])
def test_label_drops_the_sub_the_entity_adds(pseudonym: str, label: str) -> None:
    assert bids_label(pseudonym) == label


def test_nothing_left_is_an_error() -> None:
    with pytest.raises(MrishareError):
        bids_label("sub-")
