"""The reference worker of cloud processing (issue 14): poll the inbox, claim a job, run its command, answer.

A claim is the WebDAV MOVE `inbox/<id>` -> `running/<id>`: the server lets exactly one MOVE succeed, and a
worker whose MOVE fails (412/409/404/423) skips the job. Before the MOVE the worker notes the id in its state
folder, after it writes `running/<id>/worker.json`; so after a crash or kill -9 the restarted worker knows its
stale jobs and fails them with a clear reason instead of running them a second time. The inputs are checked
against job.json's SHA-256 values before the command starts; the command runs with a time limit in its own
process group, and everything it wrote goes to `outbox/<id>/` with result.json (see `jobs.JobFolder.publish`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from threading import Event
from typing import TextIO

from tui.core.config import write_private
from tui.core.delivery.jobs import (
    CLAIM_FILE,
    INBOX,
    JOB_FILE,
    LOG_LINES,
    OUTBOX,
    RUNNING,
    Job,
    JobFile,
    JobFolder,
    Result,
    utc_now,
    walk_files,
)
from tui.core.delivery.nextcloud import AlreadyThere
from tui.core.errors import MrishareError

KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class WorkerNote:
    """What the worker did, one line (the CLI prints these)."""

    job_id: str
    text: str


def parse_pipeline(spec: str) -> tuple[str, str]:
    """`NAME=COMMAND` to (name, command); the command must name `{outdir}` and `{inputs}`."""
    name, _, command = spec.partition("=")
    name = name.strip()
    if not name or not command.strip():
        raise MrishareError("a pipeline is NAME='COMMAND {inputs} {outdir}'", spec)
    tokens = shlex.split(command)
    if "{inputs}" not in tokens or not any("{outdir}" in t for t in tokens):
        raise MrishareError("the command must contain {inputs} and {outdir} as words", spec)
    return name, command


def command_line(command: str, inputs: list[Path], outdir: Path) -> list[str]:
    """The argument list: the word `{inputs}` becomes one argument per input image, `{outdir}` the output folder."""
    args: list[str] = []
    for token in shlex.split(command):
        if token == "{inputs}":
            args.extend(str(p) for p in inputs)
        else:
            args.append(token.replace("{outdir}", str(outdir)))
    return args


class Worker:
    """One worker: its id, its pipelines, its state folder; `run` polls until `stop` is set."""

    def __init__(self, folder: JobFolder, pipelines: dict[str, str], state_dir: Path,
                 time_limit_s: float = 3600.0, poll_s: float = 5.0) -> None:
        self.folder = folder
        self.pipelines = pipelines
        self.state_dir = Path(state_dir)
        self.time_limit_s = time_limit_s
        self.poll_s = poll_s
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_state(self.state_dir)
        id_file = self.state_dir / "worker-id"
        if not id_file.exists():
            write_private(id_file, secrets.token_hex(8).encode())
        self.id = id_file.read_text(encoding="utf-8").strip()
        self.claims = self.state_dir / "claims"
        self.claims.mkdir(exist_ok=True)

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, stop: Event) -> Iterator[WorkerNote]:
        """Fail stale jobs of an earlier run, then poll the inbox and work until `stop` is set.

        A server failure during a poll is reported and the next poll tries again; a job whose result could not
        be sent is then answered failed (it is never run again).
        """
        self.folder.prepare()  # a wrong login or folder ends the worker at once
        while not stop.is_set():
            try:
                yield from self.recover()
                yield from self.poll_once(stop)
            except MrishareError as error:
                yield WorkerNote("", f"{error}; trying again in {self.poll_s:g} s")
            stop.wait(self.poll_s)

    def poll_once(self, stop: Event) -> Iterator[WorkerNote]:
        """Try every queued job of our pipelines once, in id order."""
        for job_id in self.folder.jobs_in(INBOX):
            if stop.is_set():
                return
            yield from self.take(job_id, stop)

    def take(self, job_id: str, stop: Event) -> Iterator[WorkerNote]:
        """Claim one job and run it, or skip it (another pipeline, or another worker was first)."""
        work = self.state_dir / "work" / job_id
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            try:
                self.folder.store.download(f"{INBOX}/{job_id}/{JOB_FILE}", work / JOB_FILE)
            except MrishareError:
                return  # claimed meanwhile by another worker, or no answer: the next poll looks again
            try:
                job: Job | None = Job.from_json((work / JOB_FILE).read_bytes(), f"{INBOX}/{job_id}/{JOB_FILE}")
                problem = ""
            except MrishareError as error:  # nobody can run it: the first worker answers it as failed
                job, problem = None, f"{error}; not run"
            if job is not None and job.pipeline not in self.pipelines:
                return  # for another worker
            if not self._claim(job_id):
                yield WorkerNote(job_id, "skipped: another worker claimed it first")
                return
            yield WorkerNote(job_id, f"claimed ({job.pipeline if job else 'unreadable job.json'})")
            result = (self.execute(job, work, stop) if job is not None
                      else self._result(job_id, "failed", None, time.monotonic(), problem, []))
            self.answer(result, work / "out")
            yield WorkerNote(job_id, f"{result.status}" + (f": {result.reason}" if result.reason else "")
                             + f" in {result.duration_s:.1f} s")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _claim(self, job_id: str) -> bool:
        """MOVE the job from the inbox to running/ (noted in the state folder first, named in worker.json after)."""
        claim = self.claims / job_id
        write_private(claim, json.dumps({"claimed": utc_now()}).encode())
        if self.folder.store.move(f"{INBOX}/{job_id}", f"{RUNNING}/{job_id}"):
            with contextlib.suppress(AlreadyThere):  # worker.json is written once: whoever wrote it holds the job
                self.folder.store.put_bytes(f"{RUNNING}/{job_id}/{CLAIM_FILE}",
                                            json.dumps({"worker": self.id, "claimed": utc_now()}).encode())
                return True
        claim.unlink()
        return False

    # -- one job ------------------------------------------------------------------------------------
    def execute(self, job: Job, work: Path, stop: Event) -> Result:
        """Fetch and check the inputs, run the command, and describe the outcome (nothing is uploaded yet)."""
        started = time.monotonic()
        inputs, out = work / "in", work / "out"
        inputs.mkdir()
        out.mkdir()
        try:
            for item in job.inputs:
                local = inputs / item.name
                local.parent.mkdir(parents=True, exist_ok=True)
                self.folder.store.download(f"{RUNNING}/{job.id}/{item.name}", local)
                item.verify(local)
        except MrishareError as error:
            return self._result(job.id, "failed", None, started, f"input {error}; not run", [])
        images = [inputs / item.name for item in job.inputs if item.role != "sidecar"]
        args = command_line(self.pipelines[job.pipeline], images, out)
        code, reason, log = self._run_command(args, work / "command.log", stop, self.claims / job.id)
        status = "done" if code == 0 and not reason else "failed"
        if status == "failed" and not reason:
            reason = f"the command exited with code {code}"
        return self._result(job.id, status, code, started, reason, log)

    def _run_command(self, args: list[str], log_path: Path, stop: Event,
                     claim: Path) -> tuple[int | None, str, list[str]]:
        """(exit code or None, reason or '', last log lines) of the command, stopped at the time limit or `stop`.
        The claim note gets the command's process group, so a restart after a kill -9 can stop what is left."""
        with open(log_path, "wb") as log:
            try:
                proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            except OSError as error:
                return None, f"the command could not start ({error.strerror or type(error).__name__})", []
            started = _process_stat(proc.pid)
            note = {**_claim_note(claim), "group": proc.pid, "started": started[1] if started else 0}
            write_private(claim, json.dumps(note).encode())
            deadline = time.monotonic() + self.time_limit_s
            reason = ""
            while proc.poll() is None:
                if stop.wait(0.2):
                    reason = "the worker was stopped while the command ran"
                elif time.monotonic() > deadline:
                    reason = f"time limit of {self.time_limit_s:g} s reached"
                if reason:
                    _end_group(proc)
                    break
        with open(log_path, encoding="utf-8", errors="replace") as text:
            tail = [line.rstrip("\n") for line in deque(text, LOG_LINES)]
        return (None if reason else proc.returncode), reason, tail

    def _result(self, job_id: str, status: str, code: int | None, started: float, reason: str,
                log: list[str]) -> Result:
        return Result(job_id, status, code, round(time.monotonic() - started, 3), reason, tuple(log), (), self.id)

    def answer(self, result: Result, out: Path) -> None:
        """Publish the result with the files of `out` (only for a job that ran to the end), then drop the claim."""
        files = dict(walk_files(out)) if result.status == "done" and out.is_dir() else {}
        described = tuple(JobFile.of(path, name, "output") for name, path in files.items())
        self.folder.publish(replace(result, outputs=described), files)
        self._release(result.job_id)

    def _release(self, job_id: str) -> None:
        """The job is answered: remove it from running/ and forget the claim."""
        self.folder.store.remove(f"{RUNNING}/{job_id}")
        (self.claims / job_id).unlink(missing_ok=True)

    # -- after a restart ----------------------------------------------------------------------------
    def recover(self) -> Iterator[WorkerNote]:
        """Jobs this worker claimed and did not answer (it was killed, or the result could not be sent): fail them,
        never run them again. Jobs run one at a time, so at a poll every claim left is such a job."""
        for job_id in sorted(p.name for p in self.claims.iterdir()):
            if self.folder.store.exists(f"{OUTBOX}/{job_id}"):
                self._release(job_id)
                yield WorkerNote(job_id, "was answered before the restart; cleaned up")
            elif self.folder.store.exists(f"{RUNNING}/{job_id}") and self._claimed_by(job_id) in (self.id, None):
                if stopped := _stop_leftover(_claim_note(self.claims / job_id)):
                    yield WorkerNote(job_id, f"its command was still running ({stopped} process(es)); stopped")
                reason = ("the worker stopped or lost the server while this job ran; not run again, "
                          "submit it anew")
                self.answer(Result(job_id, "failed", None, 0.0, reason, (), (), self.id), Path())
                yield WorkerNote(job_id, f"failed: {reason}")
            else:  # the claim's MOVE never happened (killed in between) or another worker won
                (self.claims / job_id).unlink()

    def _claimed_by(self, job_id: str) -> str | None:
        """The worker id in `running/<id>/worker.json`; None when it was never written (killed right after
        the MOVE: the claim note in our state folder then says the job is ours)."""
        work = self.state_dir / "work" / job_id
        work.mkdir(parents=True, exist_ok=True)
        try:
            if not self.folder.store.exists(f"{RUNNING}/{job_id}/{CLAIM_FILE}"):
                return None
            self.folder.store.download(f"{RUNNING}/{job_id}/{CLAIM_FILE}", work / CLAIM_FILE)
            owner = json.loads((work / CLAIM_FILE).read_text(encoding="utf-8")).get("worker")
        except (ValueError, AttributeError):
            return None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return str(owner)


