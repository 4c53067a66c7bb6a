"""DICOM networking with a node (pynetdicom): verify, find a PatientID's studies, retrieve, store.

- `echo` checks that a node answers (C-ECHO).
- `find_studies` / `find_series` query the Study Root model for one exact PatientID (never a
  wildcard or an empty ID, which would list other people).
- `retrieve` fetches a study (or some of its series) into a folder with C-GET, or with C-MOVE to a
  temporary Storage SCP of ours for PACS that only move. Files are written as received (no
  re-encoding), named by a hash of their SOP Instance UID; on failure or cancel the files this call
  created are removed again.
- `store` sends files with C-STORE on one association and reports the status of every file.

Every failure is one `MrishareError` line naming the node: connection refused, association
rejected (with the reason), aborted, no answer within the timeout, no presentation context.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import dcmread, read_file_meta_info
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context, build_role
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # pynetdicom sets these names at import
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

from tui.core.errors import MrishareError
from tui.core.events import (
    EventStream,
    StepFinished,
    StepNote,
    StepProgress,
    StepStarted,
    Throttle,
)
from tui.core.net.nodes import DicomNode

# pynetdicom's STORE_SEND_CHUNKED_DATASET (send undecoded from disk) stays off: it was ~2x faster
# but dcmtk's storescp (TCP_NODELAY=1) stopped mid-dataset in 1 of 3 runs of 170 files, and never
# with the decoded path in 10 runs. pynetdicom reads each file and re-encodes it if the node took
# another uncompressed transfer syntax.

SUBJECT = "pacs"
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255
PENDING = (0xFF00, 0xFF01)
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
# What we offer to receive in C-GET (the peer picks one per SOP class; uncompressed first).
RECEIVE_SYNTAXES: list[str | UID] = [
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, JPEGLosslessSV1,
    JPEGLSLossless, JPEG2000Lossless, RLELossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless,
    JPEG2000,
]
# SOP classes a brain-MRI study may hold. C-GET must name them in advance (one context each, at
# most 128 in all); C-MOVE receives any storage SOP class.
GET_STORAGE_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.4",        # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",      # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.4.2",      # MR Spectroscopy
    "1.2.840.10008.5.1.4.1.1.4.3",      # Enhanced MR Color Image
    "1.2.840.10008.5.1.4.1.1.4.4",      # Legacy Converted Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.2",        # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",      # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.128",      # PET Image
    "1.2.840.10008.5.1.4.1.1.130",      # Enhanced PET Image
    "1.2.840.10008.5.1.4.1.1.7",        # Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.7.2",      # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",      # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",      # Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.11.1",     # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.66",       # Raw Data
    "1.2.840.10008.5.1.4.1.1.66.4",     # Segmentation
    "1.2.840.10008.5.1.4.1.1.30",       # Parametric Map
    "1.2.840.10008.5.1.4.1.1.88.11",    # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",    # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",    # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.59",    # Key Object Selection Document
    "1.2.840.10008.5.1.4.1.1.104.1",    # Encapsulated PDF
    "1.3.12.2.1107.5.9.1",              # Siemens CSA Non-Image
    "1.3.46.670589.11.0.0.12.1",        # Philips Private MR Spectrum
    "1.3.46.670589.11.0.0.12.2",        # Philips Private MR Series Data
]


@dataclass(frozen=True)
class StudyHit:
    """One study of the PatientID, as the node describes it (show to staff; never log)."""

    study_uid: str
    date: str
    time: str
    description: str
    accession: str
    modalities: tuple[str, ...]
    series_count: int | None
    instance_count: int | None


@dataclass(frozen=True)
class SeriesHit:
    """One series of a study."""

    study_uid: str
    series_uid: str
    number: int | None
    modality: str
    description: str
    instance_count: int | None


@dataclass(frozen=True)
class FileFailure:
    """A file the node did not take (or took with a warning), and why in words."""

    path: Path
    reason: str


@dataclass(frozen=True)
class StoreResult:
    """Outcome of a C-STORE batch: every file is in `sent` or in `failed`."""

    sent: tuple[Path, ...]
    failed: tuple[FileFailure, ...]
    warnings: tuple[FileFailure, ...]
    """Files stored with a warning status (e.g. the node coerced an element); also in `sent`."""

    @property
    def ok(self) -> bool:
        """True if every file was stored."""
        return not self.failed


@dataclass(frozen=True)
class Retrieved:
    """Files a retrieval wrote into `folder`, and the node's own sub-operation counts."""

    folder: Path
    files: tuple[Path, ...]
    completed: int
    failed: int
    warning: int


