"""Per-participant orchestration, resumable at every step.

scan (done by the caller) -> de-identify -> convert -> deface -> previews/README -> leak gate
-> pack -> upload -> share -> ledger. Each finished step is written to a journal
(`tui/core/journal.py`); after a crash or kill -9 the next run skips what is done,
reuses a remote file that already arrived and a share that was already made, so
there are no duplicates and no orphaned remote files. A ledger row that the user
deleted means "share again": the old remote file is revoked and a new attempt starts. Work folders
and journals are kept per ledger, so a second ledger sharing the same participant makes its own
package and never touches the first one's.

To a DICOM node (`dicom-node:NAME`) a run delivers the de-identified DICOM itself: the upload
stage runs the leak gate over the released files and sends them with C-STORE; convert, deface,
pack and share do not apply, and the row ends as `uploaded` (a node gives no link or passphrase).
"""

from __future__ import annotations

import contextlib
import queue
import re
import secrets
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tui.core.deid import leakcheck
from tui.core.deid.audit import AuditLog
from tui.core.deid.deidentify import DeidSettings, deidentify_participant
from tui.core.delivery import passphrase
from tui.core.delivery.base import Delivered, Destination, SharePolicy
from tui.core.delivery.destinations import destination_from
from tui.core.delivery.ledger import Ledger, LedgerRow
from tui.core.delivery.unlock_page import page_path
from tui.core.dicom.completeness import Admission, Gap, admit, choose_patient
from tui.core.dicom.scan import Participant, Problem, scan
from tui.core.errors import Cancelled, MrishareError
from tui.core.events import Event, EventStream, StepFailed, StepFinished, StepNote, StepStarted, drain, relabel
from tui.core.journal import Journal
from tui.core.run_settings import STAGES, PipelineSettings
from tui.core.safetext import crash_report, disk_error

if TYPE_CHECKING:
    from tui.core.delivery.node import DicomNodeDestination
    from tui.core.nifti.participant_docs import About

ANATOMICAL = frozenset({"T1w", "T2w", "FLAIR", "PDw"})
NOT_FOR_NODE = frozenset({"convert", "deface", "pack", "share"})
DONE = frozenset({"shared", "uploaded"})
"""Final statuses of a successful run: `shared` (folder, Nextcloud) or `uploaded` (DICOM node)."""
CANCELLED = "cancelled"
"""Outcome status of a participant stopped by the operator; its ledger row keeps the last finished step."""


@dataclass(frozen=True)
class Outcome:
    """How one participant ended: its ledger row, final status and, on failure, the reason."""

    key: str
    row_id: str
    status: str
    reason: str = ""


@dataclass(frozen=True)
class BatchResult:
    """All outcomes of a batch, in the order the participants were given."""

    outcomes: list[Outcome]

    @property
    def failed(self) -> list[Outcome]:
        """The participants that did not finish (`shared`, or `uploaded` to a DICOM node)."""
        return [o for o in self.outcomes if o.status not in DONE]

    @property
    def cancelled(self) -> list[Outcome]:
        """The participants the operator stopped (a rerun resumes them)."""
        return [o for o in self.outcomes if o.status == CANCELLED]


