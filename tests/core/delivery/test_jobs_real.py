"""Cloud processing (issue 14) against the real Nextcloud 29 of ../shared/nextcloud-server.

Workers run as real `mrishare worker` processes (python -m tui) polling the server; the inputs are the
real NIfTI of ../shared/data/head-mri. A job command that counts its runs in a file proves "run once".
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from nextcloud_server import XDIST_GROUP, NextcloudServer

from tui.core.childproc import child_env
from tui.core.delivery.jobs import INBOX, OUTBOX, RUNNING, JobFolder, new_job_id
from tui.core.delivery.processing import job_files
from tui.core.errors import MrishareError
from tui.core.events import drain

pytestmark = [XDIST_GROUP, pytest.mark.slow]
DEMO = f"{sys.executable} -m tui.demo_pipelines.brainmask_stats {{inputs}} {{outdir}}"
COUNTING = """import os, sys, time, pathlib
pathlib.Path(sys.argv[1]).open("a").write(f"run {os.getpid()}\\n")
time.sleep(float(sys.argv[2]))
pathlib.Path(sys.argv[-1], "done.txt").write_text("ok")
"""


@pytest.fixture
def t1(shared_data: Path) -> Path:
    return shared_data / "head-mri/siemens_prisma_xa30_mprage_2mm/nifti/anat-T1w_acq-tfl_dicom2nifti.nii.gz"


def submit(folder: JobFolder, image: Path, pipeline: str = "atlas") -> str:
    job, files = job_files(new_job_id(), pipeline, "AB12CD", [(image, "t1")])
    drain(folder.submit(job, files))
    return job.id


def until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def ended(pid: int) -> bool:
    """The process is gone (or a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


class Workers:
    """`mrishare worker` processes of one test, stopped (SIGTERM, then SIGKILL) at its end."""

    def __init__(self, creds: Path, tmp: Path) -> None:
        self.creds, self.tmp, self.procs = creds, tmp, []  # type: ignore[var-annotated]

    def start(self, state: str, pipeline: str, *extra: str) -> subprocess.Popen[str]:
        log = open(self.tmp / f"{state}.log", "a")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen([sys.executable, "-m", "tui", "worker", "--credentials", str(self.creds),
                                 "--state", str(self.tmp / state), "--poll", "0.3", "--pipeline", pipeline, *extra],
                                stdout=log, stderr=subprocess.STDOUT, text=True, env=child_env())
        self.procs.append(proc)
        return proc

    def log(self, state: str) -> str:
        return (self.tmp / f"{state}.log").read_text()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(creds_path: Path, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(creds_path, tmp_path)
    yield group
    group.stop_all()


def counting(tmp_path: Path, seconds: float) -> tuple[str, Path]:
    script = tmp_path / "counting.py"
    script.write_text(COUNTING)
    runs = tmp_path / "runs.txt"
    return f"atlas={sys.executable} {script} {runs} {seconds} {{inputs}} {{outdir}}", runs


def test_submit_is_whole_or_invisible_and_refused_twice(folder: JobFolder, t1: Path,
                                                        nextcloud: NextcloudServer) -> None:
    job, files = job_files(new_job_id(), "atlas", "AB12CD", [(t1, "t1")])
    delivered = drain(folder.submit(job, files))
    assert delivered.remote_path == f"{INBOX}/{job.id}" and folder.state(job.id) == "queued"
    assert folder.jobs_in(INBOX) == [job.id]
    root = folder.store.root
    assert nextcloud.files(f"{root}/{INBOX}") == [f"{job.id}/{t1.name}", f"{job.id}/job.json"]
    with pytest.raises(MrishareError, match="refusing to submit it twice"):
        drain(folder.submit(job, files))
    assert nextcloud.files(f"{root}/{INBOX}") == [f"{job.id}/{t1.name}", f"{job.id}/job.json"]


def test_worker_runs_the_demo_and_the_result_comes_back_verified(folder: JobFolder, t1: Path, workers: Workers,
                                                                 tmp_path: Path) -> None:
    job_id = submit(folder, t1)
    workers.start("w1", f"atlas={DEMO}")
    until(lambda: folder.state(job_id) == "done")
    result = folder.fetch(job_id, tmp_path / "results" / job_id)
    assert result.status == "done" and result.exit_code == 0 and result.worker
    got = tmp_path / "results" / job_id
    assert sorted(p.name for p in got.iterdir()) == ["anat-T1w_acq-tfl_dicom2nifti_mask.nii.gz", "result.json",
                                                     "stats.json"]
    assert any("mask" in line and "ml" in line for line in result.log_tail)
    assert folder.jobs_in(RUNNING) == [] and folder.jobs_in(INBOX) == []
    # a result file changed on the server after the worker wrote result.json: the fetch refuses it
    folder.store.remove(f"{OUTBOX}/{job_id}/stats.json")
    folder.store.put_bytes(f"{OUTBOX}/{job_id}/stats.json", b"[]")
    with pytest.raises(MrishareError, match="SHA-256 differs"):
        folder.fetch(job_id, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_two_workers_one_job_runs_once(folder: JobFolder, t1: Path, workers: Workers, tmp_path: Path) -> None:
    pipeline, runs = counting(tmp_path, 1.0)
    job_ids = [submit(folder, t1) for _ in range(3)]
    workers.start("w1", pipeline)
    workers.start("w2", pipeline)
    until(lambda: all(folder.state(j) == "done" for j in job_ids), 120)
    assert runs.read_text().count("run") == 3  # three jobs, three runs: none twice
    claims = workers.log("w1").count(": claimed (") + workers.log("w2").count(": claimed (")
    assert claims == 3


def test_worker_killed_mid_job_fails_it_on_restart_and_never_runs_it_again(folder: JobFolder, t1: Path,
                                                                           workers: Workers, tmp_path: Path) -> None:
    pipeline, runs = counting(tmp_path, 30.0)
    job_id = submit(folder, t1)
    first = workers.start("w1", pipeline)
    until(lambda: runs.exists())  # the command is running
    assert folder.state(job_id) == "running"
    first.kill()
    first.wait()
    workers.start("w1", pipeline)  # the same worker (state folder) again
    until(lambda: folder.state(job_id) == "failed")
    result = folder.result(job_id)
    assert "worker stopped" in result.reason and "not run again" in result.reason and result.exit_code is None
    command = int(runs.read_text().split()[1])  # the kill -9 left it running; the restart stopped it
    until(lambda: ended(command), 10)
    assert "its command was still running (1 process(es)); stopped" in workers.log("w1")
    time.sleep(1.5)  # a few polls later: still one run, nothing in running/ or inbox/
    assert runs.read_text().count("run") == 1
    assert folder.jobs_in(RUNNING) == [] and folder.jobs_in(INBOX) == []
    assert "failed: the worker stopped or lost the server while this job ran" in workers.log("w1")


def test_another_workers_running_job_is_left_alone_on_restart(folder: JobFolder, t1: Path, workers: Workers,
                                                             tmp_path: Path) -> None:
    pipeline, runs = counting(tmp_path, 4.0)
    job_id = submit(folder, t1)
    workers.start("w1", pipeline)
    until(lambda: runs.exists())
    other = workers.start("w2", pipeline)  # a second worker starting meanwhile: not its job
    until(lambda: folder.state(job_id) == "done")
    assert "job" not in workers.log("w2").split("\n", 1)[1]
    assert other.poll() is None


def test_failing_command_reports_failed_with_its_log(folder: JobFolder, t1: Path, workers: Workers) -> None:
    job_id = submit(folder, t1)
    failing = f"atlas={sys.executable} -c 'import sys; print(\"registration diverged at level 3\"); sys.exit(3)' " \
              "{inputs} {outdir}"
    workers.start("w1", failing)
    until(lambda: folder.state(job_id) == "failed")
    result = folder.result(job_id)
    assert result.exit_code == 3 and result.reason == "the command exited with code 3"
    assert result.log_tail == ("registration diverged at level 3",) and result.outputs == ()


def test_time_limit_stops_the_command(folder: JobFolder, t1: Path, workers: Workers, tmp_path: Path) -> None:
    pipeline, runs = counting(tmp_path, 60.0)
    job_id = submit(folder, t1)
    workers.start("w1", pipeline, "--time-limit", "2")
    until(lambda: folder.state(job_id) == "failed")
    result = folder.result(job_id)
    assert result.reason == "time limit of 2 s reached" and result.duration_s < 15
    assert runs.read_text().count("run") == 1 and result.outputs == ()


def test_wrong_checksum_is_refused_and_not_run(folder: JobFolder, t1: Path, workers: Workers, tmp_path: Path) -> None:
    pipeline, runs = counting(tmp_path, 0.1)
    job, files = job_files(new_job_id(), "atlas", "AB12CD", [(t1, "t1")])
    bad = replace(job, inputs=(replace(job.inputs[0], sha256="0" * 64),))
    drain(folder.submit(bad, files))
    workers.start("w1", pipeline)
    until(lambda: folder.state(job.id) == "failed")
    result = folder.result(job.id)
    assert "SHA-256 differs" in result.reason and "not run" in result.reason
    assert not runs.exists()


def test_sigterm_stops_the_worker_and_fails_the_running_job(folder: JobFolder, t1: Path, workers: Workers,
                                                           tmp_path: Path) -> None:
    pipeline, runs = counting(tmp_path, 60.0)
    job_id = submit(folder, t1)
    proc = workers.start("w1", pipeline)
    until(lambda: runs.exists())
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0 and time.monotonic() - started < 15
    assert folder.state(job_id) == "failed"
    assert folder.result(job_id).reason == "the worker was stopped while the command ran"
    assert "stopped" in workers.log("w1")


def test_unreadable_job_file_is_answered_failed_once(folder: JobFolder, workers: Workers, tmp_path: Path) -> None:
    pipeline, runs = counting(tmp_path, 0.1)
    job_id = new_job_id()
    folder.store.makedirs(f"{INBOX}/{job_id}")
    folder.store.put_bytes(f"{INBOX}/{job_id}/job.json", b'{"id": "' + job_id.encode() + b'", "pipeline": "atlas"}')
    workers.start("w1", pipeline)
    until(lambda: folder.state(job_id) == "failed")
    assert folder.result(job_id).reason == f"{INBOX}/{job_id}/job.json: 'inputs' is missing; not run"
    assert not runs.exists() and folder.jobs_in(INBOX) == []


def test_a_second_worker_on_the_same_state_folder_is_refused(workers: Workers, tmp_path: Path) -> None:
    first = workers.start("w1", "atlas=true {inputs} {outdir}")
    until(lambda: "watching" in workers.log("w1"))
    second = workers.start("w1", "atlas=true {inputs} {outdir}")
    assert second.wait(30) == 2
    assert "another worker runs with this state folder" in workers.log("w1")
    assert first.poll() is None


def test_server_crash_mid_job_worker_survives_and_answers_once(folder: JobFolder, t1: Path, workers: Workers,
                                                                tmp_path: Path, nextcloud: NextcloudServer) -> None:
    pipeline, runs = counting(tmp_path, 4.0)
    job_id = submit(folder, t1)
    proc = workers.start("w1", pipeline)
    until(lambda: runs.exists())
    nextcloud.kill9()  # the command runs on; its result has nowhere to go
    time.sleep(6)
    nextcloud.restart()
    until(lambda: folder.state(job_id) in ("done", "failed"), 90)
    time.sleep(2)
    assert proc.poll() is None  # the worker lived through it
    assert folder.state(job_id) == "done"  # the upload's retries (1+2+4+8 s) outlast a restart of ~8 s
    assert runs.read_text().count("run") == 1 and folder.jobs_in(RUNNING) == [] and folder.jobs_in(INBOX) == []