# ---------------------------------------------------------------- association


def _timed_out(started: float, timeout: float) -> bool:
    return time.monotonic() - started >= timeout * 0.9


def _sop_name(uid: str) -> str:
    name = UID(uid).name
    return name if name != uid else f"SOP class {uid}"


def _connect_problem(node: DicomNode) -> str:
    """Why no connection came up, found by one plain TCP attempt (pynetdicom only logs it)."""
    where = f"{node.host}:{node.port}"
    try:
        with socket.create_connection((node.host, node.port), timeout=node.timeout_s):
            pass
    except socket.gaierror:
        return f"unknown host {node.host}"
    except ConnectionRefusedError:
        return f"connection refused: nothing listens on {where}"
    except TimeoutError:
        return f"no connection to {where} within {node.timeout_s:g} s"
    except OSError as exc:
        return f"cannot connect to {where} ({exc.strerror or type(exc).__name__})"
    if node.uses_tls:
        return f"TLS handshake with {where} failed (check tls_ca/tls_cert; the certificate must name {node.host})"
    return f"connection to {where} failed"


def _not_established(assoc: Association, node: DicomNode, connected: bool, started: float,
                     proposed: Sequence[PresentationContext]) -> str:
    """One line saying why an association did not come up."""
    if not connected:
        return _connect_problem(node)
    rsp = assoc.acceptor.primitive
    if assoc.is_rejected and rsp is not None:
        hint = {
            "Called AE title not recognised": f"; is the node's AE title {node.ae_title}?",
            "Calling AE title not recognised": f"; the node must know our AE title {node.our_ae_title}",
        }.get(rsp.reason_str, "")
        return f"association rejected ({rsp.result_str.lower()}, {rsp.source_str}: {rsp.reason_str}){hint}"
    if rsp is not None and rsp.result == 0 and not assoc.accepted_contexts:
        names = sorted({_sop_name(cx.abstract_syntax) for cx in proposed if cx.abstract_syntax})
        return f"the node accepted none of the proposed presentation contexts ({', '.join(names[:4])})"
    if _timed_out(started, node.timeout_s):
        return f"no answer to the association request within {node.timeout_s:g} s"
    return "the node aborted the association request"


