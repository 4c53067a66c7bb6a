"""De-identification of whole participants (one dataset: `cleaner`; the written bytes: `file_bytes`).

`deidentify_participant(...)` runs `deidentify_dataset` over a participant's files in worker
processes: quarantine rules first, then de-identification, then the leak gate on the bytes about
to be written and on the output path; a file the gate flags is held back, never written. Pixel
data is not touched, so released images keep it byte-identical.

No DICOMDIR is written for the output (the folder layout is the index); input DICOMDIRs are
not copied.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tui import __version__
from tui.core.childproc import drop_working_folder, finished_futures, pool_context
from tui.core.config import site_secret
from tui.core.deid.audit import AuditLog, new_run_id
from tui.core.deid.cleaner import DeidContext, deidentify_dataset
from tui.core.deid.file_bytes import PIXEL_TAG, serialize
from tui.core.deid.leakcheck import (
    Identifiers,
    Leak,
    charsets_of,
    check_bytes,
    check_dataset,
    check_paths,
    collect_identifiers,
    kept_notes,
    summarize,
)
from tui.core.deid.pseudonym import Pseudonymizer, identity_key, parse_scheme, record_mapping
from tui.core.deid.quarantine import QuarantineStore, quarantine_reason
from tui.core.dicom import annex_e
from tui.core.dicom.dateshift import offset_days, offset_seconds
from tui.core.dicom.scan import Participant
from tui.core.dicom.tags import malformed_element
from tui.core.dicom.uidmap import is_well_known
from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepFailed, StepFinished, StepNote, StepProgress, StepStarted, Throttle
from tui.core.presets import DEID_OPTIONS as DEFAULT_OPTIONS
from tui.core.presets import PROTOCOL_PAGES

STEP = "deid"
PARALLEL_MIN_FILES = 24
CHUNK = 16

PLAIN_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 6", "ISO 2022 IR 100"})


@dataclass(frozen=True)
class DeidSettings:
    """What a de-identification run does (options are PS3.15 option names, see `annex_e.OPTIONS`)."""

    options: frozenset[str] = DEFAULT_OPTIONS
    pseudonym: str = "keyed"
    modalities: frozenset[str] = frozenset({"MR"})
    protocol_pages: tuple[str, ...] = PROTOCOL_PAGES
    """SeriesDescriptions of protocol/report pages, quarantined whatever BurnedInAnnotation says."""
    keep_originals_in_audit: bool = False
    """Store original values and source paths in the audit file (0600, local). Off by default."""
    quarantine_dir: Path | None = None
    """Where held-back files go; default `<data_dir>/quarantine/<run id>`."""
    workers: int | None = None
    run_id: str = field(default_factory=new_run_id)
    release_values: tuple[str, ...] = ()
    """KEYWORD=VALUE values the operator judged not identifying: the gate does not block them (audited)."""

@dataclass
class DeidResult:
    """One participant's outcome. `identifiers` never leave the process (no repr of values)."""

    pseudonym: str
    released: list[Path]
    quarantined: list[tuple[Path, str]]
    skipped: list[tuple[Path, str]]
    identifiers: Identifiers
    audit_path: Path | None
    leaks: list[Leak] = field(default_factory=list)
    key_source: str = "PatientID"
    """What the pseudonym was derived from: PatientID, or PatientName+PatientBirthDate / the folder
    name when the PatientID is empty."""
    notes: list[str] = field(default_factory=list)
    """Warnings for the report: values the options keep on purpose, operator overrides, the key source."""


# --------------------------------------------------------------------------- one file


@dataclass(frozen=True)
class FileJob:
    """One source file and where its de-identified copy goes (relative to the output folder)."""

    source: Path
    target: Path


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file: released / quarantined / skipped / held (by the leak gate)."""

    source: Path
    status: str
    target: Path | None = None
    reason: str = ""
    changes: tuple[tuple[str, str], ...] = ()
    originals: tuple[tuple[str, str], ...] = ()
    leaks: tuple[Leak, ...] = ()


def _pixel_problem(ds: Dataset) -> str | None:
    """Why the pixel data cannot be released as is (missing or shorter than the image)."""
    if "Rows" not in ds or "Columns" not in ds:
        return None
    element = ds.get_item(PIXEL_TAG)
    if element is None:
        return "image without pixel data (truncated?)"
    value = element.value
    if value is None:
        return "image without pixel data (truncated?)"
    meta = getattr(ds, "file_meta", None) or {}
    if getattr(element, "is_undefined_length", False) or meta.get("TransferSyntaxUID", "") not in (
        ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, "1.2.840.10008.1.2.2", ""
    ):
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * frames * bits // 8
    if len(value) < expected:
        return "truncated pixel data"
    return None


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's validation warnings and log records: they quote element values
    ("Invalid value for VR CS: '<a name>'"), which must not reach a terminal or a log file."""
    logger = logging.getLogger("pydicom")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.addFilter(_drop_record)
        try:
            yield
        finally:
            logger.removeFilter(_drop_record)


