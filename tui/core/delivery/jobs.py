"""The job protocol of cloud processing (issue 14): `job.json`, `result.json` and the processing folder.

A processing folder on Nextcloud (credentials `processing_path`) holds one folder per job:

    inbox/<job-id>/    job.json and its input files: submitted, waiting for a worker
    running/<job-id>/  claimed: a worker MOVEd it out of the inbox (only one MOVE can win) and wrote worker.json
    outbox/<job-id>/   result.json and everything the command wrote

A job or a result becomes visible only when complete: it is uploaded under a hidden staging name
(`.staging-<job-id>`, which workers and the lab ignore) and then MOVEd into place, never overwriting.
No file of the protocol holds an identifying value: job.json names the pipeline, the inputs by their BIDS file
name with role, size and SHA-256, the pseudonym, the creation time (UTC) and the mrishare version; the job id
is random.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui import __version__
from tui.core.delivery.base import Delivered, check_remote_name
from tui.core.errors import MrishareError
from tui.core.events import EventStream

if TYPE_CHECKING:
    from threading import Event

    from tui.core.delivery.nextcloud import NextcloudDestination

INBOX, RUNNING, OUTBOX = "inbox", "running", "outbox"
JOB_FILE, RESULT_FILE, CLAIM_FILE = "job.json", "result.json", "worker.json"
STAGING = ".staging-"
LOG_LINES = 50
"""How many of the command's last log lines result.json keeps."""
_JOB_ID = re.compile(r"[0-9a-f]{24}")


def new_job_id() -> str:
    """A random job id (96 bits, hex): it says nothing about the participant."""
    return secrets.token_hex(12)


def check_job_id(text: str) -> str:
    """`text` if it is a job id as `new_job_id` makes them, else a one-line error."""
    if not _JOB_ID.fullmatch(text):
        raise MrishareError("not a job id (24 hex digits)", text or None)
    return text


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while block := src.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def utc_now() -> str:
    """The time as ISO 8601 UTC to the second (what job.json and result.json carry)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class JobFile:
    """One file of a job or a result: its relative name, role, size and SHA-256."""

    name: str
    role: str
    size: int
    sha256: str

    @classmethod
    def of(cls, path: Path, name: str, role: str) -> JobFile:
        """Describe the local file `path`, to be sent as `name`."""
        return cls(check_remote_name(name), role, path.stat().st_size, sha256_file(path))

    def verify(self, path: Path) -> None:
        """Refuse a local copy whose size or SHA-256 differs from this description."""
        if path.stat().st_size != self.size or sha256_file(path) != self.sha256:
            raise MrishareError("SHA-256 differs from what the job lists; refused", self.name)


def _files(raw: Any, source: str) -> tuple[JobFile, ...]:
    if not isinstance(raw, list):
        raise MrishareError("the file list is not a list", source)
    try:
        found = tuple(JobFile(check_remote_name(str(f["name"])), str(f["role"]), int(f["size"]), str(f["sha256"]))
                      for f in raw)
    except (KeyError, TypeError, ValueError):
        raise MrishareError("a file entry lacks name, role, size or sha256", source) from None
    if any(not re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in found):
        raise MrishareError("a file entry has no valid SHA-256", source)
    return found


def _load(text: bytes | str, source: str) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise MrishareError("not readable as JSON", source) from None
    if not isinstance(raw, dict):
        raise MrishareError("must hold one JSON object", source)
    return raw


@dataclass(frozen=True)
class Job:
    """What a worker needs to run one pipeline on one participant's de-identified images."""

    id: str
    pipeline: str
    inputs: tuple[JobFile, ...]
    pseudonym: str
    created: str = field(default_factory=utc_now)
    mrishare_version: str = __version__

    def to_json(self) -> str:
        """The job.json text."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: bytes | str, source: str) -> Job:
        """Parse and check a job.json; `source` names it in errors."""
        raw = _load(text, source)
        try:
            job = cls(check_job_id(str(raw["id"])), str(raw["pipeline"]), _files(raw["inputs"], source),
                      str(raw["pseudonym"]), str(raw["created"]), str(raw["mrishare_version"]))
        except KeyError as missing:
            raise MrishareError(f"{missing} is missing", source) from None
        if not job.inputs:
            raise MrishareError("the job lists no inputs", source)
        return job


@dataclass(frozen=True)
class Result:
    """What a worker reports in result.json: how the command ended and what it wrote."""

    job_id: str
    status: str
    """`done` (exit code 0) or `failed`."""
    exit_code: int | None
    """None when the command did not run (refused input, time limit, worker stopped)."""
    duration_s: float
    reason: str
    """One line: why it failed ('' when done)."""
    log_tail: tuple[str, ...]
    """The last LOG_LINES lines the command printed (stdout and stderr)."""
    outputs: tuple[JobFile, ...]
    worker: str
    finished: str = field(default_factory=utc_now)

    def to_json(self) -> str:
        """The result.json text."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: bytes | str, source: str) -> Result:
        """Parse and check a result.json; `source` names it in errors."""
        raw = _load(text, source)
        try:
            code = raw["exit_code"]
            result = cls(check_job_id(str(raw["job_id"])), str(raw["status"]),
                         None if code is None else int(code), float(raw["duration_s"]), str(raw["reason"]),
                         tuple(str(line) for line in raw["log_tail"]), _files(raw["outputs"], source),
                         str(raw["worker"]), str(raw["finished"]))
        except KeyError as missing:
            raise MrishareError(f"{missing} is missing", source) from None
        except (TypeError, ValueError):
            raise MrishareError("a field has the wrong type", source) from None
        if result.status not in ("done", "failed"):
            raise MrishareError("status must be done or failed", source)
        return result


