"""Shared fixtures: the project lead's data in ../shared/data and an isolated MRISHARE_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nextcloud_server import nextcloud, nextcloud_session  # noqa: F401  (the real Nextcloud, for every test folder)
from processing_fixtures import creds_path, folder  # noqa: F401  (a processing folder on it: the job tests)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MRISHARE_SHARED", REPO.parent / "shared")).resolve()
DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; tests that need it fail loudly if it is missing."""
    assert DATA.is_dir(), f"shared test data not found at {DATA} (set MRISHARE_SHARED)"
    return DATA


@pytest.fixture(autouse=True)
def mrishare_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config/data home so nothing touches the user's real files."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MRISHARE_HOME", str(home))
    return home
