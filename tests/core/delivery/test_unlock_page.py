"""The passphrase page's payload: decrypted with an independent implementation (`cryptography`)."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from tui.core.delivery import package
from tui.core.delivery.passphrase import Passphrase
from tui.core.delivery.unlock_page import MAX_PAYLOAD, PageTooLarge, page_path, write_unlock_page
from tui.core.errors import MrishareError
from tui.core.events import drain
from tui.core.nifti.viewer_page import BUNDLE_DIR

PHRASE = "apple-river-stone-cloud-seven"


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, Path]:
    """A small real package (AES zip) and its passphrase page."""
    folder = tmp_path / "sub-K7Q2"
    (folder / "ses-1" / "anat").mkdir(parents=True)
    (folder / "README.txt").write_text("Ihre MRT-Aufnahmen / your MRI images\n", encoding="utf-8")
    (folder / "ses-1" / "anat" / "sub-K7Q2_ses-1_T1w.nii.gz").write_bytes(bytes(range(256)) * 400)
    zip_path = tmp_path / "out" / "sub-K7Q2.zip"
    drain(package.build_package(folder, zip_path, Passphrase.from_text(PHRASE, "en")))
    return zip_path, write_unlock_page(zip_path, PHRASE, folder).path


def folder_of(zip_path: Path) -> Path:
    """The folder the fixture's zip was packed from."""
    return zip_path.parent.parent / "sub-K7Q2"


def payload(page: Path) -> tuple[dict, bytes]:
    """The page's public header and its ciphertext."""
    text = page.read_text(encoding="utf-8")
    header = json.loads(re.search(r'<script id="sealed-header" type="application/json">(.*?)</script>', text).group(1))
    data = re.search(r'<script id="sealed-data" type="application/octet-stream">(.*?)</script>', text).group(1)
    return header, base64.b64decode(data)


def test_cryptography_decrypts_the_page_to_the_zips_exact_content(sealed: tuple[Path, Path]) -> None:
    zip_path, page = sealed
    header, data = payload(page)
    assert (header["kdf"], header["cipher"]) == ("PBKDF2-SHA256", "AES-256-GCM") and header["iterations"] >= 600_000
    salt, nonce = base64.b64decode(header["salt"]), base64.b64decode(header["iv"])
    assert len(salt) == 16 and len(nonce) == 12
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=header["iterations"]).derive(
        PHRASE.encode())
    plain = zipfile.ZipFile(io.BytesIO(AESGCM(key).decrypt(nonce, data, None)))
    import pyzipper

    with pyzipper.AESZipFile(zip_path) as archive:
        archive.setpassword(PHRASE.encode())
        assert {n: archive.read(n) for n in archive.namelist()} == {n: plain.read(n) for n in plain.namelist()}
    assert "sub-K7Q2/MANIFEST-SHA256.txt" in plain.namelist()


def test_the_passphrase_is_nowhere_in_the_page_or_its_name_and_salts_differ(sealed: tuple[Path, Path]) -> None:
    zip_path, page = sealed
    assert page == page_path(zip_path) and page.parent == zip_path.parent
    assert PHRASE not in page.read_text(encoding="utf-8") and "apple" not in page.name
    again = write_unlock_page(zip_path, PHRASE, folder_of(zip_path), zip_path.with_name("again.html"))
    assert payload(page)[0]["salt"] != payload(again.path)[0]["salt"]
    assert "sealed-data" not in again.plain_text.split("sealed-header")[1]  # the plain parts leave the data out
    bundle = (BUNDLE_DIR / "niivue.umd.js").read_text(encoding="utf-8")
    assert bundle[:300] in page.read_text(encoding="utf-8") and bundle[:300] not in again.plain_text  # vendored


def test_wrong_passphrase_cannot_build_a_page(sealed: tuple[Path, Path]) -> None:
    zip_path, _ = sealed
    with pytest.raises(MrishareError, match="cannot read the package"):
        write_unlock_page(zip_path, "wrong-words-here-again-now", folder_of(zip_path), zip_path.with_name("x.html"))


