"""Fixtures shared by the defacing and face-check tests: the two real heads, processed once."""

from __future__ import annotations

from pathlib import Path

import pytest
from heads import HEADS


@pytest.fixture(scope="session")
def processed_heads(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """(head, mode) -> DefaceResult: each head refaced (one registration each), then defaced with it."""
    from tui.core.events import drain
    from tui.core.nifti.deface import apply_to_other, deface

    out = tmp_path_factory.mktemp("heads")
    results = {}
    for name, rel in HEADS.items():
        source = shared_data / rel
        reface = drain(deface(source, out / f"{name}_reface.nii.gz", "reface"))
        results[(name, "reface")] = reface
        results[(name, "deface")] = drain(apply_to_other(reface, source, out / f"{name}_deface.nii.gz", mode="deface"))
    return results