class LedgerGate:
    """A ledger shared by worker threads: every change is saved at once, under one lock."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()

    def get(self, row_id: str) -> LedgerRow | None:
        """The row with `row_id`, or None if the user deleted it (or it never existed)."""
        with self._lock:
            return self.ledger.get(row_id)

    def update(self, row: LedgerRow, **changes: Any) -> LedgerRow:
        """Store `row` with `changes`, stamp the last action, save atomically; return the new row."""
        new = replace(row, **changes)
        with self._lock:
            self.ledger.upsert(new)
            self.ledger.save()
        return new


def new_share_id() -> str:
    """A random, non-identifying id for one share attempt (ledger row id and remote folder)."""
    return "s" + secrets.token_hex(5)


def share_password(language: str, min_length: int) -> str:
    """A generated share password of at least 60 bits and at least `min_length` characters."""
    bits = 60
    while len(text := passphrase.generate(language, bits=bits).text()) < min_length:
        bits += 20
    return text


LEFT_OUT_ON_PURPOSE = ("localizer", "secondary capture", "not an image series")
"""Skip reasons of the converter (tui/core/nifti/conversion.py `skip_reason`) that are a decision, not a loss."""

_SUB_PREFIX = re.compile(r"^sub[-_]|^sub(?=[a-z2-7]{10}$)", re.IGNORECASE)
"""A 'sub-'/'sub_' prefix, or the 'sub' of a keyed pseudonym ('sub' + 10 base32 characters,
tui/core/deid/pseudonym.py)."""


def bids_label(pseudonym: str) -> str:
    """The pseudonym as a BIDS label (letters and digits only), without a 'sub' the `sub-` entity adds again.

    A keyed pseudonym `sub7j7ppitd2a` gives `sub-7j7ppitd2a`, not `sub-sub7j7ppitd2a`; `subject01` stays.
    """
    label = re.sub(r"[^A-Za-z0-9]", "", _SUB_PREFIX.sub("", pseudonym))
    if not label:
        raise MrishareError("pseudonym has no letters or digits for a BIDS label")
    return label


def run_batch(participants: list[Participant], settings: PipelineSettings, ledger: Ledger,
              cancel: threading.Event | None = None, workers: int = 2) -> EventStream[BatchResult]:
    """Run the pipeline for each participant, `workers` at a time, and return every outcome.

    Events of all participants arrive interleaved; `subject` is the participant key.
    """
    cancel = cancel or threading.Event()
    destination = destination_from(settings.destination, settings.credentials)
    for note in settings.credentials.notes if settings.credentials else ():
        yield StepNote("settings", "settings", note)
    gate = LedgerGate(ledger)
    events: queue.Queue[Event | None] = queue.Queue()

    def one(participant: Participant) -> Outcome:
        try:
            return drain(run_participant(participant, settings, gate, destination, cancel), events.put)
        finally:
            events.put(None)

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(participants)))) as pool:
            futures = [pool.submit(one, p) for p in participants]
            finished = 0
            try:
                while finished < len(futures):
                    event = events.get()
                    if event is None:
                        finished += 1
                    else:
                        yield event
            except BaseException:  # Ctrl-C or a closed stream: workers stop at their next safe point
                cancel.set()
                raise
            return BatchResult([f.result() for f in futures])
    finally:
        destination.close()


def run_participant(participant: Participant, settings: PipelineSettings, gate: LedgerGate,
                    destination: Destination, cancel: threading.Event | None = None) -> EventStream[Outcome]:
    """All stages for one participant; failures become a `failed` ledger row and a StepFailed event."""
    run = _Run(participant, settings, gate, destination, cancel or threading.Event())
    stage = "upload"  # start() may withdraw an abandoned upload: a login failure there is no 'deidentify failed'
    try:
        run.start()
        assert run.journal is not None and run.row is not None  # start() set both
        stage = "prepare"  # which patient and which series may go: before any stage
        yield from run.admit()
        delivered_before = run.delivered
        if delivered_before and (ended := run.link_ended()):
            yield StepFailed(run.subject, "share", ended)
            return Outcome(run.subject, run.journal.share_id, run.row.status, ended)
        if not delivered_before and not run.to_node:  # login, sharing rights and link rules, before any work
            stage = "upload"
            run.policy = run.destination.policy()
            run.policy.expire_days(settings.expiry_days)
        for stage in STAGES:
            yield StepStarted(run.subject, stage)
            run.checkpoint(f"at the start of {stage}")
            if run.to_node and stage in NOT_FOR_NODE:
                summary = "not for a DICOM node"
            elif delivered_before:  # a finished run is not redone (its work files are gone)
                summary = "done earlier"
            else:
                summary = yield from getattr(run, stage)()
            yield StepFinished(run.subject, stage, summary)
        run.finish()
        if run.admission.note():  # the CLI, the TUI's log and the ledger all say it
            yield StepNote(run.subject, STAGES[-1], run.admission.note(), "warning")
        status = "partly shared" if run.admission.partial else "uploaded" if run.to_node else "shared"
        return Outcome(run.subject, run.journal.share_id, status, run.admission.note())
    except MrishareError as error:
        reason = str(error)
    except OSError as error:  # full disk, permissions: the path and the cause (no value of the data)
        reason = f"{stage}: {disk_error(error)}"
    except Exception as error:  # a bug or a library failure: never let its message (maybe PHI) out
        reason = f"internal error ({type(error).__name__}) during {stage}; {crash_report(error)}"
    share_id = run.journal.share_id if run.journal else ""
    if run.cancel.is_set():  # whatever the stage raised on its way out, the operator stopped it
        reason = f"cancelled during {stage}; nothing was sent after that; run again to resume"
        yield StepFailed(run.subject, stage, reason)
        run.stopped(stage)
        return Outcome(run.subject, share_id, CANCELLED, reason)
    yield StepFailed(run.subject, stage, reason)
    run.fail(stage, reason)
    return Outcome(run.subject, share_id, "failed", reason)


def _drop_outputs(converted: list[Any], keys: set[str]) -> list[Any]:
    """`converted` without the outputs of series `keys`, whose files (NIfTI, sidecar, b-values) are deleted."""
    for item in converted:
        if item.series_key in keys:
            stem = item.nifti.name.removesuffix(".nii.gz")
            for path in item.nifti.parent.glob(f"{stem}.*"):
                path.unlink()
    return [c for c in converted if c.series_key not in keys]


class _Run:
    """One participant's pass through the stages; each stage method is resumable."""

    def __init__(self, participant: Participant, settings: PipelineSettings, gate: LedgerGate,
                 destination: Destination, cancel: threading.Event) -> None:
        self.participant = participant
        self.settings = settings
        self.profile = settings.profile
        self.gate = gate
        self.destination = destination
        self.cancel = cancel
        self.subject = participant.key
        self.to_node = destination.kind == "dicom-node"
        # one work folder per (participant, ledger): a package belongs to the ledger row that made it
        self.home = settings.work_dir / f"{participant.key}-{gate.ledger.owner_tag}"
        self.journal: Journal | None = None
        self.row: LedgerRow | None = None
        self.policy: SharePolicy | None = None
        self.admission = Admission(participant, (), ())

    # -- bookkeeping -------------------------------------------------------------------------

    def start(self) -> None:
        """Load or begin the journal; a row the user deleted starts a fresh attempt."""
        journal = Journal.load(self.home / "journal.json")
        if journal is not None and "row" in journal.done and self.gate.get(journal.share_id) is None:
            self._withdraw(journal)
            journal = None
        if journal is None:
            journal = Journal(self.subject, new_share_id(), path=self.home / "journal.json")
            journal.save()
        self.journal = journal
        self.row = self.gate.get(journal.share_id) or LedgerRow(
            id=journal.share_id, participant=self.participant.folder.name,
            source_folder=str(self.participant.folder), status="scanned",
            destination=self.settings.destination, created=datetime.now().replace(microsecond=0),
            series=sum(1 for _ in self.participant.series()), size=self.participant.bytes)
        if not self.delivered:
            self._save_row(last_action="pipeline started")
        journal.mark("row")

    def admit(self) -> EventStream[None]:
        """One patient only, and incomplete series withheld (or released, recorded); says what and why."""
        chosen = choose_patient(self.participant, self.settings.patient_index)
        self.admission = admit(chosen, self.settings.allow_incomplete)
        self.participant = self.admission.participant
        for gap in self.admission.withheld:
            yield StepNote(self.subject, "deidentify", f"withheld {gap.text()}", "warning")
        for gap in self.admission.released:
            yield StepNote(self.subject, "deidentify", f"released incomplete {gap.text()}", "warning")

    def _withdraw(self, journal: Journal) -> None:
        """Remove what an abandoned attempt left remotely and locally (the user asked to share again)."""
        upload = journal.done.get("upload")
        if upload and not self.to_node:  # a node keeps what it got; a new attempt just sends again
            share = journal.done.get("share", {})
            self.destination.revoke(str(share.get("share_id", "")), str(upload["remote_path"]))
        shutil.rmtree(self.home / journal.share_id, ignore_errors=True)

    def link_ended(self) -> str:
        """Why a finished share gives the participant nothing any more ('' while its link lives).

        A row the ledger still calls shared is checked with the server: a link that is gone there becomes
        expired (its date has come) or revoked. A failed check leaves the row as it is.
        """
        assert self.row is not None
        row = self.row
        if self.to_node or row.status not in ("shared", "expired", "revoked"):
            return ""
        if row.status == "shared" and row.share_id:
            try:
                gone = self.destination.find_share(row.share_id) is None
            except MrishareError:
                return ""
            if gone:
                today = date.today()
                status = "expired" if row.expires is not None and row.expires <= today else "revoked"
                self._save_row(status=status, link="", last_action=f"link gone on the server (seen {today})")
        if self.row.status == "shared":
            return ""
        return (f"not shared: the link was {self.row.status} ({self.row.last_action}); to share anew run "
                f"`mrishare shares again {row.id}`")

    def _save_row(self, **changes: object) -> None:
        assert self.row is not None
        self.row = self.gate.update(self.row, **changes)

    @property
    def delivered(self) -> bool:
        """True once the last stage is done: `share`, or `upload` to a DICOM node."""
        return self.journal is not None and ("upload" if self.to_node else "share") in self.journal.done

    @property
    def attempt(self) -> Path:
        """Working folder of the current share attempt."""
        assert self.journal is not None
        return self.home / self.journal.share_id

    @property
    def label(self) -> str:
        """The BIDS subject label of this participant."""
        assert self.journal is not None
        return bids_label(self.journal.pseudonym)

    @property
    def package_root(self) -> Path:
        """The folder that is packed: `<attempt>/package/sub-<label>`."""
        return self.attempt / "package" / f"sub-{self.label}"

    @property
    def zip_path(self) -> Path:
        """The encrypted package of this attempt."""
        return self.attempt / "out" / f"sub-{self.label}.zip"

    def finish(self) -> None:
        """Drop bulky intermediates once shared, the zip too (the destination has it), unless asked to keep them."""
        if not self.settings.keep_work:
            for name in ("deid", "package", "out"):
                shutil.rmtree(self.attempt / name, ignore_errors=True)
        if self.admission.note():
            self._save_row(note=self.admission.note())

    def checkpoint(self, where: str) -> None:
        """A safe point: stop here if the operator cancelled (nothing half-written stays behind)."""
        if self.cancel.is_set():
            raise Cancelled(f"cancelled {where}")

    def stopped(self, stage: str) -> None:
        """Record a cancel in the ledger: the row keeps its last finished status, so a rerun resumes."""
        if self.row is None:
            return
        with contextlib.suppress(MrishareError):
            self._save_row(last_action=f"cancelled during {stage}", note="cancelled by the operator; run again")

    def fail(self, stage: str, reason: str) -> None:
        """Record the failure in the ledger (best effort: the ledger itself may be the problem)."""
        if self.row is None:
            return
        if stage == "share" and self.journal is not None and "upload" in self.journal.done:
            reason += self._remove_upload()
        with contextlib.suppress(MrishareError):
            self._save_row(status="failed", last_action=f"{stage} failed", note=reason)

    def _remove_upload(self) -> str:
        """After a failed share: delete the uploaded file (nothing unshared stays); else say how to clean up."""
        assert self.journal is not None
        try:
            self.destination.revoke("", str(self.journal.done["upload"]["remote_path"]))
        except MrishareError:
            return "; the uploaded file is still on the server: `mrishare shares cleanup` removes it"
        self.journal.forget("upload")
        self._save_row(remote_path="")
        return "; the uploaded file was removed"

    def _done(self, step: str, *outputs: Path) -> bool:
        """True if the journal has `step` and its outputs are still there; otherwise forget it."""
        assert self.journal is not None
        if step in self.journal.done and all(p.exists() for p in outputs):
            return True
        self.journal.forget(step)
        return False

    # -- stages (each returns a one-line summary) -----------------------------------------
    # Each stage saves the ledger row before it marks the journal: after a crash the journal
    # never claims a step the ledger does not show, so a resumed run always completes the row.

    def deidentify(self) -> EventStream[str]:
        """De-identify into `<attempt>/deid`; quarantined files never go further."""
        out = self.attempt / "deid"
        if self._done("deidentify", out):
            assert self.journal is not None
            self._withhold(self.journal.done["deidentify"].get("damaged", []))
            return "done earlier"
        shutil.rmtree(out, ignore_errors=True)
        deid_settings = DeidSettings(options=self.profile.options, pseudonym=self.settings.pseudonym,
                                     modalities=self.settings.modalities,
                                     release_values=self.settings.release_values,
                                     protocol_pages=self.settings.protocol_pages)
        result = yield from relabel(deidentify_participant(self.participant, out, deid_settings, self.cancel),
                                    self.subject, "deidentify")
        if not result.released:
            raise MrishareError(f"nothing released ({len(result.quarantined)} quarantined, "
                                f"{len(result.skipped)} skipped)")
        assert self.journal is not None
        self._audit(result.audit_path, [(g, "withheld") for g in self.admission.withheld]
                    + [(g, "released") for g in self.admission.released])
        self.journal.pseudonym = result.pseudonym
        note = "; ".join(result.notes)
        self._save_row(pseudonym=result.pseudonym, status="de-identified", last_action="de-identified",
                       **({"note": note[:500]} if note else {}))
        damaged = [[path.name, reason] for path, reason in result.quarantined if reason.startswith("damaged header")]
        self._withhold(damaged)
        self.journal.mark("deidentify", released=len(result.released), quarantined=len(result.quarantined),
                          damaged=damaged, audit=str(result.audit_path or ""))
        return f"{len(result.released)} released, {len(result.quarantined)} quarantined"

    def _withhold(self, missing: list[list[str]]) -> None:
        """[what, why] of the participant's data that is missing from the package (a file held back for a
        damaged header, an image series the converter skipped): the run ends 'partly shared' and says which.
        A policy quarantine (burned-in text) or a series left out on purpose (localizer, raw data) is a decision."""
        if missing:
            gap = Gap("", None, tuple(Problem(why, (what,)) for what, why in missing))
            self.admission = replace(self.admission, withheld=(*self.admission.withheld, gap))

    def convert(self) -> EventStream[str]:
        """Convert every de-identified series to NIfTI + sidecar under the package folder."""
        from tui.core.nifti import conversion as nifti  # nibabel and dcm2niix only when a run converts

        if self._done("convert", self.package_root):
            assert self.journal is not None
            self._withhold(self.journal.done["convert"].get("missing", []))
            self._short(self.journal.done["convert"].get("short", []))
            return "done earlier"
        shutil.rmtree(self.attempt / "package", ignore_errors=True)
        released = scan(self.attempt / "deid", as_participant=True)
        inputs = nifti.inputs_from_scan(released.participants[0].series()) if released.participants else []
        results = yield from relabel(nifti.convert_series(inputs, self.attempt / "package", self.label,
                                                          engine=self.settings.engine, cancel=self.cancel),
                                     self.subject, "convert")
        converted = [r for r in results if isinstance(r, nifti.Converted)]
        if not converted:
            reasons = "; ".join(f"series {r.series_key}: {r.reason}" for r in results
                                if isinstance(r, nifti.NotConverted))
            raise MrishareError(f"no series could be converted to NIfTI ({reasons or 'no image series'})")
        assert self.journal is not None
        missing = [[f"series {r.series_key}", f"not converted ({r.reason})"] for r in results
                   if isinstance(r, nifti.NotConverted) and not r.reason.startswith(LEFT_OUT_ON_PURPOSE)]
        self._withhold(missing)
        # an engine that wrote fewer images than it got: withheld like a gap in the scan (or released, recorded)
        shortfalls = {c.series_key: c.shortfall for c in converted if c.shortfall}
        numbers = {str(n): s.number for n, s in enumerate(released.participants[0].series(), 1)}
        decision = "released" if self.settings.allow_incomplete else "withheld"
        short = [[numbers.get(key), why, decision] for key, why in shortfalls.items()]
        if decision == "withheld":
            converted = _drop_outputs(converted, set(shortfalls))
        gaps = self._short(short)
        self._audit(self.journal.done["deidentify"].get("audit"), [(gap, decision) for gap in gaps])
        for gap in gaps:
            yield StepNote(self.subject, "convert", f"{decision} {gap.text()}", "warning")
        if not converted:
            raise MrishareError("every series is incomplete; nothing shared (" + " | ".join(g.text() for g in gaps)
                                + "); --allow-incomplete releases them with the gaps recorded")
        self._save_row(status="converted", series=len(converted), last_action="converted")
        self.journal.mark("convert", files=[str(c.nifti.relative_to(self.attempt)) for c in converted],
                          suffixes=[c.suffix for c in converted], missing=missing, short=short)
        return f"{len(converted)} series converted, {len(results) - len(converted)} skipped"

    def _short(self, short: list[list[Any]]) -> list[Gap]:
        """[SeriesNumber, shortfall, decision] of series the engine converted only in part, as withheld or
        released gaps of the admission (the run then ends 'partly shared', or the README says so)."""
        gaps = [Gap(f"converted {number}", number, (Problem(why),)) for number, why, _ in short]
        for gap, (_, _, decision) in zip(gaps, short, strict=True):
            if decision == "released":
                self.admission = replace(self.admission, released=(*self.admission.released, gap))
            else:
                self.admission = replace(self.admission, withheld=(*self.admission.withheld, gap))
        return gaps

    def _audit(self, path: str | Path | None, decisions: list[tuple[Gap, str]]) -> None:
        """Record each incomplete series and what was decided (withheld, released) in the run's audit log."""
        if decisions and path:
            with AuditLog("", path=Path(path)) as audit:
                for gap, decision in decisions:
                    audit.write({"type": "incomplete", "subject": self.subject, "decision": decision,
                                 "where": gap.where, "problems": [str(p) for p in gap.problems]})

    def _converted(self) -> list[tuple[Path, str]]:
        assert self.journal is not None
        facts = self.journal.done["convert"]
        return [(self.attempt / f, s) for f, s in zip(facts["files"], facts["suffixes"], strict=True)]

    def deface(self) -> EventStream[str]:
        """Reface/deface anatomical series in place; a failed face check holds a series back if the preset says so."""
        mode = self.profile.deface
        if mode == "off":
            return "off"
        assert self.journal is not None
        if self._done("deface"):
            return "done earlier"
        # Imported here: SimpleITK, dlib and the face models take ~0.2 s that only this stage needs.
        from tui.core.nifti import deface as deface_mod
        from tui.core.nifti.facecheck import face_check

        done: list[str] = list(self.journal.done.get("deface-files", {}).get("files", []))
        checks: dict[str, str] = dict(self.journal.done.get("deface-files", {}).get("checks", {}))
        reference = None
        held = 0
        for path, suffix in self._converted():
            rel = str(path.relative_to(self.attempt))
            if suffix not in ANATOMICAL or rel in done or not path.exists():
                continue
            out = path.with_name(f".defaced-{path.name}")
            job = (deface_mod.deface(path, out, mode, self.cancel, subject=self.subject) if reference is None
                   else deface_mod.apply_to_other(reference, path, out, self.cancel, subject=self.subject))
            result = yield from relabel(job, self.subject, "deface")
            reference = reference or result
            check = face_check(out, mode, original=path, png_dir=self.home / "facecheck" / path.name.split(".")[0])
            if mode == "reface" and not check.passed:  # the new face is still the participant's: remove it
                yield StepNote(self.subject, "deface", f"reface of {suffix} is not a stranger ({check.summary()}); "
                               "falling back to deface", "warning")
                result = yield from relabel(deface_mod.apply_to_other(result, path, out, self.cancel,
                                                                      subject=self.subject, mode="deface"),
                                            self.subject, "deface")
                check = face_check(out, "deface", png_dir=self.home / "facecheck" / path.name.split(".")[0])
            checks[rel] = f"{result.mode}: {check.summary()}"
            if not check.passed:
                yield StepNote(self.subject, "deface", f"face check failed on {suffix}: renders in "
                               f"{self.home / 'facecheck'}", "warning")
                if self.profile.face_check_blocks:
                    out.unlink()
                    path.unlink()
                    path.with_name(path.name.replace(".nii.gz", ".json")).unlink(missing_ok=True)
                    held += 1
                    done.append(rel)
                    self.journal.mark("deface-files", files=done, checks=checks)
                    continue
            out.replace(path)
            done.append(rel)
            self.journal.mark("deface-files", files=done, checks=checks)
        if not any(path.exists() for path, _ in self._converted()):
            raise MrishareError("every series was held back by the face check")
        self._save_row(status="defaced", last_action=f"{mode} done")
        self.journal.mark("deface", mode=mode, held=held)
        return f"{mode}: {len(done) - held} series, {held} held back"

    def pack(self) -> EventStream[str]:
        """Previews and README, the leak gate over everything, then the verified encrypted zip."""
        from tui.core.delivery import package  # pyzipper only when a run packs
        from tui.core.nifti.viewer_page import gated_files

        assert self.journal is not None and self.row is not None
        zip_path = self.zip_path
        if self._done("pack", zip_path) and self.row.passphrase:
            return "done earlier"
        zip_path.unlink(missing_ok=True)
        self._write_docs()
        self.checkpoint("before the leak gate")
        notes = self._leak_gate(gated_files(self.package_root), self.package_root.parent)
        for line in notes:
            yield StepNote(self.subject, "pack", f"leak gate: {line}", "warning")
        self.checkpoint("before packing")
        phrase = passphrase.generate(self.settings.language)
        result = yield from relabel(package.build_package(self.package_root, zip_path, phrase,
                                                          self.settings.encryption, self.cancel),
                                    self.subject, "pack")
        self._write_unlock_page(zip_path, phrase.text())
        self._save_row(passphrase=phrase.text(), sha256=result.sha256, size=result.size, mode=result.mode,
                       status="packed", last_action="packed and verified")
        self.journal.mark("pack", size=result.size)
        return f"{result.members} files, {result.size / 1e6:.1f} MB, {result.mode}"

    def _write_docs(self) -> None:
        from tui.core.nifti import preview  # nibabel and Pillow only when a run writes previews
        from tui.core.nifti.participant_docs import write_participant_docs

        items = [p for p, _ in self._converted() if p.exists()]
        previews = {p.name: preview.make_previews(p, self.package_root / "previews") for p in items}
        write_participant_docs(self.package_root, items, previews, faces_changed=self.profile.deface != "off",
                               viewer=self.settings.include_viewer, about=self._about())
        if self.admission.in_package:  # what may be incomplete in the package: the README says so
            with open(self.package_root / "README.txt", "a", encoding="utf-8") as readme:
                readme.write("\nINCOMPLETE DATA:\n"
                             + "".join(f"  - {gap.summary()}\n" for gap in self.admission.in_package))

    def _about(self) -> About:
        """Lab, contact and study from the settings; the scan date only where the preset keeps real dates."""
        from tui.core.nifti.participant_docs import About

        scanned = None
        patient = self.participant.main_patient
        if "rtn_long_full_dates" in self.profile.options and patient is not None:
            dates = sorted(s.date for s in patient.studies if re.fullmatch(r"\d{8}", s.date or ""))
            scanned = datetime.strptime(dates[0], "%Y%m%d").date() if dates else None
        return About(self.settings.lab_name, self.settings.lab_contact, self.settings.study_name, scanned)

    def _write_unlock_page(self, zip_path: Path, phrase: str) -> None:
        """The passphrase page beside the zip; the leak gate searches what was put into its template (not the
        ciphertext, whose content it already searched in the package)."""
        from tui.core.delivery.unlock_page import write_unlock_page

        page = write_unlock_page(zip_path, phrase)
        identifiers = leakcheck.collect_identifiers(self.participant, self.profile.options,
                                                    self.settings.release_values)
        blocking = [leak for leak in leakcheck.check_text(page.inserted, identifiers, "page", page.path.name)
                    if leak.blocks]  # our template's own words are never a finding; kept values are notes
        if blocking:
            page.path.unlink()
            zip_path.unlink()
            raise MrishareError("leak gate: identifying value(s) in the passphrase page "
                                f"({'; '.join(leakcheck.summarize(blocking, limit=3))}); nothing released", page.path)

    def _leak_gate(self, files: list[Path], root: Path) -> list[str]:
        """Refuse to release if a blocking identifier of the participant is found in a file or a name
        below `root`; the findings that do not block come back grouped, for the report."""
        identifiers = leakcheck.collect_identifiers(self.participant, self.profile.options,
                                                    self.settings.release_values)
        leaks = leakcheck.check_files(files, identifiers, root=root, options=self.profile.options)
        blocking = [leak for leak in leaks if leak.blocks]
        if blocking:
            groups = leakcheck.summarize(blocking, limit=3)
            raise MrishareError(f"leak gate: {len(blocking)} identifying value(s) found ({'; '.join(groups)}); "
                                "nothing released (release a value you judge harmless with "
                                "--release-value KEYWORD=VALUE)")
        return leakcheck.summarize(leaks)

    def upload(self) -> EventStream[str]:
        """Send the zip; a file that already arrived before a crash is taken as delivered."""
        assert self.journal is not None
        assert self.row is not None
        if self._done("upload") and self.row.remote_path:  # no remote_path: `shares cleanup` removed it
            return "done earlier"
        self.journal.forget("upload")
        if self.to_node:
            return (yield from self._send_to_node())
        remote_name = f"{self.journal.share_id}/{self.zip_path.name}"
        size = self.zip_path.stat().st_size
        if self.destination.exists(remote_name):
            delivered = Delivered(remote_name, size, None)
            yield StepNote(self.subject, "upload", "already at the destination from an earlier run")
        else:
            self.checkpoint("before the upload")
            delivered = yield from relabel(self.destination.upload(self.zip_path, remote_name, self.cancel),
                                           self.subject, "upload")
        page = page_path(self.zip_path)  # beside the zip where one link reaches both: a folder, for now
        if self.destination.kind == "folder" and page.exists() and not self.destination.exists(
                f"{self.journal.share_id}/{page.name}"):
            drain(self.destination.upload(page, f"{self.journal.share_id}/{page.name}", self.cancel))
            yield StepNote(self.subject, "upload", f"passphrase page {page.name} beside the zip")
        self._save_row(remote_path=delivered.remote_path, status="uploaded", last_action="uploaded")
        self.journal.mark("upload", remote_path=delivered.remote_path, size=delivered.size)
        return f"{delivered.size / 1e6:.1f} MB"

    def _send_to_node(self) -> EventStream[str]:
        """Leak gate over the released DICOM, then C-STORE exactly those files to the node."""
        from tui.core.net.dicom_net import (
            dicom_files,  # pynetdicom only when a node is used
        )

        assert self.journal is not None
        deid = self.attempt / "deid"
        files = dicom_files(deid)
        if not files:
            raise MrishareError("no de-identified DICOM to send", deid)
        if self.profile.deface != "off":
            files = yield from self._deface_dicom(deid, files)
        for line in self._leak_gate(files, self.attempt):  # defaced copies lie beside deid/, under the attempt
            yield StepNote(self.subject, "upload", f"leak gate: {line}", "warning")
        self.checkpoint("before sending to the node")
        node = cast("DicomNodeDestination", self.destination)
        delivered = yield from relabel(node.send(files, f"{self.journal.share_id}/sub-{self.label}", self.cancel),
                                       self.subject, "upload")
        self._save_row(remote_path=delivered.remote_path, size=delivered.size, status="uploaded",
                       last_action=f"sent to node {node.node.name}")
        self.journal.mark("upload", remote_path=delivered.remote_path, size=delivered.size)
        return f"{len(files)} files to {node.node.name}"

    def _deface_dicom(self, deid: Path, files: list[Path]) -> EventStream[list[Path]]:
        """Files to send with each anatomical series defaced in its pixel data; one that fails is withheld."""
        from tui.core.nifti import conversion as nifti
        from tui.core.nifti.dicom_deface import deface_for_release

        released = scan(deid, as_participant=True)
        sending = set(files)
        for series in nifti.inputs_from_scan(released.participants[0].series() if released.participants else []):
            work = self.attempt / "dicom-deface" / series.key
            shutil.rmtree(work, ignore_errors=True)
            try:
                written = yield from relabel(deface_for_release(series, self.profile.deface, work, ANATOMICAL,
                                                                self.settings.engine, self.cancel, self.subject),
                                             self.subject, "upload")
            except MrishareError as error:
                written = None
                sending -= set(series.files)
                yield StepNote(self.subject, "upload", f"series {series.key} withheld: {error}", "warning")
            if written is not None:
                sending = (sending - set(series.files)) | set(written.files)
        return sorted(sending)

    def share(self) -> EventStream[str]:
        """Create the expiring link (or find the one made before a crash) and complete the ledger row."""
        assert self.journal is not None
        if self._done("share"):
            return "done earlier"
        remote_path = str(self.journal.done["upload"]["remote_path"])
        label = self.journal.share_id
        assert self.row is not None
        policy = self.policy or self.destination.policy()
        days = policy.expire_days(self.settings.expiry_days)
        if (self.settings.wants_share_password or policy.password_required) and not self.row.share_password:
            # into the ledger before the server sees it, so a crash cannot lose a live share's password
            self._save_row(share_password=share_password(self.settings.language, policy.password_min_length))
        info = next((s for s in self.destination.list_shares() if s.label == label), None)
        if info is None:
            self.checkpoint("before the link was made")
            info = self.destination.share(remote_path, days, label, self.row.share_password or None)
        note = "" if days == self.settings.expiry_days else (
            f"link gives {days} days, not {self.settings.expiry_days}: the server allows at most {days}")
        if note:
            yield StepNote(self.subject, "share", note, "warning")
        self._save_row(share_id=info.share_id, link=info.url, expires=info.expires, status="shared",
                       last_action="link shared", note=note)
        self.journal.mark("share", share_id=info.share_id)
        return f"link works until {info.last_day} inclusive" if info.last_day else "link without expiry"