def test_the_gate_searches_what_was_inserted_not_the_template(sealed: tuple[Path, Path]) -> None:
    """The leak gate reads `inserted`: the package's folder name and the sealing header, none of our own words."""
    zip_path, _ = sealed
    page = write_unlock_page(zip_path, PHRASE, folder_of(zip_path), zip_path.with_name("gate.html"))
    assert page.inserted.startswith("sub-K7Q2\n") and '"salt"' in page.inserted
    assert "Slice" not in page.inserted and "diagnostic" not in page.inserted  # template words stay out
    assert "diagnostic" in page.plain_text and "No doctor has reviewed them for disease" in page.plain_text


def test_a_package_too_large_for_a_browser_page_gets_none(sealed: tuple[Path, Path]) -> None:
    """Above MAX_PAYLOAD a 566 MB page told the right passphrase it was wrong (bench_unlock_limit.py): no page then."""
    zip_path, _ = sealed
    target = zip_path.with_name("big.html")
    fits = write_unlock_page(zip_path, PHRASE, folder_of(zip_path), target, max_payload=10_000_000)
    fits.path.unlink()
    assert 0 < fits.payload_size < 10_000_000  # the same package gets a page under a limit above its size
    with pytest.raises(PageTooLarge, match=r"MB is more than a browser page can carry \(at most 0 MB\); the "
                                           r"participant opens the zip"):
        write_unlock_page(zip_path, PHRASE, folder_of(zip_path), target, max_payload=1000)
    assert not target.exists() and MAX_PAYLOAD == 300 << 20


def test_a_folder_changed_after_packing_gets_no_page(sealed: tuple[Path, Path]) -> None:
    """The payload comes from the package folder, checked against the zip's manifest: a file changed or added since
    the zip was written would hand the participant something the zip does not hold."""
    zip_path, _ = sealed
    readme = folder_of(zip_path) / "README.txt"
    readme.write_text("changed after packing\n", encoding="utf-8")
    target = zip_path.with_name("changed.html")
    with pytest.raises(MrishareError, match="the package folder no longer matches the zip; pack again"):
        write_unlock_page(zip_path, PHRASE, folder_of(zip_path), target)
    readme.unlink()
    (folder_of(zip_path) / "extra.txt").write_text("x", encoding="utf-8")
    with pytest.raises(MrishareError, match="no longer matches"):
        write_unlock_page(zip_path, PHRASE, folder_of(zip_path), target)
    assert not target.exists()


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Path, Path]:
    """A package with a small anatomical image and a large incompressible functional one (and DICOM files): the
    zip and its folder."""
    folder = tmp_path / "sub-M3X9"
    files = {"README.txt": b"Ihre MRT-Aufnahmen / your MRI images\n", "index.html": b"<!DOCTYPE html><p>index</p>\n",
             "previews/sub-M3X9_ses-1_T1w_views.png": bytes(range(256)) * 20,
             "viewer/sub-M3X9_ses-1_T1w.js": b"(window.MRISHARE_VOLUMES = []).push({});\n",
             "ses-1/anat/sub-M3X9_ses-1_T1w.nii.gz": bytes(range(256)) * 100,
             "ses-1/anat/sub-M3X9_ses-1_T1w.json": b'{"EchoTime": 0.003}\n',
             "ses-1/func/sub-M3X9_ses-1_task-rest_bold.nii.gz": random.Random(20).randbytes(300_000),
             "ses-1/func/sub-M3X9_ses-1_task-rest_bold.json": b'{"RepetitionTime": 2.0}\n',
             "dicom/anat/IM0001.dcm": random.Random(21).randbytes(50_000)}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    zip_path = tmp_path / "out" / "sub-M3X9.zip"
    drain(package.build_package(folder, zip_path, Passphrase.from_text(PHRASE, "en")))
    return zip_path, folder


