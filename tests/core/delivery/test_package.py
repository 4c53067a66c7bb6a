"""Encrypted packages: AES-256 that 7-Zip and bsdtar open, manifest, verification, cancel, ZipCrypto."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tui.core.delivery import package
from tui.core.delivery.passphrase import Passphrase
from tui.core.errors import MrishareError
from tui.core.events import StepProgress, drain

PASS = Passphrase(("quartz", "walrus", "tundra", "lagoon", "zephyr"), "en")
WRONG = Passphrase(("quartz", "walrus", "tundra", "lagoon", "nimbus"), "en")
SIEMENS = "head-mri/siemens_prisma_xa30_mprage_2mm/nifti"


@pytest.fixture
def src(tmp_path: Path, shared_data: Path) -> Path:
    """A participant folder as the pipeline leaves it: NIfTI, sidecar, a preview, index.html."""
    top = tmp_path / "in" / "sub-7f3k"
    (top / "anat").mkdir(parents=True)
    shutil.copyfile(shared_data / SIEMENS / "anat-T1w_acq-tfl_dicom2nifti.nii.gz", top / "anat" / "sub-7f3k_T1w.nii.gz")
    shutil.copyfile(shared_data / SIEMENS / "dcm2niix_reference_sidecar.json", top / "anat" / "sub-7f3k_T1w.json")
    (top / "preview.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    (top / "index.html").write_text("<html><body>scan</body></html>\n" * 50)
    return top


def _build(src: Path, out: Path, mode: str = "aes", **kw) -> package.PackageResult:
    return drain(package.build_package(src, out, PASS, mode, **kw))


def _sources(src: Path) -> dict[str, str]:
    return {f"{src.name}/{p.relative_to(src).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in src.rglob("*") if p.is_file()}


def test_aes_package_layout_manifest_and_result(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "abc123_sub-7f3k.zip"
    result = _build(src, out)
    assert result.path == out and result.mode == "aes" and not result.breakable
    assert result.size == out.stat().st_size
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert out.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp left
    with zipfile.ZipFile(out) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    expected = _sources(src)
    assert set(infos) == set(expected) | {"sub-7f3k/MANIFEST-SHA256.txt"}
    assert result.members == len(infos)
    assert all(i.flag_bits & 1 and i.compress_type == 99 for i in infos.values())  # 99 = WinZip AES
    # pyzipper reports the inner method: stored for compressed members, deflated for text
    import pyzipper
    with pyzipper.AESZipFile(out) as zf:
        zf.setpassword(PASS.text().encode())
        methods = {i.filename: i.compress_type for i in zf.infolist()}
        manifest = zf.read("sub-7f3k/MANIFEST-SHA256.txt").decode()
    assert methods["sub-7f3k/anat/sub-7f3k_T1w.nii.gz"] == zipfile.ZIP_STORED
    assert methods["sub-7f3k/preview.png"] == zipfile.ZIP_STORED
    assert methods["sub-7f3k/anat/sub-7f3k_T1w.json"] == zipfile.ZIP_DEFLATED
    lines = {line.split("  ")[1]: line.split("  ")[0] for line in manifest.splitlines()}
    assert {f"sub-7f3k/{k}": v for k, v in lines.items()} == expected


def test_7z_opens_with_the_passphrase_and_refuses_a_wrong_one(src: Path, tmp_path: Path) -> None:
    out = _build(src, tmp_path / "p.zip").path
    ok = subprocess.run(["7z", "t", f"-p{PASS.text()}", str(out)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Everything is Ok" in ok.stdout
    bad = subprocess.run(["7z", "t", f"-p{WRONG.text()}", str(out)], capture_output=True, text=True, check=False)
    assert bad.returncode != 0
    dest = tmp_path / "x7"
    subprocess.run(["7z", "x", f"-p{PASS.text()}", f"-o{dest}", str(out)], check=True, capture_output=True)
    check = subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST-SHA256.txt"], cwd=dest / "sub-7f3k", check=False)
    assert check.returncode == 0


def test_bsdtar_opens_with_the_passphrase_and_refuses_a_wrong_one(src: Path, tmp_path: Path) -> None:
    out = _build(src, tmp_path / "p.zip").path
    dest = tmp_path / "xb"
    dest.mkdir()
    ok = subprocess.run(["bsdtar", "-xf", str(out), "--passphrase", PASS.text(), "-C", str(dest)],
                        capture_output=True, check=False)
    assert ok.returncode == 0
    extracted = _sources(dest / "sub-7f3k")
    assert extracted.pop("sub-7f3k/MANIFEST-SHA256.txt") and extracted == _sources(src)
    bad_dest = tmp_path / "xbad"
    bad_dest.mkdir()
    bad = subprocess.run(["bsdtar", "-xf", str(out), "--passphrase", WRONG.text(), "-C", str(bad_dest)],
                         capture_output=True, check=False)
    assert bad.returncode != 0


def test_verify_rejects_wrong_passphrase_without_echoing_it(src: Path, tmp_path: Path) -> None:
    out = _build(src, tmp_path / "p.zip").path
    package.verify_package(out, PASS)
    with pytest.raises(MrishareError, match="wrong passphrase") as info:
        package.verify_package(out, WRONG)
    assert "walrus" not in str(info.value) and "nimbus" not in str(info.value)


def test_verify_detects_a_damaged_member(src: Path, tmp_path: Path) -> None:
    out = _build(src, tmp_path / "p.zip").path
    data = bytearray(out.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the stored NIfTI
    out.write_bytes(bytes(data))
    with pytest.raises(MrishareError, match="damaged"):
        package.verify_package(out, PASS)


def _check_written(out: Path, phrase: Passphrase, src: Path) -> tuple[int, str]:
    with ThreadPoolExecutor(1) as hasher:
        return drain(package._check_written(out, phrase, _sources(src), "sub-7f3k", None, hasher))


def test_the_check_after_writing_reads_the_file_once_and_catches_damage_and_a_wrong_manifest(
        src: Path, tmp_path: Path) -> None:
    """The check a build runs (member HMACs, manifest, SHA-256 of the whole file) on a package changed after it
    was written: a flipped byte in a member, a wrong passphrase, a manifest that differs from the sources."""
    out = _build(src, tmp_path / "p.zip").path
    assert _check_written(out, PASS, src) == (len(_sources(src)) + 1, hashlib.sha256(out.read_bytes()).hexdigest())
    with pytest.raises(MrishareError, match="wrong passphrase"):
        _check_written(out, WRONG, src)
    (src / "index.html").write_text("changed after packing")
    with pytest.raises(MrishareError, match="the manifest read back differs from the files packed"):
        _check_written(out, PASS, src)
    data = bytearray(out.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside the stored NIfTI
    out.write_bytes(bytes(data))
    with pytest.raises(MrishareError, match=r"damaged archive \(BadZipFile\)"):
        _check_written(out, PASS, src)


def test_verify_refuses_an_unencrypted_zip(tmp_path: Path) -> None:
    out = tmp_path / "plain.zip"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("sub-x/MANIFEST-SHA256.txt", "")
    with pytest.raises(MrishareError, match="unencrypted"):
        package.verify_package(out, PASS)


def test_no_passphrase_in_logs_events_or_names(src: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[object] = []
    result = drain(package.build_package(src, tmp_path / "o" / "p.zip", PASS), events.append)
    with pytest.raises(MrishareError) as info:
        package.verify_package(result.path, WRONG)
    text = caplog.text + repr(events) + repr(result) + str(info.value) + " ".join(p.name for p in tmp_path.rglob("*"))
    for word in ("walrus", "zephyr", "nimbus"):
        assert word not in text


@pytest.mark.parametrize("mode", package.MODES)
def test_cancel_leaves_no_partial_file(src: Path, tmp_path: Path, mode: str) -> None:
    out_dir = tmp_path / "o"
    cancel = threading.Event()
    stream = package.build_package(src, out_dir / "p.zip", PASS, mode, cancel=cancel)
    with pytest.raises(MrishareError, match="cancelled"):
        for event in stream:
            if isinstance(event, StepProgress):
                cancel.set()
    assert list(out_dir.iterdir()) == []


def test_abandoned_stream_leaves_no_partial_file(src: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "o"
    stream = package.build_package(src, out_dir / "p.zip", PASS)
    next(stream)
    next(stream)
    stream.close()
    assert list(out_dir.iterdir()) == []


def test_refuses_existing_target_empty_folder_and_links(src: Path, tmp_path: Path) -> None:
    existing = tmp_path / "e.zip"
    existing.write_bytes(b"keep")
    with pytest.raises(MrishareError, match="already exists"):
        _build(src, existing)
    assert existing.read_bytes() == b"keep"
    empty = tmp_path / "sub-empty"
    empty.mkdir()
    with pytest.raises(MrishareError, match="empty"):
        _build(empty, tmp_path / "e2.zip")
    (src / "link.nii.gz").symlink_to(src / "anat" / "sub-7f3k_T1w.nii.gz")
    with pytest.raises(MrishareError, match="links"):
        _build(src, tmp_path / "e3.zip")


def test_viewer_bundle_is_added_under_viewer(src: Path, tmp_path: Path) -> None:
    viewer = tmp_path / "MRIcron"
    viewer.mkdir()
    (viewer / "README.txt").write_text("viewer")
    out = _build(src, tmp_path / "v.zip", viewer=viewer).path
    with zipfile.ZipFile(out) as zf:
        assert "sub-7f3k/viewer/README.txt" in zf.namelist()
    package.verify_package(out, PASS)


def test_zipcrypto_mode_is_marked_breakable_and_keeps_the_passphrase_off_argv(
        src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launched: list[tuple[object, object]] = []
    real_popen = subprocess.Popen

    def recording_popen(args, **kw):
        launched.append((args, kw.get("env")))
        return real_popen(args, **kw)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    result = _build(src, tmp_path / "c.zip", "zipcrypto")
    assert result.mode == "zipcrypto" and result.breakable
    assert launched and all(PASS.text() not in repr(call) for call in launched)
    with zipfile.ZipFile(result.path) as zf:
        assert all(i.flag_bits & 1 and i.compress_type != 99 for i in zf.infolist())
    ok = real_popen(["7z", "t", f"-p{PASS.text()}", str(result.path)], stdout=subprocess.DEVNULL).wait()
    assert ok == 0
    package.verify_package(result.path, PASS)
    with pytest.raises(MrishareError, match="wrong passphrase"):
        package.verify_package(result.path, WRONG)


def test_unknown_mode(src: Path, tmp_path: Path) -> None:
    with pytest.raises(MrishareError, match="mode"):
        _build(src, tmp_path / "m.zip", "rot13")


def test_verify_catches_members_missing_from_or_differing_with_the_manifest(src: Path, tmp_path: Path) -> None:
    import pyzipper
    out = _build(src, tmp_path / "p.zip").path
    with pyzipper.AESZipFile(out, "a", encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(PASS.text().encode())
        zf.writestr("sub-7f3k/extra.txt", b"slipped in later")
    with pytest.raises(MrishareError, match=r"1 member\(s\) do not match the manifest, e.g. sub-7f3k/extra.txt"):
        package.verify_package(out, PASS)


def test_verify_catches_a_member_whose_digest_differs(tmp_path: Path) -> None:
    import pyzipper
    out = tmp_path / "forged.zip"
    with pyzipper.AESZipFile(out, "w", encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(PASS.text().encode())
        zf.writestr("sub-x/a.txt", b"real content")
        zf.writestr("sub-x/MANIFEST-SHA256.txt", f"{hashlib.sha256(b'other').hexdigest()}  a.txt\n")
    with pytest.raises(MrishareError, match=r"do not match the manifest, e.g. sub-x/a.txt"):
        package.verify_package(out, PASS)
