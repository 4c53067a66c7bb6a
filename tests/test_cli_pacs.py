"""`mrishare pacs`: echo/find/get/send against a real Orthanc on 127.0.0.1, nodes from nodes.json."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from orthanc import Orthanc, free_port

from tui.cli import main
from tui.core.net.nodes import DicomNode, save_nodes

HEAD = "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/dicom"
PATIENT_ID = "d2n_Philips_3T_R571"

pytestmark = pytest.mark.skipif(shutil.which("Orthanc") is None and not Path("/usr/sbin/Orthanc").exists(),
                                reason="Debian orthanc is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def slices(shared_data: Path) -> list[Path]:
    return sorted((shared_data / HEAD).glob("*.dcm"))[:3]


@pytest.fixture(scope="module")
def pacs(slices: list[Path]) -> Iterator[Orthanc]:
    with Orthanc("CLIPACS", {"MRISHARE": free_port()}) as server:
        server.upload(slices)
        yield server


def address(pacs: Orthanc) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(pacs.dicom_port), "--aet", pacs.aet, "--timeout", "10"]


def test_echo_and_find_by_address(pacs: Orthanc, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pacs", "echo", *address(pacs)]) == 0
    assert "answers C-ECHO" in capsys.readouterr().out
    assert main(["pacs", "find", PATIENT_ID, "--series", "--json", *address(pacs)]) == 0
    [study] = json.loads(capsys.readouterr().out)
    assert study["instance_count"] == 3 and study["series"][0]["number"] == 1301
    assert main(["pacs", "find", "someone-else", *address(pacs)]) == 1


def test_get_by_node_name_into_a_new_intake_folder(pacs: Orthanc, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    save_nodes([DicomNode("research", pacs.aet, "127.0.0.1", pacs.dicom_port, timeout_s=10)])
    assert main(["pacs", "nodes"]) == 0
    assert "research (CLIPACS@127.0.0.1" in capsys.readouterr().out
    assert main(["pacs", "get", PATIENT_ID, "--node", "research", "--into", str(tmp_path)]) == 0
    [folder] = tmp_path.iterdir()
    assert folder.name.startswith("pacs-") and len(list(folder.glob("*.dcm"))) == 3
    assert "3 files from 1 study" in capsys.readouterr().out


def test_send_refuses_identified_files_and_names_unknown_nodes(pacs: Orthanc, slices: list[Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pacs", "send", str(slices[0]), *address(pacs)]) == 2
    assert "not marked de-identified" in capsys.readouterr().err
    marked = tmp_path / "released.dcm"
    ds = pydicom.dcmread(slices[0])
    ds.PatientIdentityRemoved = "YES"
    ds.save_as(marked)
    assert main(["pacs", "send", str(tmp_path), *address(pacs)]) == 0
    assert "1 of 1 files stored" in capsys.readouterr().out
    assert main(["pacs", "echo", "--node", "nowhere"]) == 2
    assert "no DICOM node 'nowhere'" in capsys.readouterr().err