def decrypted_members(page: Path) -> dict[str, bytes]:
    """The page's payload, decrypted with `cryptography`: {member name: content}."""
    header, data = payload(page)
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=base64.b64decode(header["salt"]),
                     iterations=header["iterations"]).derive(PHRASE.encode())
    plain = zipfile.ZipFile(io.BytesIO(AESGCM(key).decrypt(base64.b64decode(header["iv"]), data, None)))
    return {name: plain.read(name) for name in plain.namelist()}


def test_a_package_too_large_for_a_page_gets_its_anatomical_images_and_says_what_is_left_out(
        mixed: tuple[Path, Path]) -> None:
    import pyzipper

    zip_path, folder = mixed
    whole = write_unlock_page(zip_path, PHRASE, folder, zip_path.with_name("whole.html"))
    assert whole.left_out == () and "holds only the anatomical images" not in whole.plain_text
    assert len(decrypted_members(whole.path)) == 10  # nine files and the manifest

    page = write_unlock_page(zip_path, PHRASE, folder, zip_path.with_name("part.html"), max_payload=100_000)
    left_out = ("dicom/anat/IM0001.dcm", "ses-1/func/sub-M3X9_ses-1_task-rest_bold.json",
                "ses-1/func/sub-M3X9_ses-1_task-rest_bold.nii.gz")
    assert page.left_out == left_out and page.payload_size < 100_000
    members = decrypted_members(page.path)
    with pyzipper.AESZipFile(zip_path) as archive:
        archive.setpassword(PHRASE.encode())
        zipped = {name: archive.read(name) for name in archive.namelist()}
    # the documents, the anatomical image and its sidecar, and the zip's manifest unchanged (it lists everything)
    assert sorted(members) == sorted(name for name in zipped if name.removeprefix("sub-M3X9/") not in left_out)
    assert all(members[name] == zipped[name] for name in members)
    assert all(name in members["sub-M3X9/MANIFEST-SHA256.txt"].decode() for name in left_out)
    assert "This page holds only the anatomical images" in page.plain_text
    assert "Diese Seite enthält nur die anatomischen Aufnahmen" in page.plain_text
    assert "7-Zip (Windows) or Keka (macOS) and the same passphrase" in page.plain_text
    assert all(f"<li>{name}</li>" in page.plain_text and name in page.inserted for name in left_out)
    assert "Save all files on this page as a ZIP" in page.plain_text
    # the stored .nii.gz files fit, the whole package with its deflated files not: the same anatomical page
    below_whole = write_unlock_page(zip_path, PHRASE, folder, zip_path.with_name("p2.html"), max_payload=350_000)
    assert below_whole.left_out == left_out and sorted(decrypted_members(below_whole.path)) == sorted(members)


def test_a_partial_page_still_checks_the_folder_against_the_zip(mixed: tuple[Path, Path]) -> None:
    zip_path, folder = mixed
    target = zip_path.with_name("part.html")
    (folder / "ses-1" / "func" / "sub-M3X9_ses-1_task-rest_bold.json").unlink()  # left out, but gone since packing
    with pytest.raises(MrishareError, match="no longer matches"):
        write_unlock_page(zip_path, PHRASE, folder, target, max_payload=100_000)
    (folder / "ses-1" / "func" / "sub-M3X9_ses-1_task-rest_bold.json").write_text("{}", encoding="utf-8")
    (folder / "ses-1" / "anat" / "sub-M3X9_ses-1_T1w.json").write_text("{}", encoding="utf-8")  # in the page
    with pytest.raises(MrishareError, match="no longer matches"):
        write_unlock_page(zip_path, PHRASE, folder, target, max_payload=100_000)
    assert not target.exists()


def test_no_page_when_even_the_anatomical_images_are_too_large(mixed: tuple[Path, Path]) -> None:
    zip_path, folder = mixed
    target = zip_path.with_name("none.html")
    with pytest.raises(PageTooLarge, match="more than a browser page can carry"):
        write_unlock_page(zip_path, PHRASE, folder, target, max_payload=20_000)
    assert not target.exists()