def _drop_record(record: logging.LogRecord) -> bool:
    """A logging filter that lets nothing through."""
    return False


def process_file(job: FileJob, ctx: DeidContext, out: Path, modalities: frozenset[str]) -> FileOutcome:
    """Read, check, de-identify, gate and write one file (runs in a worker process)."""
    with quiet_pydicom():
        return _process_file(job, ctx, out, modalities)


def _process_file(job: FileJob, ctx: DeidContext, out: Path, modalities: frozenset[str]) -> FileOutcome:
    """`process_file` without the warning guard."""
    try:
        source = job.source.read_bytes()
        ds = pydicom.dcmread(BytesIO(source), force=True)
    except Exception as error:
        return FileOutcome(job.source, "skipped", reason=f"unreadable ({type(error).__name__})")
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        return FileOutcome(job.source, "skipped", reason="no SOP class/instance UID (not a DICOM object)")
    damaged = malformed_element(ds)
    if damaged:  # a header pydicom cannot read cannot be judged element by element: hold the file back
        return FileOutcome(job.source, "quarantined", reason=f"damaged header: element {damaged[0]} ({damaged[1]})")
    reason = quarantine_reason(ds, modalities, ctx.options, ctx.protocol_pages)
    if reason:
        return FileOutcome(job.source, "quarantined", reason=reason)
    problem = _pixel_problem(ds)
    if problem:
        return FileOutcome(job.source, "skipped", reason=problem)
    try:
        report = deidentify_dataset(ds, ctx)
        data, pixels = serialize(ds, source)
    except Exception as error:
        return FileOutcome(job.source, "skipped", reason=f"cannot de-identify ({type(error).__name__})")
    leaks = gate_output(ds, data, pixels, job.target, ctx, report.uids)
    if leaks:
        return FileOutcome(job.source, "held", target=job.target, reason="leak gate", leaks=tuple(leaks))
    target = out / job.target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)  # no half-written file under the released name
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk leaves no partial file either
        raise
    return FileOutcome(job.source, "released", target=target, changes=tuple(report.changes),
                       originals=tuple(report.originals.items()))


def gate_output(ds: Dataset, data: bytes, pixels: tuple[int, int] | None, target: Path, ctx: DeidContext,
                uids: set[str] | None = None) -> list[Leak]:
    """The leak gate on one de-identified file about to be written: its path, its raw bytes (strong
    identifiers, in the file's own character sets too) and, where the bytes are not plain text,
    its decoded elements. Only blocking findings are returned."""
    name = str(target)
    identifiers = ctx.identifiers.with_uids(uid for uid in (uids or ()) if not is_well_known(uid))
    leaks = check_paths([target], identifiers)
    leaks += check_bytes(data, identifiers, name, [pixels] if pixels else [], charsets_of(ds))
    if not _bytes_cover_charset(ds):
        leaks += check_dataset(ds, identifiers, name, ctx.options)
    return [leak for leak in leaks if leak.blocks]


_CONTEXTS: dict[tuple, DeidContext] = {}


def _bytes_cover_charset(ds: Dataset) -> bool:
    """True if the text is ASCII, ISO-8859-1 or UTF-8: then the byte search sees every value as
    the parsed search would; other character sets (ISO 2022...) need the parsed search."""
    charsets = ds.get("SpecificCharacterSet") or ""
    values = [charsets] if isinstance(charsets, str) else list(charsets)
    return all(str(v).strip() in PLAIN_CHARSETS for v in values or [""])


def _process_chunk(jobs: list[FileJob], ctx: DeidContext, out: Path, modalities: frozenset[str]) -> list[FileOutcome]:
    """A batch of files in one worker call; the context (and its compiled searches) is reused per process."""
    key = (ctx.identifiers.token, ctx.pseudonym, ctx.options, ctx.date_offset, ctx.time_offset, ctx.keep_originals,
           ctx.protocol_pages)
    ctx = _CONTEXTS.setdefault(key, ctx)
    return [process_file(job, ctx, out, modalities) for job in jobs]


