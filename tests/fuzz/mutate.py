"""Seeded damage to copies of real series: the mutations the fuzzer draws from.

A base series is a copy of real data with PatientName/ID/BirthDate replaced by invented ones
(so the leak gate judges our values, not the test corpus's placeholders). Each mutation changes a
participant folder in place and returns a short description plus whether it removes image data
(then a package with every slice is impossible: the run must say so or stop).
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom

REPO = Path(__file__).resolve().parents[2]
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
BASES = {
    "siemens4": "multivendor/d2n_tiny/siemens_triotim_4sl",
    "ge4": "multivendor/d2n_tiny/ge_mr750_4sl",
    "hitachi4": "multivendor/d2n_tiny/hitachi_echelon_4sl_implicitvr",
    "prisma35": "multivendor/siemens_prisma_t1_fl2d_sag_35sl/dicom",
}
"""Short name -> series under ../shared/data. The 4-slice ones keep CI fast."""
ODD_BYTES = b"P\xff\xfe 01 -x\xe9"
"""A folder name with bytes that are not UTF-8, a space and a dash."""


@dataclass(frozen=True)
class Damage:
    """What one mutation did."""

    kind: str
    file: str
    """The file (or folder) changed, relative to the participant folder ('' if none)."""
    loses_data: bool
    """True if a slice can no longer be read whole (a complete package is then impossible)."""


def prepare_base(data: Path, name: str, dest: Path, patient: str = "Fuzz^Alice", pid: str = "FZ0001") -> Path:
    """Copy base series `name` into `dest` with invented identity values; return `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    source = data / BASES[name]
    for path in sorted(p for p in source.iterdir() if p.is_file() and p.name != "LICENSE"):
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = patient, pid, "19800101"
        ds.save_as(dest / path.name)
    return dest


def slices(folder: Path) -> list[Path]:
    """The DICOM files of a participant folder, sorted (bytes-safe)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", "") and
                  not p.name.endswith(".py"))


def _pixel_offset(data: bytes) -> int:
    at = data.rfind(b"\xe0\x7f\x10\x00")
    return at if at > 0 else len(data) // 2


def truncate(rng: random.Random, folder: Path) -> Damage:
    """Cut one file at 10-90 % of its length (first, last or a middle slice)."""
    path = rng.choice(slices(folder))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * rng.uniform(0.1, 0.9))])
    return Damage("truncate", path.relative_to(folder).as_posix(), True)


def flip_header(rng: random.Random, folder: Path) -> Damage:
    """Flip 1-8 random bytes in the header (after the preamble, before the pixel data)."""
    path = rng.choice(slices(folder))
    data = bytearray(path.read_bytes())
    end = min(_pixel_offset(bytes(data)), 4096)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(132, max(133, end))
        data[at] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return Damage("flip-header", path.relative_to(folder).as_posix(), True)


def flip_pixels(rng: random.Random, folder: Path) -> Damage:
    """Flip bytes inside the pixel data value (the image changes, the file stays readable)."""
    path = rng.choice(slices(folder))
    data = bytearray(path.read_bytes())
    start = _pixel_offset(bytes(data)) + 12
    for _ in range(rng.randint(1, 64)):
        at = rng.randrange(min(start, len(data) - 1), len(data))
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return Damage("flip-pixels", path.relative_to(folder).as_posix(), False)


def damage_vr(rng: random.Random, folder: Path) -> Damage:
    """Overwrite the VR of (0018,0095) PixelBandwidth or another explicit-VR element with junk."""
    path = rng.choice(slices(folder))
    data = bytearray(path.read_bytes())
    for tag in (b"\x18\x00\x95\x00", b"\x18\x00\x50\x00", b"\x28\x00\x30\x00"):
        at = data.find(tag, 132)
        if at > 0 and data[at + 4:at + 6].isalpha():
            data[at + 4:at + 6] = bytes(rng.choice(b"?#Q!z") for _ in range(2))
            path.write_bytes(bytes(data))
            return Damage("bad-vr", path.relative_to(folder).as_posix(), True)
    return flip_header(rng, folder)  # implicit VR: no VR bytes to damage


def remove_slice(rng: random.Random, folder: Path) -> Damage:
    """Delete one slice. The first or last one leaves no trace when the series declares no count of its images
    ('remove-edge': no program can see it; the fuzzer reports it apart)."""
    files = slices(folder)
    path = rng.choice(files)
    path.unlink()
    edge = path in (files[0], files[-1])
    return Damage("remove-edge" if edge else "remove", path.relative_to(folder).as_posix(), True)


def duplicate_slice(rng: random.Random, folder: Path) -> Damage:
    """Copy one slice under another name (same SOP Instance UID)."""
    path = rng.choice(slices(folder))
    copy = path.with_name("copy-of-" + path.name)
    shutil.copy2(path, copy)
    return Damage("duplicate", copy.relative_to(folder).as_posix(), False)


def mix_patient(rng: random.Random, folder: Path, other: Path) -> Damage:
    """Add another patient's series to the folder."""
    target = folder / "other"
    shutil.copytree(other, target)
    return Damage("mixed-patients", "other", False)


def odd_names(rng: random.Random, folder: Path) -> Damage:
    """Rename a file to one with non-UTF-8 bytes, a newline or a leading dash."""
    path = rng.choice(slices(folder))
    odd = rng.choice([b"\xff\xfeslice.dcm", b"-slice\n2.dcm", b"sl ice \xe9.dcm", b".hidden.dcm"])
    new = Path(os.fsdecode(os.fsencode(path.parent) + b"/" + odd))
    path.rename(new)
    return Damage("odd-name", new.relative_to(folder).as_posix(), False)


def pydicom_file(rng: random.Random, folder: Path) -> Damage:
    """Drop one of pydicom's test files (several deliberately malformed) into the folder."""
    source = rng.choice(sorted(PYDICOM_FILES.glob("*.dcm")))
    shutil.copy2(source, folder / f"zz-{source.name}")
    return Damage("pydicom-file", f"zz-{source.name}", False)


MUTATIONS = {
    "truncate": truncate, "flip-header": flip_header, "flip-pixels": flip_pixels, "bad-vr": damage_vr,
    "remove": remove_slice, "duplicate": duplicate_slice, "odd-name": odd_names, "pydicom-file": pydicom_file,
}
"""Mutations that need only the participant folder; `mix_patient` needs a second base."""
