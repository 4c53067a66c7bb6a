"""Fixtures for the browser tests: a fresh chromium page, the participant folder and its passphrase page."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import HEAD, PHRASE, Browser, SharedHead, open_browser

PHILIPS = "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/dicom"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A page in headless chromium with software WebGL2."""
    yield from open_browser(tmp_path / "profile")


@pytest.fixture
def browser_without_webgl(tmp_path: Path) -> Iterator[Browser]:
    """A page in a chromium whose 3D graphics are switched off, as on an old or locked-down computer."""
    yield from open_browser(tmp_path / "profile", ("--disable-3d-apis",))


@pytest.fixture(scope="module")
def participant_folder(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2 mm Siemens head as a participant folder with previews, README, index.html and the viewer."""
    from tui.core.nifti.participant_docs import write_participant_docs
    from tui.core.nifti.preview import make_previews

    folder = tmp_path_factory.mktemp("pkg") / "sub-K7Q2"
    anat = folder / "ses-1" / "anat"
    anat.mkdir(parents=True)
    nifti = anat / "sub-K7Q2_ses-1_T1w.nii.gz"
    shutil.copyfile(shared_data / HEAD, nifti)
    write_participant_docs(folder, [nifti], {nifti.name: make_previews(nifti, folder / "previews")})
    return folder


@pytest.fixture(scope="module")
def unlock_page(participant_folder: Path) -> tuple[Path, Path]:
    """(encrypted zip, passphrase page) of the participant folder, as `pack` makes them."""
    from tui.core.delivery import package
    from tui.core.delivery.passphrase import Passphrase
    from tui.core.delivery.unlock_page import write_unlock_page
    from tui.core.events import drain

    zip_path = participant_folder.parent / "out" / "sub-K7Q2.zip"
    drain(package.build_package(participant_folder, zip_path, Passphrase.from_text(PHRASE, "en")))
    return zip_path, write_unlock_page(zip_path, PHRASE, participant_folder).path


@pytest.fixture(scope="module")
def partial_page(participant_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    """(passphrase page, files left out) of the participant folder plus a functional series too large for the page
    (incompressible bytes), sealed with a limit between the anatomical part and the whole package."""
    import random

    from tui.core.delivery import package
    from tui.core.delivery.passphrase import Passphrase
    from tui.core.delivery.unlock_page import write_unlock_page
    from tui.core.events import drain

    folder = tmp_path_factory.mktemp("partial") / "sub-K7Q2"
    shutil.copytree(participant_folder, folder)
    func = folder / "ses-1" / "func"
    func.mkdir()
    (func / "sub-K7Q2_ses-1_task-rest_bold.nii.gz").write_bytes(random.Random(4).randbytes(4_000_000))
    (func / "sub-K7Q2_ses-1_task-rest_bold.json").write_text('{"RepetitionTime": 2.0}\n', encoding="utf-8")
    zip_path = folder.parent / "out" / "sub-K7Q2.zip"
    drain(package.build_package(folder, zip_path, Passphrase.from_text(PHRASE, "en")))
    page = write_unlock_page(zip_path, PHRASE, folder, max_payload=6_000_000)
    return page.path, page.left_out


@pytest.fixture(scope="session")
def philips_share(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> SharedHead:
    """Issue 20's 'Done when': a new user shares the Philips 1 mm head with the default preset into a folder."""
    from tui.core.delivery.ledger import Ledger
    from tui.core.delivery.unlock_page import page_path

    work = tmp_path_factory.mktemp("philips-share")
    outbox, ledger = work / "outbox", work / "share-list.xlsx"
    outbox.mkdir()
    done = subprocess.run([sys.executable, "-m", "tui", "share", str(shared_data / PHILIPS), "--dest",
                           f"folder:{outbox}", "--ledger", str(ledger)],
                          env={**os.environ, "MRISHARE_HOME": str(work / "home")}, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    with Ledger.open(ledger) as book:
        row = book.rows()[0]
    assert row.status == "shared"
    zip_path = next(outbox.rglob("*.zip"))
    return SharedHead(zip_path, page_path(zip_path), row.passphrase)