def _new_ae(node: DicomNode) -> AE:
    ae = AE(ae_title=node.our_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    ae.maximum_pdu_size = 0  # no limit on what the node may send us in one PDU
    return ae


@contextmanager
def _associate(node: DicomNode, contexts: Sequence[PresentationContext], roles: Sequence[Any] = (),
               handlers: Sequence[tuple[Any, Any]] = ()) -> Iterator[Association]:
    """An established association; released (or already aborted) on exit."""
    if len(contexts) > MAX_CONTEXTS:
        raise MrishareError(f"{len(contexts)} presentation contexts needed, at most {MAX_CONTEXTS} "
                            "fit in one association; send fewer kinds of files at once", node.label)
    ae = _new_ae(node)
    connected = threading.Event()
    tls = node.client_tls()
    started = time.monotonic()
    assoc = ae.associate(
        node.host, node.port, contexts=list(contexts), ae_title=node.ae_title, ext_neg=list(roles) or None,
        evt_handlers=[(evt.EVT_CONN_OPEN, lambda _event: connected.set()), *handlers],
        tls_args=(tls, node.host) if tls is not None else None,
    )
    if not assoc.is_established:
        raise MrishareError(_not_established(assoc, node, connected.is_set(), started, contexts), node.label)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _lost(assoc: Association, node: DicomNode, started: float, doing: str) -> MrishareError:
    """The error for a DIMSE request that got no response (timeout or abort)."""
    if _timed_out(started, node.timeout_s):
        return MrishareError(f"no answer {doing} within {node.timeout_s:g} s; association aborted", node.label)
    return MrishareError(f"the node aborted the association {doing}", node.label)


def _status_words(code: int) -> str:
    """`0xA700 Refused: Out of Resources`."""
    meaning = STORAGE_SERVICE_CLASS_STATUS.get(code, (code_to_category(code), ""))[1]
    return f"status 0x{code:04X}" + (f" {meaning}" if meaning else "")


# ---------------------------------------------------------------- echo and find


def echo(node: DicomNode) -> float:
    """C-ECHO the node; return the round trip in seconds."""
    started = time.monotonic()
    with _associate(node, [build_context(Verification)]) as assoc:
        sent = time.monotonic()
        status = assoc.send_c_echo()
        if "Status" not in status:
            raise _lost(assoc, node, sent, "to C-ECHO")
        if status.Status != 0x0000:
            raise MrishareError(f"C-ECHO answered {_status_words(status.Status)}", node.label)
    return time.monotonic() - started


def _check_patient_id(patient_id: str) -> str:
    """Refuse an ID that would match other people (empty, wildcards, multiple values)."""
    if not patient_id or not patient_id.strip() or any(c in patient_id for c in "*?\\"):
        raise MrishareError("give one exact PatientID (no wildcards, not empty)")
    return patient_id


def _find(node: DicomNode, query: Dataset, what: str) -> list[Dataset]:
    """Run one Study Root C-FIND and collect the matches."""
    found: list[Dataset] = []
    with _associate(node, [build_context(StudyRootQueryRetrieveInformationModelFind)]) as assoc:
        sent = time.monotonic()
        for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            if "Status" not in status:
                if _timed_out(sent, node.timeout_s):
                    raise _lost(assoc, node, sent, f"to the {what} query")
                raise MrishareError(f"the node aborted the association to the {what} query (does it allow "
                                    f"C-FIND from {node.our_ae_title}?)", node.label)
            if status.Status in PENDING:
                if identifier is not None:
                    found.append(identifier)
            elif status.Status != 0x0000:
                raise MrishareError(f"{what} query failed: {_status_words(status.Status)}", node.label)
            sent = time.monotonic()
    return found


def _int_or_none(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value)


def find_studies(node: DicomNode, patient_id: str) -> list[StudyHit]:
    """Studies of exactly this PatientID, oldest first."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = _check_patient_id(patient_id)
    for keyword in ("StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber",
                    "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"):
        setattr(query, keyword, "")
    hits = []
    for ds in _find(node, query, "study"):
        if ds.get("PatientID", patient_id) != patient_id or not ds.get("StudyInstanceUID"):
            continue  # a node that matches loosely must not hand us someone else's study
        modalities = ds.get("ModalitiesInStudy") or []
        hits.append(StudyHit(
            study_uid=str(ds.StudyInstanceUID), date=_text(ds, "StudyDate"), time=_text(ds, "StudyTime"),
            description=_text(ds, "StudyDescription"), accession=_text(ds, "AccessionNumber"),
            modalities=tuple([modalities] if isinstance(modalities, str) else map(str, modalities)),
            series_count=_int_or_none(ds, "NumberOfStudyRelatedSeries"),
            instance_count=_int_or_none(ds, "NumberOfStudyRelatedInstances"),
        ))
    return sorted(hits, key=lambda h: (h.date, h.time, h.study_uid))


def find_series(node: DicomNode, study_uid: str) -> list[SeriesHit]:
    """Series of one study, by series number."""
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    for keyword in ("SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription",
                    "NumberOfSeriesRelatedInstances"):
        setattr(query, keyword, "")
    hits = [
        SeriesHit(study_uid=study_uid, series_uid=str(ds.SeriesInstanceUID), number=_int_or_none(ds, "SeriesNumber"),
                  modality=_text(ds, "Modality"), description=_text(ds, "SeriesDescription"),
                  instance_count=_int_or_none(ds, "NumberOfSeriesRelatedInstances"))
        for ds in _find(node, query, "series") if ds.get("SeriesInstanceUID")
    ]
    return sorted(hits, key=lambda h: (h.number is None, h.number or 0, h.series_uid))


# ---------------------------------------------------------------- retrieve


def new_intake_folder(intake: Path) -> Path:
    """A fresh folder for one retrieval under `intake`, named without any patient value."""
    intake = Path(intake)
    intake.mkdir(parents=True, exist_ok=True)
    while True:
        folder = intake / f"pacs-{time.strftime('%Y%m%d')}-{secrets.token_hex(3)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def instance_file_name(sop_instance_uid: str) -> str:
    """A file name that does not show the UID (a UID can be traced back to the patient)."""
    return hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:24] + ".dcm"


class _Receiver:
    """Writes incoming C-STORE requests to `folder` as received; remembers what it created."""

    def __init__(self, folder: Path, cancel: threading.Event | None) -> None:
        self.folder = folder
        self.cancel = cancel
        self.files: list[Path] = []
        self.created: list[Path] = []
        self.lock = threading.Lock()

    def on_store(self, event: Any) -> int:
        """EVT_C_STORE handler (runs in pynetdicom's thread)."""
        if self.cancel is not None and self.cancel.is_set():
            return 0xA700
        target = self.folder / instance_file_name(str(event.request.AffectedSOPInstanceUID))
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            existed = target.exists()
            with open(tmp, "xb") as out:
                out.write(event.encoded_dataset())
            os.replace(tmp, target)
        except OSError:
            tmp.unlink(missing_ok=True)
            return 0xA700  # Refused: out of resources (the node counts it as a failed sub-operation)
        with self.lock:
            self.files.append(target)
            if not existed:
                self.created.append(target)
        return 0x0000

    def discard(self) -> None:
        """Remove the files this retrieval created."""
        for path in self.created:
            path.unlink(missing_ok=True)


def _retrieve_queries(study_uid: str, series_uids: Sequence[str]) -> list[Dataset]:
    """One identifier for the whole study, or one per series."""
    queries = []
    targets: Sequence[str | None] = series_uids or [None]
    for series_uid in targets:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        ds.StudyInstanceUID = study_uid
        if series_uid:
            ds.SeriesInstanceUID = series_uid
        queries.append(ds)
    return queries


def _get_contexts() -> tuple[list[PresentationContext], list[Any]]:
    """C-GET model plus storage contexts in the SCP role."""
    contexts = [build_context(StudyRootQueryRetrieveInformationModelGet)]
    contexts += [build_context(uid, RECEIVE_SYNTAXES) for uid in GET_STORAGE_CLASSES]
    return contexts, [build_role(uid, scp_role=True) for uid in GET_STORAGE_CLASSES]


def _follow(responses: Iterable[tuple[Dataset, Dataset | None]], assoc: Association, node: DicomNode,
            receiver: _Receiver, subject: str, counts: list[int], offset: int, hint: str = ""
            ) -> EventStream[None]:
    """Turn C-GET/C-MOVE responses into progress; add final counts to `counts` [completed, failed, warning]."""
    throttle = Throttle()
    sent = time.monotonic()
    for status, _identifier in responses:
        if receiver.cancel is not None and receiver.cancel.is_set():
            assoc.abort()
            raise MrishareError("retrieval cancelled", node.label)
        if "Status" not in status:
            raise _lost(assoc, node, sent, "during retrieval")
        code = status.Status
        done = [_int_or_none(status, f"NumberOf{k}Suboperations") or 0 for k in ("Completed", "Failed", "Warning")]
        if code in PENDING:
            remaining = _int_or_none(status, "NumberOfRemainingSuboperations") or 0
            total = offset + sum(done) + remaining
            if throttle.ready(offset + sum(done), total):
                yield StepProgress(subject, "retrieve", offset + sum(done), total)
        elif code in (0x0000, 0xB000) or (code >> 12) in (0xA, 0xC):
            if code not in (0x0000, 0xB000) and not any(done):
                raise MrishareError(f"retrieval failed: {_status_words(code)}{hint}", node.label)
            counts[:] = [c + d for c, d in zip(counts, done, strict=False)]
        elif code == 0xFE00:
            raise MrishareError("the node cancelled the retrieval", node.label)
        else:
            raise MrishareError(f"retrieval failed: {_status_words(code)}{hint}", node.label)
        sent = time.monotonic()


def retrieve(node: DicomNode, study_uid: str, into: Path, series_uids: Sequence[str] = (),
             cancel: threading.Event | None = None, subject: str = SUBJECT) -> EventStream[Retrieved]:
    """Fetch a study (or only `series_uids` of it) into `into` with the node's C-GET or C-MOVE."""
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    receiver = _Receiver(into, cancel)
    counts = [0, 0, 0]
    yield StepStarted(subject, "retrieve", None)
    try:
        if node.retrieve == "move":
            yield from _retrieve_move(node, study_uid, series_uids, receiver, subject, counts)
        else:
            contexts, roles = _get_contexts()
            with _associate(node, contexts, roles, [(evt.EVT_C_STORE, receiver.on_store)]) as assoc:
                for query in _retrieve_queries(study_uid, series_uids):
                    responses = assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
                    yield from _follow(responses, assoc, node, receiver, subject, counts, sum(counts))
    except BaseException:
        receiver.discard()
        raise
    completed, failed, warning = counts
    if failed:
        yield StepNote(subject, "retrieve", f"{failed} of {sum(counts)} instances were not retrieved "
                                            "(the node could not send them)", level="warning")
    yield StepFinished(subject, "retrieve", f"{len(receiver.files)} files from {node.name}")
    return Retrieved(into, tuple(sorted(set(receiver.files))), completed, failed, warning)


def _retrieve_move(node: DicomNode, study_uid: str, series_uids: Sequence[str], receiver: _Receiver,
                   subject: str, counts: list[int]) -> EventStream[None]:
    """C-MOVE to our own AE title, received by a Storage SCP that runs only meanwhile."""
    assert node.listen_port is not None
    scp = _new_ae(node)
    for cx in AllStoragePresentationContexts:
        assert cx.abstract_syntax is not None  # pynetdicom's storage contexts all name their SOP class
        scp.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    try:
        server = scp.start_server((node.listen_host, node.listen_port), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, receiver.on_store)],
                                  ssl_context=node.server_tls())
    except OSError as exc:
        raise MrishareError(f"cannot listen on port {node.listen_port} for C-MOVE "
                            f"({exc.strerror or type(exc).__name__})", node.label) from None
    assert server is not None  # block=False returns the running server
    hint = (f"; can the node reach {node.our_ae_title} on this machine's port {node.listen_port} "
            "(its C-MOVE destination list)?")
    try:
        with _associate(node, [build_context(StudyRootQueryRetrieveInformationModelMove)]) as assoc:
            for query in _retrieve_queries(study_uid, series_uids):
                responses = assoc.send_c_move(query, node.our_ae_title, StudyRootQueryRetrieveInformationModelMove)
                yield from _follow(responses, assoc, node, receiver, subject, counts, sum(counts), hint)
    finally:
        server.shutdown()
    if sum(counts) and counts[0] and not receiver.files:
        raise MrishareError(f"the node reports {counts[0]} instances moved but none arrived here; does it map "
                            f"{node.our_ae_title} to this machine and port {node.listen_port}?", node.label)


