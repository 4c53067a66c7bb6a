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
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
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
from tui.core.delivery.unlock_page import PageSealer, PageTooLarge, page_path
from tui.core.dicom.completeness import Admission, Gap, admit, choose_patient
from tui.core.dicom.scan import Participant, Problem, scan
from tui.core.errors import Cancelled, MrishareError
from tui.core.events import Event, EventStream, StepFailed, StepFinished, StepNote, StepStarted, drain, relabel
from tui.core.journal import Journal
from tui.core.run_settings import STAGES, PipelineSettings
from tui.core.safetext import crash_report, disk_error

if TYPE_CHECKING:
    from tui.core.delivery.node import DicomNodeDestination
    from tui.core.nifti.deface import DefaceResult
    from tui.core.nifti.deface_pairs import Pairing, SeriesGeometry
    from tui.core.nifti.participant_docs import About

ANATOMICAL = frozenset({"T1w", "T2w", "FLAIR", "PDw"})
FACE_SUFFIXES = ANATOMICAL | {"T2starw", "fieldmap"}
"""Series whose voxels show the face (anatomy, multi-echo GRE for QSM/SWI, field maps): they are defaced, and so is
every file on their grid (echoes, phase, MP2RAGE parts) with their mask."""
NOT_FOR_NODE = frozenset({"convert", "deface", "pack", "share"})
NOT_FOR_PROCESSING = frozenset({"pack", "share"})
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


TEMPLATE_HEAD = "the deface template's own head (demo data): its face is an average of many people, no one's"


@dataclass
class _DefaceState:
    """Progress of the deface stage, kept in the journal so a resumed run goes on where it stopped: files done
    (held ones included), face-check summaries, and each defaced file's registration for its partners."""

    files: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)
    results: dict[str, DefaceResult] = field(default_factory=dict)
    reference: DefaceResult | None = None  # the first registration, reused for the participant's other series

    @classmethod
    def load(cls, facts: dict[str, Any]) -> _DefaceState:
        """From the journal's `deface-files` facts."""
        from tui.core.nifti.deface import DefaceResult

        results = {rel: DefaceResult(Path(rel), mode, 0, 0, float("nan"), {}, tuple(transform))
                   for rel, (mode, transform) in facts.get("results", {}).items()}
        reference = results.get(facts.get("reference", ""))
        return cls(list(facts.get("files", [])), list(facts.get("held", [])), dict(facts.get("checks", {})),
                   results, reference)

    def facts(self) -> dict[str, Any]:
        """For the journal (JSON values)."""
        reference = next((rel for rel, r in self.results.items() if r is self.reference), "")
        return {"files": self.files, "held": self.held, "checks": self.checks, "reference": reference,
                "results": {rel: [r.mode, list(r.transform)] for rel, r in self.results.items() if r.transform}}


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
        if run.to_processing and run.profile.deface == "off":  # a job leaves the lab: faces stay home
            raise MrishareError("a processing job sends defaced images only; use --preset research or "
                                "--deface reface|deface")
        if not delivered_before and not run.to_node:  # login, sharing rights and link rules, before any work
            stage = "upload"
            run.policy = run.destination.policy()
            run.policy.expire_days(settings.expiry_days)
        for stage in STAGES:
            yield StepStarted(run.subject, stage)
            run.checkpoint(f"at the start of {stage}")
            if run.to_node and stage in NOT_FOR_NODE:
                summary = "not for a DICOM node"
            elif run.to_processing and stage in NOT_FOR_PROCESSING:
                summary = "not for a processing job"
            elif delivered_before:  # a finished run is not redone (its work files are gone)
                summary = "done earlier"
            else:
                summary = yield from getattr(run, stage)()
            yield StepFinished(run.subject, stage, summary)
        run.finish()
        if run.admission.note():  # the CLI, the TUI's log and the ledger all say it
            yield StepNote(run.subject, STAGES[-1], run.admission.note(), "warning")
        status = ("partly shared" if run.admission.partial else "uploaded" if run.to_node or run.to_processing
                  else "shared")
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


