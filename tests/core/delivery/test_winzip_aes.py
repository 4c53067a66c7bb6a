"""FastAESZipFile: the same WinZip AES-256 (AE-2) archive as stock pyzipper and 7-Zip write and read."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import pyzipper

from tui.core.delivery.winzip_aes import FastAESZipFile

PASSWORD = b"quartz-walrus-tundra-lagoon-zephyr"
# sizes around the 16-byte AES block and the key stream carried between writes of uneven length
SIZES = {"empty.bin": 0, "one.bin": 1, "block.bin": 16, "odd.bin": 1_000_003, "text.json": 70_001}


def _contents() -> dict[str, bytes]:
    out = {name: os.urandom(size) for name, size in SIZES.items() if not name.endswith(".json")}
    out["text.json"] = b'{"EchoTime": 0.00246, "RepetitionTime": 2.3}\n' * 1522  # deflates: uneven encrypt calls
    return out


def _write_ours(path: Path, contents: dict[str, bytes]) -> None:
    with FastAESZipFile(path, "w", encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(PASSWORD)
        for name, data in contents.items():  # stored, and .json deflated
            info = zf.zipinfo_cls(name)
            info.compress_type = pyzipper.ZIP_DEFLATED if name.endswith(".json") else pyzipper.ZIP_STORED
            with zf.open(info, "w") as dst:
                for i in range(0, len(data), 7777):  # writes that are no multiple of 16
                    dst.write(data[i:i + 7777])


def test_stock_pyzipper_reads_what_we_write(tmp_path: Path) -> None:
    contents = _contents()
    path = tmp_path / "ours.zip"
    _write_ours(path, contents)
    with pyzipper.AESZipFile(path) as zf:
        zf.setpassword(PASSWORD)
        infos = {i.filename: i for i in zf.infolist()}
        assert all(i.wz_aes_strength == 3 and i.wz_aes_version == 2 and i.CRC == 0 for i in infos.values())
        assert infos["text.json"].compress_type == pyzipper.ZIP_DEFLATED
        assert {name: zf.read(name) for name in contents} == contents


def test_we_read_what_stock_pyzipper_writes(tmp_path: Path) -> None:
    contents = _contents()
    path = tmp_path / "stock.zip"
    with pyzipper.AESZipFile(path, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(PASSWORD)
        for name, data in contents.items():
            zf.writestr(name, data)
    with FastAESZipFile(path) as zf:
        zf.setpassword(PASSWORD)
        assert {name: zf.read(name) for name in contents} == contents


def test_7z_shows_aes_256_and_extracts_the_same_bytes(tmp_path: Path) -> None:
    contents = _contents()
    path = tmp_path / "ours.zip"
    _write_ours(path, contents)
    listing = subprocess.run(["7z", "l", "-slt", f"-p{PASSWORD.decode()}", str(path)], capture_output=True,
                             text=True, check=True).stdout
    methods = [line.split(" = ", 1)[1] for line in listing.splitlines() if line.startswith("Method = ")]
    assert len(methods) == len(contents) and all(m.startswith("AES-256") for m in methods), methods
    out = tmp_path / "x"
    subprocess.run(["7z", "x", f"-p{PASSWORD.decode()}", f"-o{out}", str(path)], check=True, capture_output=True)
    assert {name: (out / name).read_bytes() for name in contents} == contents


def test_wrong_password_and_a_changed_byte_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ours.zip"
    _write_ours(path, _contents())
    with FastAESZipFile(path) as zf:
        zf.setpassword(b"wrong")
        with pytest.raises(RuntimeError, match="Bad password"):
            zf.read("odd.bin")
    with FastAESZipFile(path) as zf:
        offset = zf.getinfo("odd.bin").header_offset + 500_000
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with FastAESZipFile(path) as zf:
        zf.setpassword(PASSWORD)
        with pytest.raises(pyzipper.BadZipFile, match="Bad HMAC check"):
            zf.read("odd.bin")