# ---------------------------------------------------------------- store


def dicom_files(root: Path) -> list[Path]:
    """DICOM Part 10 files under `root` (or `root` itself), sorted; hidden and partial files skipped."""
    root = Path(root)
    if root.is_file():
        candidates = [root]
    else:
        candidates = sorted(p for p in root.rglob("*")
                            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    found = []
    for path in candidates:
        try:
            with open(path, "rb") as handle:
                head = handle.read(132)
        except OSError:
            continue
        if head[128:132] == b"DICM":
            found.append(path)
    return found


def identified_files(files: Iterable[Path]) -> list[Path]:
    """Files that do not declare PatientIdentityRemoved = YES (PS3.15 E.1.1); these must not leave."""
    flagged = []
    for path in files:
        try:
            ds = dcmread(path, stop_before_pixels=True, specific_tags=["PatientIdentityRemoved"])
            removed = str(ds.get("PatientIdentityRemoved", "")).strip().upper()
        except (OSError, InvalidDicomError, ValueError):
            removed = ""
        if removed != "YES":
            flagged.append(Path(path))
    return flagged


@dataclass(frozen=True)
class _Outgoing:
    path: Path
    sop_class: str
    transfer_syntax: str


def _outgoing(files: Iterable[Path]) -> tuple[list[_Outgoing], list[FileFailure]]:
    """Read each file's meta header: its SOP class and transfer syntax decide the contexts."""
    ready, bad = [], []
    for path in files:
        try:
            meta = read_file_meta_info(path)
            sop, ts = meta.get("MediaStorageSOPClassUID"), meta.get("TransferSyntaxUID")
            if not sop or not ts or not meta.get("MediaStorageSOPInstanceUID"):
                bad.append(FileFailure(path, "no SOP class, instance UID or transfer syntax in the file meta"))
                continue
            ready.append(_Outgoing(Path(path), str(sop), str(ts)))
        except (OSError, InvalidDicomError, ValueError):
            bad.append(FileFailure(Path(path), "not a readable DICOM file with a file meta header"))
    return ready, bad


def _store_contexts(items: Sequence[_Outgoing]) -> list[PresentationContext]:
    """Per SOP class: one context for its uncompressed files (with both little-endian fallbacks) and
    one per compressed transfer syntax, so the node's choice for one syntax never strands another."""
    wanted: dict[tuple[str, tuple[str, ...]], None] = {}
    for item in items:
        ts = UID(item.transfer_syntax)
        syntaxes = (ts,) if ts.is_compressed else tuple(dict.fromkeys((ts, *UNCOMPRESSED)))
        wanted[(item.sop_class, syntaxes)] = None
    return [build_context(sop, list(syntaxes)) for sop, syntaxes in wanted]


def _unsendable(assoc: Association, item: _Outgoing) -> str:
    """Why no accepted presentation context fits the file ("" if one does)."""
    offered = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == item.sop_class]
    if not offered:
        return f"the node accepts no {_sop_name(item.sop_class)} (no presentation context)"
    ts = UID(item.transfer_syntax)
    accepted = [cx.transfer_syntax[0] for cx in offered]
    if ts in accepted or (not ts.is_compressed and any(not a.is_compressed for a in accepted)):
        return ""
    return f"the node accepts {_sop_name(item.sop_class)} only as {accepted[0].name}, not {ts.name}"