class _Awaited(Mapping[str, list[Path]]):
    """Preview files still being drawn on a helper thread: looking one up waits for it (and raises its error)."""

    def __init__(self, futures: dict[str, Future[list[Path]]]) -> None:
        self._futures = futures

    def __getitem__(self, key: str) -> list[Path]:
        return self._futures[key].result()

    def __iter__(self) -> Iterator[str]:
        return iter(self._futures)

    def __len__(self) -> int:
        return len(self._futures)


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
        self.to_processing = destination.kind == "processing"
        # one work folder per (participant, ledger): a package belongs to the ledger row that made it
        self.home = settings.work_dir / f"{participant.key}-{gate.ledger.owner_tag}"
        self.journal: Journal | None = None
        self.row: LedgerRow | None = None
        self.policy: SharePolicy | None = None
        self.admission = Admission(participant, (), ())
        self._known: leakcheck.Identifiers | None = None

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
        """True once the last stage is done: `share`, or `upload` to a DICOM node or a processing job."""
        return self.journal is not None and ("upload" if self.to_node or self.to_processing else "share") \
            in self.journal.done

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
        self._known = result.identifiers  # the same values the gates ask for later (read once, not per gate)
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
                          suffixes=[c.suffix for c in converted], missing=missing, short=short,
                          pairing=[{"frame": c.frame_of_reference, "image_type": list(c.image_type),
                                    "description": c.description, "echo": c.echo, "part": c.part}
                                   for c in converted])
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

    def _face_series(self) -> list[SeriesGeometry]:
        """The converted files that show the face: anatomical (and field map, multi-echo GRE) series, and every
        file on the same grid as one of them (its echoes, its phase, MP2RAGE parts), keyed by path."""
        from tui.core.nifti.deface_pairs import SeriesGeometry, same_grid

        assert self.journal is not None
        converted = self._converted()
        study, faces = [], []
        for (path, suffix), fact in zip(converted, self.journal.done["convert"].get("pairing") or
                                        [{}] * len(converted), strict=True):
            if not path.exists():
                continue
            geometry = SeriesGeometry.of_nifti(str(path.relative_to(self.attempt)), path, fact.get("frame", ""),
                                               tuple(fact.get("image_type", ())), fact.get("description", ""),
                                               fact.get("echo"), fact.get("part"))
            study.append(geometry)
            if suffix in FACE_SUFFIXES:
                faces.append(geometry)
        keys = {face.key for face in faces}
        return [s for s in study if s.key in keys or any(same_grid(s, face) for face in faces)]

    def deface(self) -> EventStream[str]:
        """Reface/deface the series that show the face, in place; a failed face check holds a series back if the
        preset says so. Echoes, phase and MP2RAGE parts take the mask of their partner (deface_pairs)."""
        mode = self.profile.deface
        if mode == "off":
            return "off"
        assert self.journal is not None
        if self._done("deface"):
            return "done earlier"
        from tui.core.nifti.deface_pairs import plan

        state = _DefaceState.load(self.journal.done.get("deface-files", {}))
        pairings, unpaired = plan(self._face_series())
        for pairing in pairings:
            if pairing.target.key not in state.files:
                yield from self._deface_one(pairing, mode, state)
                self.journal.mark("deface-files", **state.facts())
        for lone in unpaired:
            if lone.key not in state.files:
                self._hold(self.attempt / lone.key, state)
                yield StepNote(self.subject, "deface", f"{Path(lone.key).name} withheld: a phase image with no "
                               "magnitude on its grid cannot be defaced", "warning")
                self.journal.mark("deface-files", **state.facts())
        if not any(path.exists() for path, _ in self._converted()):
            raise MrishareError("every series was held back by the face check")
        self._save_row(status="defaced", last_action=f"{mode} done")
        self.journal.mark("deface", mode=mode, held=len(state.held))
        return f"{mode}: {len(state.files) - len(state.held)} series, {len(state.held)} held back"

    def _deface_one(self, pairing: Pairing, mode: str, state: _DefaceState) -> EventStream[None]:
        """Deface one file with its own registration or its partner's mask, face-check it, replace it or hold it."""
        from tui.core.nifti import deface as deface_mod
        from tui.core.nifti.facecheck import face_check

        path, rel = self.attempt / pairing.target.key, pairing.target.key
        out = path.with_name(f".defaced-{path.name}")
        source = state.results.get(pairing.source.key)
        phase = pairing.target.role == "phase"
        if pairing.source is not pairing.target:
            if source is None:  # its mask source was held back: nothing else gives this file a mask
                self._hold(path, state)
                yield StepNote(self.subject, "deface", f"{path.name} withheld with its partner "
                               f"{Path(pairing.source.key).name}", "warning")
                return
            yield StepNote(self.subject, "deface", f"{path.name}: mask of {pairing.rule}")

        def job(run_mode: str, reference: deface_mod.DefaceResult | None) -> EventStream[deface_mod.DefaceResult]:
            if pairing.source is not pairing.target:
                assert source is not None
                return deface_mod.apply_to_echoes(replace(source, mode=run_mode), path, out, phase, self.cancel,
                                                  self.subject)
            if pairing.denoise:
                return self._deface_denoised(path, out, reference, self.cancel)
            if reference is None:
                return deface_mod.deface(path, out, run_mode, self.cancel, subject=self.subject)
            return deface_mod.apply_to_other(reference, path, out, self.cancel, subject=self.subject, mode=run_mode)

        try:
            result = yield from relabel(job("deface" if pairing.denoise else mode, state.reference), self.subject,
                                        "deface")
        except MrishareError as error:
            if pairing.source is pairing.target:
                raise
            self._hold(path, state)  # a partner that cannot take the mask never leaves with a face
            yield StepNote(self.subject, "deface", f"{path.name} withheld: {error}", "warning")
            return
        png_dir = self.home / "facecheck" / path.name.split(".")[0]
        passed, summary = True, f"phase 0 inside the face mask of {Path(pairing.source.key).name}"
        if not phase:
            check = face_check(out, result.mode, original=path, png_dir=png_dir)
            if result.mode == "reface" and not check.passed:  # the new face is still the participant's
                yield StepNote(self.subject, "deface", f"reface of {path.name} is not a stranger ({check.summary()}); "
                               "falling back to deface", "warning")
                result = yield from relabel(job("deface", result), self.subject, "deface")
                check = face_check(out, "deface", png_dir=png_dir)
            passed, summary = check.passed, check.summary()
            if not passed and result.is_template:  # the demo head: nobody's face, see deface.TEMPLATE_ITSELF
                passed, summary = True, f"{TEMPLATE_HEAD} ({summary})"
                yield StepNote(self.subject, "deface", f"{path.name}: {TEMPLATE_HEAD}")
        state.checks[rel] = f"{result.mode}: {summary}"
        if pairing.source is pairing.target:
            state.reference = state.reference or result
        if not passed:
            yield StepNote(self.subject, "deface", f"face check failed on {path.name}: renders in "
                           f"{self.home / 'facecheck'}", "warning")
            if self.profile.face_check_blocks:
                out.unlink()
                self._hold(path, state)
                return
        out.replace(path)
        state.results[rel] = result
        state.files.append(rel)

    def _deface_denoised(self, uni: Path, out: Path, reference: DefaceResult | None,
                         cancel: threading.Event) -> EventStream[DefaceResult]:
        """An MP2RAGE UNI without its INV2: registered on a copy with the noisy background cleared, then defaced."""
        from tui.core.nifti import deface as deface_mod
        from tui.core.nifti.deface_pairs import write_denoised

        quiet = write_denoised(uni, uni.with_name(f".denoised-{uni.name}"))
        try:
            registered = yield from (deface_mod.deface(quiet, out, "deface", cancel, subject=self.subject)
                                     if reference is None else
                                     deface_mod.apply_to_other(reference, quiet, out, cancel, subject=self.subject,
                                                               mode="deface"))
        finally:
            quiet.unlink(missing_ok=True)
        return (yield from deface_mod.apply_to_echoes(registered, uni, out, cancel=cancel, subject=self.subject))

    def _hold(self, path: Path, state: _DefaceState) -> None:
        """Remove a file that must not leave (and its sidecar); the journal remembers it as held back."""
        path.unlink(missing_ok=True)
        path.with_name(path.name.replace(".nii.gz", ".json")).unlink(missing_ok=True)
        rel = str(path.relative_to(self.attempt))
        state.held.append(rel)
        state.files.append(rel)

    def pack(self) -> EventStream[str]:
        """Previews and README, the leak gate over everything, then the verified encrypted zip."""
        from tui.core.delivery import package  # pyzipper only when a run packs
        from tui.core.nifti.viewer_page import gated_files

        assert self.journal is not None and self.row is not None
        zip_path = self.zip_path
        if self._done("pack", zip_path) and self.row.passphrase:
            return "done earlier"
        zip_path.unlink(missing_ok=True)
        if self.settings.keep_dicom:
            yield from self._package_dicom()
        self._write_docs()
        self.checkpoint("before the leak gate")
        notes = self._leak_gate(gated_files(self.package_root), self.package_root.parent)
        for line in notes:
            yield StepNote(self.subject, "pack", f"leak gate: {line}", "warning")
        self.checkpoint("before packing")
        phrase = passphrase.generate(self.settings.language)
        page_path(zip_path).unlink(missing_ok=True)  # an earlier attempt's page never stays beside a new zip
        sealer = PageSealer(self.package_root, phrase.text())  # works while the zip is written
        result = yield from relabel(package.build_package(self.package_root, zip_path, phrase,
                                                          self.settings.encryption, self.cancel),
                                    self.subject, "pack")
        if note := self._write_unlock_page(zip_path, sealer):
            yield StepNote(self.subject, "pack", note, "warning")
        self._save_row(passphrase=phrase.text(), sha256=result.sha256, size=result.size, mode=result.mode,
                       status="packed", last_action="packed and verified")
        self.journal.mark("pack", size=result.size)
        return f"{result.members} files, {result.size / 1e6:.1f} MB, {result.mode}"

    def _package_dicom(self) -> EventStream[None]:
        """`--keep-dicom`: the de-identified DICOM beside the NIfTI in `dicom/`, anatomy defaced in its pixel data
        as the preset says (a series that cannot be defaced is left out); the leak gate then searches it too."""
        from tui.core.net.dicom_net import dicom_files

        deid, target = self.attempt / "deid", self.package_root / "dicom"
        shutil.rmtree(target, ignore_errors=True)
        files = dicom_files(deid)
        release = {path: path for path in files}
        if self.profile.deface != "off":
            release = yield from self._deface_dicom(deid, files, "pack")
        for source, final in release.items():
            where = target / Path(*source.relative_to(deid).parts[1:])  # below the pseudonym's folder
            where.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(final, where)
        how = f" ({self.profile.deface}d where they show the face)" if self.profile.deface != "off" else ""
        yield StepNote(self.subject, "pack", f"{len(release)} of {len(files)} DICOM files in dicom/{how}")

    def _write_docs(self) -> None:
        from tui.core.nifti import preview  # nibabel and Pillow only when a run writes previews
        from tui.core.nifti.participant_docs import write_participant_docs

        items = [p for p, _ in self._converted() if p.exists()]
        # previews are drawn on a helper thread while the viewer copies are made (numpy, Pillow and zlib let go of
        # the GIL): 0.18 s -> 0.10 s for the 2 mm head; index.html waits for them
        with ThreadPoolExecutor(1, thread_name_prefix="mrishare-previews") as pool:
            previews = _Awaited({p.name: pool.submit(preview.make_previews, p, self.package_root / "previews")
                                 for p in items})
            write_participant_docs(self.package_root, items, previews, faces_changed=self.profile.deface != "off",
                                   viewer=self.settings.include_viewer, about=self._about())
        if (self.package_root / "dicom").is_dir():
            from tui.core.nifti.participant_docs import dicom_note

            with open(self.package_root / "README.txt", "a", encoding="utf-8") as readme:
                readme.write(dicom_note(self.profile.deface != "off"))
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

    def _write_unlock_page(self, zip_path: Path, sealer: PageSealer) -> str:
        """The passphrase page beside the zip; the leak gate searches what was put into its template (not the
        ciphertext, whose content it already searched in the package). A package too large for a page gets one with
        the anatomical images only, or none if even those are too large: the returned note says so (the upload and
        the mail then go without a page)."""
        try:
            page = sealer.write(zip_path)
        except PageTooLarge as error:
            return f"no passphrase page: {error.reason}"
        identifiers = self._identifiers()
        blocking = [leak for leak in leakcheck.check_text(page.inserted, identifiers, "page", page.path.name)
                    if leak.blocks]  # our template's own words are never a finding; kept values are notes
        if blocking:
            page.path.unlink()
            zip_path.unlink()
            raise MrishareError("leak gate: identifying value(s) in the passphrase page "
                                f"({'; '.join(leakcheck.summarize(blocking, limit=3))}); nothing released", page.path)
        if page.left_out:
            return (f"passphrase page holds the anatomical images only ({len(page.left_out)} files left out: "
                    "package too large for a browser page)")
        return ""

    def _identifiers(self) -> leakcheck.Identifiers:
        """The participant's identifying values under this run's options: from the de-identification step, or
        read from the headers once when that step was done by an earlier run."""
        if self._known is None:
            self._known = leakcheck.collect_identifiers(self.participant, self.profile.options,
                                                        self.settings.release_values)
        return self._known

    def _leak_gate(self, files: list[Path], root: Path) -> list[str]:
        """Refuse to release if a blocking identifier of the participant is found in a file or a name
        below `root`; the findings that do not block come back grouped, for the report."""
        identifiers = self._identifiers()
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
        if self.to_processing:
            return (yield from self._submit_job())
        remote_name = f"{self.journal.share_id}/{self.zip_path.name}"
        size = self.zip_path.stat().st_size
        if self.destination.exists(remote_name):
            delivered = Delivered(remote_name, size, None)
            yield StepNote(self.subject, "upload", "already at the destination from an earlier run")
        else:
            self.checkpoint("before the upload")
            delivered = yield from relabel(self.destination.upload(self.zip_path, remote_name, self.cancel),
                                           self.subject, "upload")
        page = page_path(self.zip_path)  # beside the zip, in the share's own folder (a random name)
        if page.exists():
            if not self.destination.exists(f"{self.journal.share_id}/{page.name}"):
                drain(self.destination.upload(page, f"{self.journal.share_id}/{page.name}", self.cancel))
            yield StepNote(self.subject, "upload", f"passphrase page {page.name} beside the zip")
            if self.destination.kind == "nextcloud":  # one link reaches both: the folder is shared, read-only
                delivered = replace(delivered, remote_path=self.journal.share_id)
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
            files = sorted((yield from self._deface_dicom(deid, files, "upload")).values())
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

    def _submit_job(self) -> EventStream[str]:
        """The pipeline's inputs, the leak gate over them and job.json, then the job into the inbox (issue 14).

        The job id is kept in the journal before anything is sent: a rerun after a crash finds the job it
        submitted instead of submitting a second one.
        """
        from tui.core.delivery.jobs import new_job_id
        from tui.core.delivery.processing import ProcessingDestination, choose_inputs, job_files

        assert self.journal is not None
        target = cast("ProcessingDestination", self.destination)
        state = _DefaceState.load(self.journal.done.get("deface-files", {}))
        defaced = None if self.profile.deface == "off" else {
            self.attempt / rel for rel in state.files if rel not in state.held}
        chosen, notes = choose_inputs(target.pipeline, self._converted(), defaced)
        for note in notes:
            yield StepNote(self.subject, "upload", note, "warning")
        if "job" not in self.journal.done:
            self.journal.mark("job", id=new_job_id())
        job, files = job_files(str(self.journal.done["job"]["id"]), target.pipeline, self.journal.pseudonym, chosen)
        for line in self._leak_gate(list(files.values()), self.package_root.parent):
            yield StepNote(self.subject, "upload", f"leak gate: {line}", "warning")
        identifiers = self._identifiers()
        blocking = [leak for leak in leakcheck.check_text(job.to_json(), identifiers, "job.json", "job.json")
                    if leak.blocks]
        if blocking:
            raise MrishareError(f"leak gate: identifying value(s) in job.json "
                                f"({'; '.join(leakcheck.summarize(blocking, limit=3))}); nothing sent")
        self.checkpoint("before submitting the job")
        if target.exists(job.id):
            delivered = Delivered(f"inbox/{job.id}", sum(f.size for f in job.inputs), None)
            yield StepNote(self.subject, "upload", "the job was submitted by an earlier run")
        else:
            delivered = yield from relabel(target.submit(job, files, self.cancel), self.subject, "upload")
        self._save_row(remote_path=delivered.remote_path, size=delivered.size, status="uploaded", job="queued",
                       last_action=f"job queued for {target.pipeline}", **({"note": notes[0]} if notes else {}))
        self.journal.mark("upload", remote_path=delivered.remote_path, size=delivered.size)
        return f"job {job.id}: {len(chosen)} image(s) for {target.pipeline}"

    def _deface_dicom(self, deid: Path, files: list[Path], stage: str) -> EventStream[dict[Path, Path]]:
        """Each de-identified file that may leave -> the file to release: an anatomical series defaced in its pixel
        data (new copies), the rest as it is; a series whose defacing fails is withheld (absent). Its progress and
        notes belong to `stage` (pack for --keep-dicom, upload for a DICOM node)."""
        from tui.core.nifti import conversion as nifti
        from tui.core.nifti.dicom_deface import deface_for_release

        released = scan(deid, as_participant=True)
        sending = {path: path for path in files}
        for series in nifti.inputs_from_scan(released.participants[0].series() if released.participants else []):
            work = self.attempt / "dicom-deface" / series.key
            shutil.rmtree(work, ignore_errors=True)
            try:
                written = yield from relabel(deface_for_release(series, self.profile.deface, work, ANATOMICAL,
                                                                self.settings.engine, self.cancel, self.subject),
                                             self.subject, stage)
            except MrishareError as error:
                written = None
                for path in series.files:
                    sending.pop(path, None)
                yield StepNote(self.subject, stage, f"series {series.key} withheld: {error}", "warning")
            if written is not None:
                sending.update(zip(series.files, written.files, strict=True))
        return sending

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
