"""Fixtures for cloud-processing tests (issue 14): a processing folder of its own on the real Nextcloud.

tests/conftest.py makes them available to every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nextcloud_server import NextcloudServer

from tui.core.credentials import load_credentials
from tui.core.delivery.jobs import JobFolder, new_job_id
from tui.core.delivery.processing import job_folder


@pytest.fixture
def creds_path(nextcloud: NextcloudServer, tmp_path: Path) -> Path:
    """credentials.json of the test user with a processing folder no other test uses."""
    return nextcloud.credentials(tmp_path, processing_path=f"proc-{new_job_id()[:8]}")


@pytest.fixture
def folder(creds_path: Path) -> Iterator[JobFolder]:
    """That processing folder, prepared (inbox, running, outbox)."""
    jobs = job_folder(load_credentials(creds_path))
    jobs.prepare()
    yield jobs
    jobs.store.close()
