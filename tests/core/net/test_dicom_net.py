"""DICOM networking against a real Orthanc (round trips) and pynetdicom's own SCP (failure cases), all on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pytest
from orthanc import Orthanc, free_port
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    Verification,
)

from tui.core.delivery.node import DicomNodeDestination
from tui.core.errors import MrishareError
from tui.core.events import StepProgress, drain
from tui.core.net import dicom_net
from tui.core.net.nodes import DicomNode, get_node, load_nodes, save_nodes

HEAD = "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/dicom"
PATIENT_ID = "d2n_Philips_3T_R571"
SLICES = 8
OUR_AE = "MRISHARE"

pytestmark = pytest.mark.skipif(shutil.which("Orthanc") is None and not Path("/usr/sbin/Orthanc").exists(),
                                reason="Debian orthanc is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def head_files(shared_data: Path) -> list[Path]:
    """Every 20th slice of the Philips head: enough to see order and identity, fast to send."""
    files = sorted((shared_data / HEAD).glob("*.dcm"))
    return files[::20][:SLICES]


@pytest.fixture(scope="module")
def move_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def orthanc_a(head_files: list[Path], move_port: int) -> Iterator[Orthanc]:
    """Orthanc A holding the head slices (uploaded through REST, not through the code under test)."""
    with Orthanc("ORTHANCA", {OUR_AE: move_port}) as pacs:
        pacs.upload(head_files)
        yield pacs


@pytest.fixture(scope="module")
def orthanc_b() -> Iterator[Orthanc]:
    """An empty Orthanc B that receives what we send (and answers our C-FIND)."""
    with Orthanc("ORTHANCB", {OUR_AE: free_port()}) as pacs:
        yield pacs


@pytest.fixture
def empty_b(orthanc_b: Orthanc) -> Orthanc:
    orthanc_b.clear()
    return orthanc_b


def node_for(pacs: Orthanc, **changes: object) -> DicomNode:
    return dataclasses.replace(DicomNode(pacs.aet.lower(), pacs.aet, "127.0.0.1", pacs.dicom_port,
                                         our_ae_title=OUR_AE, timeout_s=10), **changes)


def by_uid(files: list[Path]) -> dict[str, pydicom.Dataset]:
    return {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(f) for f in files)}


# ---------------------------------------------------------------- round trips with Orthanc


def test_echo_and_find_by_patient_id(orthanc_a: Orthanc, head_files: list[Path]) -> None:
    node = node_for(orthanc_a)
    assert 0 < dicom_net.echo(node) < 5
    first = pydicom.dcmread(head_files[0], stop_before_pixels=True)
    [study] = dicom_net.find_studies(node, PATIENT_ID)
    assert study.study_uid == first.StudyInstanceUID
    assert (study.date, study.modalities, study.instance_count) == ("20210902", ("MR",), SLICES)
    [series] = dicom_net.find_series(node, study.study_uid)
    assert (series.series_uid, series.number, series.instance_count) == (first.SeriesInstanceUID, 1301, SLICES)
    assert dicom_net.find_studies(node, PATIENT_ID + "x") == []


@pytest.mark.parametrize("patient_id", ["", "  ", "d2n*", "d2n_Philips?3T", "a\\b"])
def test_find_refuses_ids_that_match_other_people(patient_id: str) -> None:
    node = DicomNode("nowhere", "NOWHERE", "127.0.0.1", 9)
    with pytest.raises(MrishareError, match="exact PatientID"):
        dicom_net.find_studies(node, patient_id)


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieved_files_equal_the_stored_files(orthanc_a: Orthanc, head_files: list[Path], move_port: int,
                                                tmp_path: Path, method: str) -> None:
    node = node_for(orthanc_a, retrieve=method, listen_port=move_port, listen_host="127.0.0.1")
    [study] = dicom_net.find_studies(node, PATIENT_ID)
    events: list[object] = []
    got = drain(dicom_net.retrieve(node, study.study_uid, tmp_path / "in"), events.append)
    assert (len(got.files), got.completed, got.failed) == (SLICES, SLICES, 0)
    assert sorted(got.files) == sorted((tmp_path / "in").iterdir())  # nothing else, no partial files
    assert any(isinstance(e, StepProgress) and e.total == SLICES for e in events)
    stored, retrieved = by_uid(head_files), by_uid(list(got.files))
    assert stored.keys() == retrieved.keys()
    for uid, original in stored.items():
        copy = retrieved[uid]
        assert copy.PixelData == original.PixelData
        assert copy.StudyInstanceUID == original.StudyInstanceUID
        assert copy.SeriesInstanceUID == original.SeriesInstanceUID
        assert copy == original  # the whole dataset, not only pixels and UIDs
    assert all(PATIENT_ID not in p.name and study.study_uid not in p.name for p in got.files)


def test_retrieve_one_series_and_cancel_removes_what_arrived(orthanc_a: Orthanc, tmp_path: Path) -> None:
    node = node_for(orthanc_a)
    [study] = dicom_net.find_studies(node, PATIENT_ID)
    [series] = dicom_net.find_series(node, study.study_uid)
    got = drain(dicom_net.retrieve(node, study.study_uid, tmp_path / "one", [series.series_uid]))
    assert len(got.files) == SLICES

    cancel = threading.Event()

    def on_event(event: object) -> None:
        if isinstance(event, StepProgress):
            cancel.set()

    with pytest.raises(MrishareError, match="cancelled"):
        drain(dicom_net.retrieve(node, study.study_uid, tmp_path / "cancelled", cancel=cancel), on_event)
    assert list((tmp_path / "cancelled").iterdir()) == []


def test_move_to_a_port_nobody_listens_on_fails(orthanc_a: Orthanc, tmp_path: Path) -> None:
    node = node_for(orthanc_a, retrieve="move", listen_port=free_port(), listen_host="127.0.0.1")
    [study] = dicom_net.find_studies(node, PATIENT_ID)
    with pytest.raises(MrishareError, match=r"retrieval failed: status 0xC000.*can the node reach MRISHARE"):
        drain(dicom_net.retrieve(node, study.study_uid, tmp_path / "in"))
    assert list((tmp_path / "in").iterdir()) == []


def test_store_lists_every_file_and_orthanc_holds_them(empty_b: Orthanc, head_files: list[Path],
                                                       tmp_path: Path) -> None:
    junk = tmp_path / "notes.dcm"
    junk.write_bytes(b"not dicom")
    result = drain(dicom_net.store(node_for(empty_b), [*head_files, junk]))
    assert result.sent == tuple(head_files)
    assert [(f.path, "readable DICOM" in f.reason) for f in result.failed] == [(junk, True)]
    held = {t["SOPInstanceUID"] for t in empty_b.instance_tags()}
    assert held == set(by_uid(head_files))


def test_wrong_called_ae_title_at_orthanc_is_rejected(orthanc_a: Orthanc) -> None:
    with pytest.raises(MrishareError, match=r"rejected.*Called AE title not recognised.*ORTHANCX"):
        dicom_net.echo(node_for(orthanc_a, ae_title="ORTHANCX"))


# ---------------------------------------------------------------- failure cases with pynetdicom's SCP


@contextmanager
def scp(contexts: list[str], handlers: list | None = None, syntaxes: list[str] | None = None,
        **options: object) -> Iterator[DicomNode]:
    """pynetdicom Storage/Verification SCP on 127.0.0.1; yields a node pointing at it."""
    ae = AE(ae_title="TESTSCP")
    for uid in contexts:
        ae.add_supported_context(uid, syntaxes or DEFAULT_TRANSFER_SYNTAXES)
    for key, value in options.items():
        setattr(ae, key, value)
    server = ae.start_server(("127.0.0.1", 0), block=False,
                             evt_handlers=handlers or [(evt.EVT_C_STORE, lambda _e: 0x0000)])
    try:
        yield DicomNode("test-scp", "TESTSCP", "127.0.0.1", server.server_address[1], timeout_s=2)
    finally:
        server.shutdown()


def test_rejection_names_the_reason() -> None:
    with scp([Verification], require_calling_aet=["FRIEND"]) as node, \
            pytest.raises(MrishareError, match=r"rejected.*Calling AE title not recognised.*MRISHARE"):
        dicom_net.echo(node)


def test_nothing_listening_is_refused() -> None:
    node = DicomNode("closed", "NOBODY", "127.0.0.1", free_port(), timeout_s=2)
    with pytest.raises(MrishareError, match="connection refused"):
        dicom_net.echo(node)


def test_silent_peer_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody answers
        node = DicomNode("silent", "SILENT", "127.0.0.1", silent.getsockname()[1], timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(MrishareError, match=r"no answer to the association request within 0.5 s"):
            dicom_net.echo(node)
        assert time.monotonic() - started < 3


def test_partial_failure_lists_each_refused_file(head_files: list[Path]) -> None:
    refused = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in head_files[1::3]}

    def on_store(event: evt.Event) -> int:
        return 0xA700 if event.request.AffectedSOPInstanceUID in refused else 0x0000

    with scp([MRImageStorage], [(evt.EVT_C_STORE, on_store)]) as node:
        result = drain(dicom_net.store(node, head_files))
    assert [f.path for f in result.failed] == head_files[1::3]
    assert all("0xA700 Refused: Out of Resources" in f.reason for f in result.failed)
    assert set(result.sent) == set(head_files) - set(head_files[1::3]) and not result.ok


def test_abort_midway_is_one_line(head_files: list[Path]) -> None:
    seen = []

    def on_store(event: evt.Event) -> int:
        seen.append(1)
        if len(seen) == 3:
            event.assoc.abort()
        return 0x0000

    with scp([MRImageStorage], [(evt.EVT_C_STORE, on_store)]) as node, \
            pytest.raises(MrishareError, match="aborted the association after 2 of"):
        drain(dicom_net.store(node, head_files))


def test_slow_answer_hits_the_timeout(head_files: list[Path]) -> None:
    def on_store(event: evt.Event) -> int:
        time.sleep(1.5)
        return 0x0000

    with scp([MRImageStorage], [(evt.EVT_C_STORE, on_store)]) as node:
        node = dataclasses.replace(node, timeout_s=0.5)
        with pytest.raises(MrishareError, match=r"no answer after 0 of .* within 0.5 s"):
            drain(dicom_net.store(node, head_files[:2]))


def secondary_capture(source: Path, target: Path) -> Path:
    ds = pydicom.dcmread(source)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.save_as(target)
    return target


def test_unaccepted_sop_class_fails_that_file_only(head_files: list[Path], tmp_path: Path) -> None:
    sc = secondary_capture(head_files[0], tmp_path / "sc.dcm")
    with scp([MRImageStorage]) as node:
        result = drain(dicom_net.store(node, [*head_files[1:3], sc]))
    assert result.sent == tuple(head_files[1:3])
    [failure] = result.failed
    assert failure.path == sc and "accepts no Secondary Capture Image Storage" in failure.reason


def test_no_presentation_context_at_all(head_files: list[Path]) -> None:
    with scp([CTImageStorage]) as node, \
            pytest.raises(MrishareError, match=r"accepted none of the proposed presentation contexts.*MR Image"):
        drain(dicom_net.store(node, head_files[:2]))


def test_implicit_only_node_gets_converted_files(head_files: list[Path]) -> None:
    received = []

    def on_store(event: evt.Event) -> int:
        received.append((event.context.transfer_syntax, event.dataset.PixelData))
        return 0x0000

    with scp([MRImageStorage], [(evt.EVT_C_STORE, on_store)], syntaxes=[ImplicitVRLittleEndian]) as node:
        result = drain(dicom_net.store(node, head_files[:2]))
    assert result.ok and [ts for ts, _ in received] == [ImplicitVRLittleEndian] * 2
    assert received[0][1] == pydicom.dcmread(head_files[0]).PixelData


def test_tls_echo(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    import ssl

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    ae = AE(ae_title="TESTSCP")
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", 0), block=False, ssl_context=server_context)
    try:
        node = DicomNode("tls", "TESTSCP", "127.0.0.1", server.server_address[1], tls_ca=cert, timeout_s=2)
        assert dicom_net.echo(node) < 2
        other = tmp_path / "other.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
                        "-keyout", str(tmp_path / "k2.pem"), "-out", str(other)], check=True, capture_output=True)
        with pytest.raises(MrishareError, match="TLS handshake"):
            dicom_net.echo(dataclasses.replace(node, tls_ca=other))
    finally:
        server.shutdown()


# ---------------------------------------------------------------- node config and the destination


def test_nodes_round_trip_through_the_config_file(mrishare_home: Path) -> None:
    node = DicomNode("research", "RESPACS", "pacs.example.org", 11112, our_ae_title="LAB", retrieve="move",
                     listen_port=11113, tls_ca=Path("/etc/ssl/lab-ca.pem"), timeout_s=12.5)
    path = save_nodes([node])
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_nodes() == {"research": node} and get_node("research") == node
    with pytest.raises(MrishareError, match="no DICOM node 'other' \\(known: research\\)"):
        get_node("other")
    raw = json.loads(path.read_text())
    raw["nodes"][0]["ae_titel"] = "typo"
    path.write_text(json.dumps(raw))
    with pytest.raises(MrishareError, match=r"unknown node field.*ae_titel"):
        load_nodes()


@pytest.mark.parametrize("changes, message", [
    ({"ae_title": ""}, "AE title"), ({"ae_title": "A" * 17}, "AE title"), ({"our_ae_title": "A\\B"}, "AE title"),
    ({"port": 0}, "port"), ({"retrieve": "move"}, "listen_port"), ({"retrieve": "push"}, "retrieve"),
    ({"tls_cert": Path("c.pem")}, "tls_key"), ({"timeout_s": 0}, "timeout"),
])
def test_bad_nodes_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(MrishareError, match=message):
        DicomNode(**{"name": "n", "ae_title": "AE", "host": "h", "port": 104, **changes})


def test_node_destination_refuses_identified_files(empty_b: Orthanc, head_files: list[Path], tmp_path: Path) -> None:
    dest = DicomNodeDestination(node_for(empty_b))
    [(_what, ok, words)] = dest.check()
    assert ok and "answers C-ECHO" in words
    folder = tmp_path / "out"
    folder.mkdir()
    for f in head_files[:2]:
        shutil.copy(f, folder)
    with pytest.raises(MrishareError, match="2 of 2 files are not marked de-identified"):
        drain(dest.upload(folder, "batch-1"))
    assert empty_b.rest("/instances") == []
    with pytest.raises(MrishareError, match="no download links"):
        dest.share("batch-1", 14, "label")
    dest.close()


def test_node_destination_fits_the_destination_protocol() -> None:
    from tui.core.delivery.base import Destination

    members = [m for m in vars(Destination) if not m.startswith("_")]
    assert all(callable(getattr(DicomNodeDestination, m)) for m in members if m != "kind")
    assert DicomNodeDestination.kind == "dicom-node"


# ---------------------------------------------------------------- the whole way: PACS -> intake -> de-identify -> node


def test_round_trip_fetch_deidentify_and_send_to_a_second_node(orthanc_a: Orthanc, empty_b: Orthanc,
                                                                head_files: list[Path], tmp_path: Path) -> None:
    from tui.core.deid.deidentify import DeidSettings, deidentify_participant
    from tui.core.dicom.scan import scan

    a, b = node_for(orthanc_a), node_for(empty_b)
    [study] = dicom_net.find_studies(a, PATIENT_ID)
    intake = dicom_net.new_intake_folder(tmp_path / "intake")
    assert PATIENT_ID not in intake.name
    drain(dicom_net.retrieve(a, study.study_uid, intake))
    [participant] = scan(intake, as_participant=True).participants
    deid = drain(deidentify_participant(participant, tmp_path / "released", DeidSettings(workers=1)))
    assert len(deid.released) == SLICES and not deid.quarantined

    delivered = drain(DicomNodeDestination(b).send(deid.released, "round-trip"))
    assert delivered.size == sum(p.stat().st_size for p in deid.released)

    original_uids = {str(ds[k].value) for ds in by_uid(head_files).values()
                     for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")}
    held = empty_b.instance_tags()
    assert len(held) == SLICES
    for tags in held:
        assert tags["PatientIdentityRemoved"] == "YES"
        assert tags["PatientID"] == deid.pseudonym != PATIENT_ID
        assert tags.get("PatientBirthDate", "") != "19800501"
        uids = {v for k, v in tags.items() if k.endswith("UID") and isinstance(v, str)}
        assert uids and not uids & original_uids
    assert dicom_net.find_studies(b, PATIENT_ID) == []
    [released_study] = dicom_net.find_studies(b, deid.pseudonym)
    assert released_study.instance_count == SLICES