class JobFolder:
    """The processing folder on Nextcloud: submit, look up, claim and answer jobs (the same for lab and worker).

    `store` is a NextcloudDestination whose `remote_path` is the processing folder.
    """

    def __init__(self, store: NextcloudDestination) -> None:
        self.store = store

    def prepare(self) -> None:
        """Create inbox/, running/ and outbox/ (also a login check)."""
        for name in (INBOX, RUNNING, OUTBOX):
            self.store.makedirs(name)

    def jobs_in(self, folder: str) -> list[str]:
        """Job ids in `folder` (inbox, running or outbox); staging folders and stray names are ignored."""
        return sorted(name for name, is_dir in self.store.list_folder(folder) or [] if is_dir
                      and _JOB_ID.fullmatch(name))

    def state(self, job_id: str) -> str:
        """`queued`, `running`, `done`, `failed` or `missing`, as the server has the job now."""
        if self.store.exists(f"{OUTBOX}/{job_id}/{RESULT_FILE}"):
            return self.result(job_id).status
        for folder, state in ((RUNNING, "running"), (INBOX, "queued")):
            if self.store.exists(f"{folder}/{job_id}"):
                return state
        return "missing"

    def submit(self, job: Job, files: dict[str, Path], cancel: Event | None = None) -> EventStream[Delivered]:
        """Upload the inputs and job.json under a staging name, then MOVE the whole job into the inbox.

        A job id that is already anywhere in the processing folder is refused (a double submission).
        """
        if self.state(job.id) != "missing":
            raise MrishareError("this job was submitted before; refusing to submit it twice", job.id)
        staging = f"{INBOX}/{STAGING}{job.id}"
        self.store.remove(staging)  # what an interrupted earlier attempt left
        self.store.makedirs(staging)
        size = 0
        for name, path in files.items():
            delivered = yield from self.store.upload(path, f"{staging}/{name}", cancel)
            size += delivered.size
        self.store.put_bytes(f"{staging}/{JOB_FILE}", job.to_json().encode())
        if not self.store.move(staging, f"{INBOX}/{job.id}"):
            raise MrishareError("this job was submitted before; refusing to submit it twice", job.id)
        return Delivered(f"{INBOX}/{job.id}", size, None)

    def result(self, job_id: str) -> Result:
        """The job's result.json, parsed."""
        with tempfile.TemporaryDirectory(prefix="mrishare-job-") as work:
            local = Path(work) / RESULT_FILE
            self.store.download(f"{OUTBOX}/{job_id}/{RESULT_FILE}", local)
            return Result.from_json(local.read_bytes(), f"{OUTBOX}/{job_id}/{RESULT_FILE}")

    def fetch(self, job_id: str, into: Path) -> Result:
        """Download a finished job's result.json and outputs into `into`, each checked against result.json.

        The files land in a hidden folder beside `into` and are renamed into place only when all match.
        """
        result = self.result(job_id)
        into = Path(into)
        part = into.with_name(f".{into.name}.part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        try:
            for item in result.outputs:
                local = part / item.name
                local.parent.mkdir(parents=True, exist_ok=True)
                self.store.download(f"{OUTBOX}/{job_id}/{item.name}", local)
                item.verify(local)
            (part / RESULT_FILE).write_text(result.to_json(), encoding="utf-8")
            if into.exists():
                shutil.rmtree(into)
            part.replace(into)
        finally:
            shutil.rmtree(part, ignore_errors=True)
        return result

    def publish(self, result: Result, files: dict[str, Path]) -> None:
        """Upload a result (outputs, then result.json) under a staging name and MOVE it to `outbox/<id>`."""
        staging = f"{OUTBOX}/{STAGING}{result.job_id}"
        self.store.remove(staging)
        self.store.makedirs(staging)
        for name, path in files.items():
            for _ in self.store.upload(path, f"{staging}/{name}"):
                pass
        self.store.put_bytes(f"{staging}/{RESULT_FILE}", result.to_json().encode())
        if not self.store.move(staging, f"{OUTBOX}/{result.job_id}"):
            self.store.remove(staging)
            raise MrishareError("a result for this job is already in the outbox", result.job_id)


def walk_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative name with '/', path) of every file below `folder`, sorted."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        yield path.relative_to(folder).as_posix(), path