# --------------------------------------------------------------------------- one participant


_SAFE_NAME = re.compile(r"[^A-Za-z0-9]+")


def series_folder_name(index: int, description: str, identifiers: Identifiers, options: frozenset[str]) -> str:
    """`<nn>_<cleaned description>`; the description is dropped if the profile removes it or
    scrubbing had to change it (if in doubt, drop it)."""
    kept = annex_e.lookup(0x0008103E, "LO", None, options).action in ("K", "C")
    text = description.strip(" \x00")
    if not kept or not text or identifiers.scrub(text) != text:
        return f"{index:02d}"
    cleaned = _SAFE_NAME.sub("_", text).strip("_")[:40].strip("_")
    if not cleaned or check_paths([cleaned], identifiers):
        return f"{index:02d}"
    return f"{index:02d}_{cleaned}"


def _plan(participant: Participant, identifiers: Identifiers, options: frozenset[str], pseudonym: str) -> list[FileJob]:
    """Output paths for the main patient's files: <pseudonym>/study-NN/NN_desc/NNNN.dcm."""
    main = participant.main_patient
    jobs: list[FileJob] = []
    if main is None:
        return jobs
    for study_index, study in enumerate(main.studies, 1):
        for series_index, series in enumerate(study.series, 1):
            folder = Path(pseudonym) / f"study-{study_index:02d}" / series_folder_name(
                series_index, series.description, identifiers, options)
            for number, path in enumerate(series.files, 1):
                jobs.append(FileJob(path, folder / f"{number:04d}.dcm"))
    return jobs