def store(node: DicomNode, files: Sequence[Path], cancel: threading.Event | None = None,
          subject: str = SUBJECT) -> EventStream[StoreResult]:
    """C-STORE `files` to the node on one association; every file ends in `sent` or `failed`."""
    items, failed = _outgoing(files)
    sent: list[Path] = []
    warnings: list[FileFailure] = []
    total = len(items) + len(failed)
    yield StepStarted(subject, "store", total)
    throttle = Throttle()
    if items:
        with _associate(node, _store_contexts(items)) as assoc:
            for item in items:
                if cancel is not None and cancel.is_set():
                    assoc.abort()
                    raise MrishareError(f"sending cancelled after {len(sent)} of {total} files", node.label)
                reason = _unsendable(assoc, item)
                if reason:
                    failed.append(FileFailure(item.path, reason))
                    continue
                started = time.monotonic()
                try:
                    status = assoc.send_c_store(item.path)
                except (OSError, InvalidDicomError, ValueError, AttributeError, TypeError):
                    failed.append(FileFailure(item.path, "cannot be read or encoded for sending"))
                    continue
                if "Status" not in status:
                    raise _lost(assoc, node, started, f"after {len(sent)} of {total} files")
                category = code_to_category(status.Status)
                if category == "Success":
                    sent.append(item.path)
                elif category == "Warning":
                    sent.append(item.path)
                    warnings.append(FileFailure(item.path, _status_words(status.Status)))
                else:
                    failed.append(FileFailure(item.path, _status_words(status.Status)))
                done = len(sent) + len(failed)
                if throttle.ready(done, total):
                    yield StepProgress(subject, "store", done, total)
    for failure in failed:
        yield StepNote(subject, "store", f"{failure.path.name}: {failure.reason}", level="warning")
    yield StepFinished(subject, "store", f"{len(sent)} of {total} files stored on {node.name}"
                                         + (f", {len(failed)} failed" if failed else ""))
    return StoreResult(tuple(sent), tuple(failed), tuple(warnings))
