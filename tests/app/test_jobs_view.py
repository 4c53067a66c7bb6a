"""The ledger screen follows processing jobs (issue 14): live status while one is queued or running, `J` to
refresh and fetch. Real Nextcloud, a real `mrishare worker` process, the real demo pipeline."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nextcloud_server import XDIST_GROUP

import tui.app.app as app_module
from tests.app.conftest import NOW, SIZE
from tests.app.pilot_helpers import settle
from tui.app.app import TuiApp
from tui.app.services import Services
from tui.core.childproc import child_env
from tui.core.credentials import load_credentials
from tui.core.delivery.jobs import INBOX, JobFolder, new_job_id
from tui.core.delivery.ledger import Ledger, LedgerRow
from tui.core.delivery.processing import job_files
from tui.core.events import drain
from tui.core.pipeline import PipelineSettings

pytestmark = [XDIST_GROUP, pytest.mark.slow]
DEMO = f"atlas={sys.executable} -m tui.demo_pipelines.brainmask_stats {{inputs}} {{outdir}}"


def queued_row(folder: JobFolder, shared_data: Path, ledger: Path) -> str:
    t1 = shared_data / "head-mri/siemens_prisma_xa30_mprage_2mm/nifti/anat-T1w_acq-tfl_dicom2nifti.nii.gz"
    job, files = job_files(new_job_id(), "atlas", "AB12CD", [(t1, "t1")])
    drain(folder.submit(job, files))
    with Ledger.open(ledger) as book:
        book.upsert(LedgerRow(id="s1", participant="p1", destination="processing:atlas", status="uploaded",
                              remote_path=f"{INBOX}/{job.id}", job="queued"))
        book.save()
    return job.id


def make_app(creds_path: Path, ledger: Path, tmp_path: Path) -> TuiApp:
    settings = PipelineSettings(destination="processing:atlas", work_dir=tmp_path / "work",
                                credentials=load_credentials(creds_path))
    return TuiApp(Services(ledger_path=ledger, clock=lambda: NOW, settings=settings))


@pytest.fixture
def worker(creds_path: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "tui", "worker", "--credentials", str(creds_path), "--state",
                             str(tmp_path / "worker"), "--poll", "0.3", "--pipeline", DEMO],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
    yield proc
    proc.terminate()
    proc.wait(30)


def status_of(app: TuiApp) -> str:
    (entry,) = app.ledger_screen.entries
    return entry.status


async def test_live_status_turns_done_and_the_result_is_fetched(creds_path: Path, folder: JobFolder, shared_data: Path,
                                                                 tmp_path: Path, mrishare_home: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, worker) -> None:
    ledger = tmp_path / "ledger.xlsx"
    job_id = await asyncio.to_thread(queued_row, folder, shared_data, ledger)  # nc-py-api runs its own loop
    monkeypatch.setattr(app_module, "JOBS_POLL_SECONDS", 0.5)
    app = make_app(creds_path, ledger, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        seen = {status_of(app)}
        deadline = time.monotonic() + 90
        while status_of(app) != "job done" and time.monotonic() < deadline:
            await pilot.pause(0.3)
            seen.add(status_of(app))
        assert status_of(app) == "job done", seen
        assert seen <= {"job queued", "job running", "job done"}
        got = mrishare_home / "data" / "results" / "p1" / job_id
        assert (got / "stats.json").is_file() and (got / "result.json").is_file()
        assert str(app.ledger_screen.query_one("#ledger-detail").render()) == f"job done: {got}"


async def test_j_refreshes_and_says_what_it_found(creds_path: Path, folder: JobFolder, shared_data: Path,
                                                  tmp_path: Path, worker) -> None:
    ledger = tmp_path / "ledger.xlsx"
    job_id = await asyncio.to_thread(queued_row, folder, shared_data, ledger)  # nc-py-api runs its own loop
    deadline = time.monotonic() + 90
    while await asyncio.to_thread(folder.state, job_id) != "done":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.3)
    app = make_app(creds_path, ledger, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert status_of(app) == "job queued"  # the ledger does not know yet
        await pilot.press("J")
        await app.workers.wait_for_complete()
        await pilot.pause(0.5)
        await settle(app, pilot)
        assert status_of(app) == "job done"
        assert [n.message for n in app._notifications] == ["1 job: 1 done"]