def _run_jobs(jobs: list[FileJob], ctx: DeidContext, out: Path, settings: DeidSettings,
              cancel: threading.Event | None) -> Iterator[FileOutcome]:
    """Process jobs inline (few files) or in a process pool; yields outcomes as they finish."""
    workers = settings.workers or len(os.sched_getaffinity(0))
    if len(jobs) < PARALLEL_MIN_FILES or workers < 2:
        for job in jobs:
            if cancel is not None and cancel.is_set():
                raise MrishareError("de-identification cancelled")
            yield process_file(job, ctx, out, settings.modalities)
        return
    chunks = [jobs[i:i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    context = pool_context("forkserver", ["tui.core.deid.deidentify"])
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context,
                             initializer=drop_working_folder) as pool:
        pending = [pool.submit(_process_chunk, chunk, ctx, out, settings.modalities) for chunk in chunks]
        for future in finished_futures(pool, pending, cancel, "de-identification"):
            yield from future.result()


def deidentify_participant(participant: Participant, out: Path, settings: DeidSettings,
                           cancel: threading.Event | None = None) -> EventStream[DeidResult]:
    """De-identify one participant's files into `out/<pseudonym>/...`; quarantine, gate and audit them."""
    subject = participant.key
    options = annex_e.validate_options(settings.options)
    main = participant.main_patient
    yield StepStarted(subject, STEP, main.files if main is not None else 0)
    if main is None:
        raise MrishareError("participant has no usable DICOM files", subject)
    secret = site_secret()
    scheme = parse_scheme(settings.pseudonym)
    key, key_source = identity_key(main.patient_id, main.patient_name, main.birth_date, participant.folder.name)
    try:
        pseudonym = Pseudonymizer(scheme, secret).pseudonym(key, where=subject)
    except MrishareError as error:
        yield StepFailed(subject, STEP, error.reason)
        raise
    with quiet_pydicom():
        identifiers = collect_identifiers(participant, options, settings.release_values)
    ctx = DeidContext(options=options, pseudonym=pseudonym, identifiers=identifiers, secret=secret,
                      date_offset=offset_days(secret, key), time_offset=offset_seconds(secret, key),
                      keep_originals=settings.keep_originals_in_audit, protocol_pages=settings.protocol_pages)
    notes = kept_notes(identifiers)
    if key_source != "PatientID":
        notes.append(f"empty PatientID: pseudonym derived from the {key_source}")
    notes += [f"released by the operator: {value.split('=')[0]} value judged not identifying"
              for value in sorted(identifiers.released)]
    out = Path(out)
    jobs = _plan(participant, identifiers, options, pseudonym)
    store = QuarantineStore(settings.quarantine_dir, settings.run_id)
    result = DeidResult(pseudonym, [], [], [], identifiers, None, key_source=key_source, notes=notes)
    with AuditLog(settings.run_id) as audit:
        result.audit_path = audit.path
        audit.write(_run_record(settings, options, scheme.kind))
        audit.write({"type": "participant", "subject": subject, "pseudonym_key": key_source,
                     "released_by_operator": sorted(identifiers.released) if settings.keep_originals_in_audit
                     else [value.split("=")[0] for value in sorted(identifiers.released)], "notes": notes})
        for note in notes:
            yield StepNote(subject, STEP, note, "warning")
        for path in participant.misfiled:
            copy = store.put(path, "file of another patient in this participant's folder", subject)
            result.quarantined.append((copy, "another patient"))
            audit.write(_file_record(subject, "quarantined", None, "another patient", path, settings))
        for skipped in participant.skipped:
            result.skipped.append((skipped.path, skipped.reason))
            audit.write(_file_record(subject, "skipped", None, skipped.reason, skipped.path, settings))
        throttle = Throttle()
        total = len(jobs)
        for done, outcome in enumerate(_run_jobs(jobs, ctx, out, settings, cancel), 1):
            yield from _settle(outcome, result, store, subject, out, audit, settings)
            if throttle.ready(done, total):
                yield StepProgress(subject, STEP, done, total)
    if result.released:
        record_mapping(scheme, key, pseudonym)
    for line in summarize(result.leaks):
        yield StepNote(subject, STEP, f"leak gate: {line}", "warning")
    summary = (f"{len(result.released)} released, {len(result.quarantined)} quarantined, "
               f"{len(result.skipped)} skipped" + (f", {len(result.leaks)} leak(s) held back" if result.leaks else ""))
    yield StepFinished(subject, STEP, summary)
    return result


def _settle(outcome: FileOutcome, result: DeidResult, store: QuarantineStore, subject: str, out: Path,
            audit: AuditLog, settings: DeidSettings) -> Iterator[StepNote]:
    """File one outcome into the result and the audit; held-back files go to quarantine."""
    if outcome.status == "released" and outcome.target is not None:
        result.released.append(outcome.target)
        rel = outcome.target.relative_to(out)
        audit.write(_file_record(subject, "released", rel, "", outcome.source, settings,
                                 outcome.changes, outcome.originals))
        return
    if outcome.status == "skipped":
        result.skipped.append((outcome.source, outcome.reason))
        audit.write(_file_record(subject, "skipped", None, outcome.reason, outcome.source, settings))
        yield StepNote(subject, STEP, f"skipped a file: {outcome.reason}", "warning")
        return
    reason = outcome.reason
    if outcome.status == "held":
        result.leaks.extend(outcome.leaks)
        places = sorted({f"{leak.kind} in {leak.where}" for leak in outcome.leaks})
        reason = "leak gate: " + "; ".join(places[:5]) + (" ..." if len(places) > 5 else "")
    copy = store.put(outcome.source, reason, subject)
    result.quarantined.append((copy, reason))
    audit.write(_file_record(subject, "quarantined", None, reason, outcome.source, settings,
                             findings=outcome.leaks))
    if outcome.status != "held":  # the gate's findings are summarised once, grouped, at the end
        yield StepNote(subject, STEP, f"quarantined {copy.name}: {reason}", "warning")


def _run_record(settings: DeidSettings, options: frozenset[str], scheme: str) -> dict:
    """The audit header of a run."""
    return {
        "type": "run", "run": settings.run_id, "tool": "mrishare", "version": __version__,
        "table_edition": annex_e.TABLE_EDITION, "options": sorted(options), "pseudonym_scheme": scheme,
        "modalities": sorted(settings.modalities),
        "originals_stored": settings.keep_originals_in_audit,
        "note": "original values and source paths are stored (file mode 0600)" if settings.keep_originals_in_audit
        else "no original values stored",
    }


def _file_record(subject: str, status: str, output: Path | None, reason: str, source: Path,
                 settings: DeidSettings, changes: tuple = (), originals: tuple = (), findings: tuple = ()) -> dict:
    """One audit line per file; the source path only with opted-in originals (it may name the person)."""
    record: dict[str, Any] = {"type": "file", "subject": subject, "status": status,
                              "output": str(output) if output else None, "reason": reason,
                              "changes": [list(c) for c in changes]}
    if findings:
        record["findings"] = [{"kind": f.kind, "file": f.file, "where": f.where, "blocks": f.blocks}
                              for f in findings]
    if settings.keep_originals_in_audit:
        record["source"] = str(source)
        record["originals"] = dict(originals)
    return record
