"""Cloud processing end to end (issue 14): `mrishare share --dest processing:atlas`, a `mrishare worker` process,
`mrishare jobs --fetch`, all against the real Nextcloud, with a real head scan from ../shared/data."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from nextcloud_server import XDIST_GROUP, NextcloudServer

from tui.cli import main
from tui.core.childproc import child_env
from tui.core.credentials import load_credentials
from tui.core.delivery.jobs import INBOX, OUTBOX, Job, new_job_id
from tui.core.delivery.ledger import Ledger, LedgerRow
from tui.core.delivery.processing import job_files, job_folder
from tui.core.events import drain

pytestmark = [XDIST_GROUP, pytest.mark.slow]
HEAD = "head-mri/siemens_prisma_xa30_mprage_2mm"
DEMO = f"atlas={sys.executable} -m tui.demo_pipelines.brainmask_stats {{inputs}} {{outdir}}"


def run(*argv: str) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = main(list(argv))
    return code, printed.getvalue()


def worker(creds: Path, state: Path, pipeline: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tui", "worker", "--credentials", str(creds), "--state",
                             str(state), "--poll", "0.3", "--pipeline", pipeline],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())


def jobs_until(state: str, *argv: str, timeout: float = 90) -> tuple[int, str]:
    """`mrishare jobs ARGV` until its line shows `state`."""
    deadline = time.monotonic() + timeout
    while True:
        code, out = run("jobs", *argv)
        if f"  {state}" in out or time.monotonic() > deadline:
            return code, out
        time.sleep(0.5)


@pytest.fixture
def creds(nextcloud: NextcloudServer, tmp_path: Path) -> Path:
    return nextcloud.credentials(tmp_path, processing_path=f"proc-{new_job_id()[:8]}")


def test_share_for_processing_worker_runs_result_fetched_ledger_done(creds: Path, tmp_path: Path,
                                                                     shared_data: Path) -> None:
    ledger, results = tmp_path / "ledger.xlsx", tmp_path / "results"
    scans = shared_data / HEAD / "dicom"
    started = time.monotonic()
    code, out = run("share", str(scans), "--dest", "processing:atlas", "--credentials", str(creds),
                    "--ledger", str(ledger), "--preset", "research", "--deface", "deface", "--workers", "1")
    assert code == 0, out
    submitted = time.monotonic()
    with Ledger.open(ledger) as book:
        (row,) = book.rows()
    assert row.status == "uploaded" and row.job == "queued" and row.remote_path.startswith(f"{INBOX}/")
    job_id = row.remote_path.rsplit("/", 1)[1]
    folder = job_folder(load_credentials(creds))
    folder.store.download(f"{INBOX}/{job_id}/job.json", tmp_path / "job.json")
    job = Job.from_json((tmp_path / "job.json").read_bytes(), "job.json")
    assert job.pipeline == "atlas" and job.pseudonym == row.pseudonym
    assert [f.role for f in job.inputs] == ["t1", "sidecar"]
    header = pydicom.dcmread(next(p for p in sorted(scans.rglob("*")) if p.is_file()), stop_before_pixels=True)
    text = (tmp_path / "job.json").read_text()
    for value in (header.PatientName, header.PatientID, header.StudyDate, header.StudyInstanceUID, scans.parent.name):
        assert str(value) and str(value) not in text

    proc = worker(creds, tmp_path / "worker", DEMO)
    try:
        code, out = jobs_until("done", "--credentials", str(creds), "--ledger", str(ledger), "--fetch",
                               "--results", str(results))
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    fetched = time.monotonic()
    assert code == 0 and f"{row.id}" in out and "  done  " in out, out
    got = results / row.participant / job_id
    stats = json.loads((got / "stats.json").read_text())
    assert 800 < stats[0]["mask_volume_ml"] < 3000  # a head, in millilitres
    assert json.loads((got / "result.json").read_text())["status"] == "done"
    with Ledger.open(ledger) as book:
        (row,) = book.rows()
    assert row.job == f"done: {got}"
    print(f"round trip: share {submitted - started:.1f} s, worker + fetch {fetched - submitted:.1f} s")

    code, out = run("share", str(scans), "--dest", "processing:atlas", "--credentials", str(creds),
                    "--ledger", str(ledger), "--preset", "research", "--deface", "deface")
    assert code == 0, out  # a finished run is not submitted again
    assert folder.jobs_in(INBOX) == [] and folder.jobs_in(OUTBOX) == [job_id]
    folder.store.close()


def test_processing_refuses_images_with_faces(creds: Path, tmp_path: Path, shared_data: Path) -> None:
    code, out = run("share", str(shared_data / HEAD / "dicom"), "--dest", "processing:atlas", "--credentials",
                    str(creds), "--ledger", str(tmp_path / "ledger.xlsx"))
    assert code == 1 and "a processing job sends defaced images only" in out


def test_jobs_shows_a_failed_jobs_reason_and_log(creds: Path, tmp_path: Path, shared_data: Path) -> None:
    folder = job_folder(load_credentials(creds))
    folder.prepare()
    t1 = shared_data / HEAD / "nifti/anat-T1w_acq-tfl_dicom2nifti.nii.gz"
    job, files = job_files(new_job_id(), "atlas", "AB12CD", [(t1, "t1")])
    drain(folder.submit(job, files))
    ledger = tmp_path / "ledger.xlsx"
    with Ledger.open(ledger) as book:
        book.upsert(LedgerRow(id="s1", participant="p1", destination="processing:atlas",
                              remote_path=f"{INBOX}/{job.id}", status="uploaded", job="queued"))
        book.save()
    failing = (f"atlas={sys.executable} -c 'print(\"no brain found in slab\"); raise SystemExit(4)' "
               "{inputs} {outdir}")
    proc = worker(creds, tmp_path / "worker", failing)
    try:
        code, out = jobs_until("failed", "--credentials", str(creds), "--ledger", str(ledger))
    finally:
        proc.terminate()
        proc.wait(30)
    assert code == 1, out
    assert "s1  p1  atlas  failed" in out and "the command exited with code 4" in out
    assert "| no brain found in slab" in out
    with Ledger.open(ledger) as book:
        row = book.get("s1")
    assert row is not None and row.job.startswith("failed: ")
    assert row.note == "job failed: the command exited with code 4"
    folder.store.close()