def _lock_state(folder: Path) -> TextIO:
    """Hold an exclusive lock on the state folder while the worker runs: two workers sharing one would take each
    other's running jobs for stale ones after a restart."""
    handle = open(folder / "lock", "w")  # noqa: SIM115  (held open for the worker's life; the OS frees it on exit)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise MrishareError("another worker runs with this state folder; give each worker its own --state",
                            folder) from None
    return handle


def _claim_note(claim: Path) -> dict[str, object]:
    """What the claim note says (when claimed; the command's process group and its start); {} if unreadable
    (an older worker wrote a bare timestamp)."""
    try:
        note = json.loads(claim.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


def _process_stat(pid: int) -> tuple[int, int] | None:
    """(process group, start time in clock ticks after boot) of a live process from /proc (Linux); None when it is
    gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else (int(fields[2]), int(fields[19]))


def _stop_leftover(note: dict[str, object]) -> int:
    """SIGKILL every process still in the command's process group that started no earlier than the command (so a
    later process that happens to reuse the number is spared); the number stopped. A kill -9 of the worker leaves
    its command running: this is the restart's answer to that."""
    group, started = note.get("group"), note.get("started")
    if not isinstance(group, int) or not isinstance(started, int) or not Path("/proc").is_dir():
        return 0
    stopped = 0
    for entry in os.scandir("/proc"):
        stat = _process_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[0] == group and stat[1] >= started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                stopped += 1
    return stopped


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's process group, SIGKILL after KILL_GRACE_S."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
