"""Pilot tests of "Fetch from PACS": a real Orthanc holding a demo participant, found, picked, retrieved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from orthanc import Orthanc, free_port
from textual.widgets import Input, Label, Select, SelectionList

from tests.app.conftest import SIZE
from tests.app.pilot_helpers import settle
from tui.app.screens.help import HelpScreen
from tui.app.screens.ledger import LedgerScreen
from tui.app.screens.pacs import PacsScreen
from tui.app.screens.settings import SettingsScreen
from tui.core.net.nodes import DicomNode, save_nodes

needs_orthanc = pytest.mark.skipif(shutil.which("Orthanc") is None and not Path("/usr/sbin/Orthanc").exists(),
                                   reason="Debian orthanc is not installed (.ci/run installs it)")


def uids(files: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}


@needs_orthanc
async def test_find_pick_retrieve_and_the_participant_appears(make_app, demo_study: Path,
                                                              mrishare_home: Path) -> None:
    person = min(p for p in demo_study.iterdir() if p.is_dir())
    files = sorted(person.rglob("*.dcm"))
    patient_id = str(pydicom.dcmread(files[0], stop_before_pixels=True).PatientID)
    with Orthanc("PACS", {"MRISHARE": free_port()}) as pacs:
        pacs.upload(files)
        save_nodes([DicomNode("pacs", "PACS", "127.0.0.1", pacs.dicom_port, timeout_s=10)])
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            assert not [e for e in app.ledger_screen.entries if e.status == "scanned"]
            await pilot.press("f")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, PacsScreen)
            screen.query_one("#pacs-patient", Input).value = patient_id
            await pilot.press("enter")
            await settle(app, pilot)
            studies = screen.query_one("#pacs-studies", SelectionList)
            assert studies.option_count == 1 and studies.has_focus
            assert "3 series" in str(studies.get_option_at_index(0).prompt)
            await pilot.press("space", "ctrl+r")
            await settle(app, pilot)
            assert isinstance(app.screen, LedgerScreen)
            scanned = [e for e in app.ledger_screen.entries if e.status == "scanned"]
            assert len(scanned) == 1 and scanned[0].series == 3
            folder = scanned[0].scanned.folder
            assert folder.parent == mrishare_home / "data" / "intake"
            assert patient_id not in folder.name
            assert uids(sorted(folder.glob("*.dcm"))) == uids(files)


async def test_unreachable_node_says_why_and_stays_open(make_app) -> None:
    save_nodes([DicomNode("gone", "GONE", "127.0.0.1", free_port(), timeout_s=3)])
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PacsScreen)
        screen.query_one("#pacs-patient", Input).value = "P[/b]X"
        await pilot.press("enter")
        await settle(app, pilot)
        status = str(screen.query_one("#pacs-status", Label).render())
        assert status.startswith("✗") and "gone" in status
        assert app.screen is screen
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LedgerScreen)


async def test_without_nodes_the_screen_says_where_to_add_them(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert {what: key for key, what in app.screen.lines}["Fetch from PACS"] == "f"
        await pilot.press("escape", "f")
        await pilot.pause()
        assert isinstance(app.screen, PacsScreen)
        status = str(app.screen.query_one("#pacs-status", Label).render())
        assert "No DICOM nodes configured" in status and "nodes.json" in status
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, PacsScreen)


async def test_settings_offer_the_node_as_destination_and_keep_it(make_app, mrishare_home: Path) -> None:
    save_nodes([DicomNode("research", "RESEARCH", "127.0.0.1", free_port(), timeout_s=3)])
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.query_one("#set-node", Select).value = "dicom-node:research"
        await pilot.pause()
        assert screen.query_one("#set-destination", Input).value == "dicom-node:research"
        await pilot.press("ctrl+t")
        await settle(app, pilot)
        checked = str(screen.query_one("#settings-check", Label).render())
        assert "✗ DICOM node: research" in checked
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        assert app.settings.destination == "dicom-node:research"
    saved = json.loads((mrishare_home / "config" / "settings.json").read_text())
    assert saved["destination"] == "dicom-node:research"
