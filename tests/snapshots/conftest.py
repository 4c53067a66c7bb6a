"""The app tests' fixtures (fixed ledger, clock, site secret), plus a demo study at a fixed path."""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.app.conftest import fixed_site_secret, ledger_path, make_app, settings  # noqa: F401
from tui.core.demo import make_demo_study
from tui.core.events import drain


@pytest.fixture(scope="session")
def demo_study() -> Path:
    """The demo study at a fixed path: participant keys hash the folder path, and the pictures show them.

    Written once per test run: xdist workers share the path, so the first one writes it under a lock and the
    others reuse it (two writing at once, or one rewriting while another reads, broke tests at random).
    """
    out = Path(tempfile.gettempdir()) / "mrishare-snapshot-demo"
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
    stamp = out.with_name(out.name + ".run")
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != run:
            drain(make_demo_study(out, participants=2, seed=0))
            stamp.write_text(run)
    return out
