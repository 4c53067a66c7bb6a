"""The app tests' fixtures (fixed ledger, clock, site secret), plus a demo study at a fixed path."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.app.conftest import fixed_site_secret, ledger_path, make_app, settings  # noqa: F401
from tui.core.demo import make_demo_study
from tui.core.events import drain


@pytest.fixture(scope="session")
def demo_study() -> Path:
    """The demo study at a fixed path: participant keys hash the folder path, and the pictures show them."""
    out = Path(tempfile.gettempdir()) / "mrishare-snapshot-demo"
    drain(make_demo_study(out, participants=2, seed=0))
    return out
