"""The processing destination `processing:PIPELINE` (issue 14): send a participant's images to a cloud pipeline.

Inputs are chosen by role from the converted, defaced NIfTI (with their JSON sidecars):
  - `atlas`: one T1-weighted image, an MP2RAGE UNI first (INV1/INV2 and phase images are never taken);
  - `qsm`: the magnitude and phase echoes.
With defacing on, an image the deface step did not deface is withheld and the note says so (the deface step
defaces anatomical series; pairing phase echoes with their magnitude's mask is issue 13's work). The job goes to
`<processing_path>/inbox/<job-id>/` through `JobFolder.submit`; no link is made, and nothing is packed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tui.core.delivery.base import Delivered, ShareInfo, SharePolicy
from tui.core.delivery.jobs import INBOX, OUTBOX, RESULT_FILE, Job, JobFile, JobFolder, Result, check_job_id
from tui.core.delivery.nextcloud import NextcloudDestination
from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepNote
from tui.core.nifti.deface_pairs import SeriesGeometry

if TYPE_CHECKING:
    from collections.abc import Collection
    from threading import Event

    from tui.core.credentials import Credentials
    from tui.core.delivery.ledger import Ledger, LedgerRow

PIPELINES = {"atlas": "a T1-weighted image or an MP2RAGE UNI", "qsm": "magnitude and phase echoes"}
"""The pipelines whose inputs mrishare knows how to choose, and what each needs."""


def sidecar_of(image: Path) -> Path:
    """The JSON sidecar beside a `.nii.gz` or `.nii` image."""
    return image.with_name(image.name.removesuffix(".gz").removesuffix(".nii") + ".json")


def image_role(image: Path) -> str:
    """`phase`, `inv1`, `inv2`, `uni` or `magnitude`: the file name's `part-` entity, then the sidecar's
    ImageType and SeriesDescription, by the rules of the deface pairing (issue 13). The subject label is left
    out of the name: a pseudonym may happen to contain `UNI`."""
    if "_part-phase" in image.name:
        return "phase"
    try:
        sidecar = json.loads(sidecar_of(image).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        sidecar = {}
    sidecar = sidecar if isinstance(sidecar, dict) else {}
    image_type = sidecar.get("ImageType", [])
    described = SeriesGeometry(image.name, "", (), np.eye(4), tuple(str(v) for v in image_type)
                               if isinstance(image_type, list) else (),
                               f"{image.name.split('_', 1)[-1]} {sidecar.get('SeriesDescription', '')}")
    return described.role


def choose_inputs(pipeline: str, converted: list[tuple[Path, str]],
                  defaced: set[Path] | None) -> tuple[list[tuple[Path, str]], list[str]]:
    """(image, role) pairs the pipeline takes, and notes on what was withheld.

    `converted` holds (image, BIDS suffix) pairs; `defaced` the images the deface step changed, or None when
    defacing is off (then every image may go).
    """
    if pipeline not in PIPELINES:
        raise MrishareError(f"unknown pipeline; mrishare chooses inputs for {', '.join(PIPELINES)}", pipeline)
    present = [(path, suffix, image_role(path)) for path, suffix in converted if path.exists()]
    if pipeline == "atlas":
        # a UNI whatever its suffix: its TR/TI can make the converter's guess FLAIR
        t1 = [(path, role) for path, suffix, role in present
              if role == "uni" or (suffix == "T1w" and role == "magnitude")]
        wanted = sorted(t1, key=lambda item: item[1] != "uni")[:1]
        wanted = [(path, "uni" if role == "uni" else "t1") for path, role in wanted]
    else:
        wanted = [(path, role) for path, _, role in present if role == "phase"
                  or (role == "magnitude" and "_echo-" in path.name)]
    notes = []
    if defaced is not None:
        held = [path for path, _ in wanted if path not in defaced]
        wanted = [(path, role) for path, role in wanted if path in defaced]
        if held:
            notes.append(f"withheld {len(held)} image(s) the deface step did not deface "
                         f"({', '.join(p.name for p in held)}); echo/phase pairing for defacing is issue 13")
    if pipeline == "qsm" and wanted and not any(role == "phase" for _, role in wanted):
        notes.append("no phase image goes with this job: the worker gets the magnitude echoes only")
    if not wanted:
        raise MrishareError(f"the {pipeline} pipeline needs {PIPELINES[pipeline]}; none is among the "
                            "converted and defaced images" + (f" ({notes[0]})" if notes else ""))
    return wanted, notes


def job_files(job_id: str, pipeline: str, pseudonym: str,
              chosen: list[tuple[Path, str]]) -> tuple[Job, dict[str, Path]]:
    """The job and its files by name: each chosen image and its sidecar."""
    files: dict[str, Path] = {}
    entries = []
    for image, role in chosen:
        for path, kind in ((image, role), (sidecar_of(image), "sidecar")):
            if path.exists():
                files[path.name] = path
                entries.append(JobFile.of(path, path.name, kind))
    return Job(job_id, pipeline, tuple(entries), pseudonym), files


class ProcessingDestination:
    """Jobs for one pipeline in the processing folder of a Nextcloud account (`kind = "processing"`)."""

    kind = "processing"

    def __init__(self, credentials: Credentials, pipeline: str) -> None:
        if pipeline not in PIPELINES:
            raise MrishareError(f"unknown pipeline; mrishare chooses inputs for {', '.join(PIPELINES)}", pipeline)
        self.pipeline = pipeline
        self.credentials = credentials
        self.folder = job_folder(credentials)

    def check(self) -> list[tuple[str, bool, str]]:
        """Login, quota and the processing folder."""
        return [item for item in self.folder.store.check() if item[0] != "share rights"]

    def submit(self, job: Job, files: dict[str, Path], cancel: Event | None = None) -> EventStream[Delivered]:
        """Put the job into the inbox (see `JobFolder.submit`), then start it by webhook if one is configured.

        A webhook that fails is a warning: the job waits in the inbox, where a polling worker finds it.
        """
        delivered = yield from self.folder.submit(job, files, cancel)
        creds = self.credentials
        if creds.webhook_url:
            from tui.core.delivery.webhook import post_job

            try:
                post_job(creds.webhook_url, creds.webhook_token, job.to_json().encode(), creds.ca_bundle,
                         creds.timeout_s)
            except MrishareError as error:
                yield StepNote(job.id, "upload", f"{error}; the job waits in the inbox for a polling worker",
                               "warning")
            else:
                yield StepNote(job.id, "upload", "webhook started the job")
        return delivered

    def upload(self, local: Path, remote_name: str, cancel: Event | None = None) -> EventStream[Delivered]:
        """Refused: a processing job is sent with `submit`, not as a package."""
        raise MrishareError("a processing destination takes jobs, not packages", remote_name)

    def exists(self, remote_name: str) -> bool:
        """True if the job (`inbox/<id>`) is anywhere in the processing folder."""
        return self.folder.state(remote_name.rsplit("/", 1)[-1]) != "missing"

    def share(self, delivered_path: str, expire_days: int, label: str, password: str | None = None) -> ShareInfo:
        """Refused: a job gives no link."""
        raise MrishareError("a processing destination gives no links", delivered_path)

    def policy(self) -> SharePolicy:
        """No link rules; creates the processing folders, which checks the login before any work."""
        self.folder.prepare()
        return SharePolicy()

    def find_share(self, share_id: str) -> ShareInfo | None:
        """None: a job gives no link."""
        return None

    def revoke(self, share_id: str, remote_path: str) -> None:
        """Withdraw a job that is still queued (a running job is the worker's)."""
        if remote_path.startswith(f"{INBOX}/"):
            self.folder.store.remove(remote_path)

    def extend(self, share_id: str, expire_days: int) -> ShareInfo:
        """Refused: there are no links to extend."""
        raise MrishareError("a processing destination gives no links to extend", share_id)

    def list_shares(self) -> list[ShareInfo]:
        """None: a job gives no link."""
        return []

    def cleanup_expired(self, today: date | None = None, owned: Collection[str] | None = None) -> list[str]:
        """Nothing expires in the processing folder."""
        return []

    def close(self) -> None:
        """Close the Nextcloud connections."""
        self.folder.store.close()


@dataclass(frozen=True)
class JobStatus:
    """One processing row after a refresh: its state, where the result is, and a failed job's log."""

    row: LedgerRow
    job_id: str
    state: str
    """`queued`, `running`, `done`, `failed` or `missing`."""
    location: str
    result: Result | None = None


def track_jobs(ledger: Ledger, credentials: Credentials, results: Path | None = None) -> list[JobStatus]:
    """Ask the server about every processing row of the ledger and write the Job column.

    With `results`, a finished job's outputs are fetched into `results/<participant>/<job-id>/`, each file
    checked against result.json; without, the column points at the job's outbox folder.
    """
    rows = [row for row in ledger.rows() if row.destination.startswith("processing:") and row.remote_path]
    if not rows:
        return []
    folder = job_folder(credentials)
    found = []
    try:
        for row in rows:
            job_id = check_job_id(row.remote_path.rsplit("/", 1)[-1])
            state = folder.state(job_id)
            location, result = "", None
            if state in ("done", "failed"):
                if results is not None:
                    location = str(results / (row.participant or row.id) / job_id)
                    fetched = Path(location) / RESULT_FILE
                    result = (Result.from_json(fetched.read_bytes(), str(fetched))  # fetched by an earlier call
                              if row.job == f"{state}: {location}" and fetched.is_file()
                              else folder.fetch(job_id, Path(location)))
                else:
                    location = f"{credentials.processing_path}/{OUTBOX}/{job_id}".lstrip("/")
                    result = folder.result(job_id)
            column = f"{state}: {location}" if location else state
            if column != row.job:
                note = f"job failed: {result.reason}" if result is not None and state == "failed" else row.note
                row = replace(row, job=column, last_action=f"job {state}", note=note)
                ledger.upsert(row)
            found.append(JobStatus(row, job_id, state, location, result))
    finally:
        folder.store.close()
        ledger.save()
    return found


def jobs_summary(found: list[JobStatus]) -> str:
    """'3 jobs: 1 done, 1 failed, 1 running' (states in a fixed order)."""
    counts = {state: sum(1 for s in found if s.state == state)
              for state in ("done", "failed", "running", "queued", "missing")}
    parts = [f"{count} {state}" for state, count in counts.items() if count]
    return f"{len(found)} job{'' if len(found) == 1 else 's'}: {', '.join(parts)}" if found else "no processing jobs"


def job_folder(credentials: Credentials) -> JobFolder:
    """The processing folder (`processing_path`) of the credentials' Nextcloud account."""
    return JobFolder(NextcloudDestination(replace(credentials, remote_path=credentials.processing_path)))
