"""A synthetic but realistic demo study: invented people, real-looking head MRI with a face.

Each participant gets a 3-plane localizer, a sagittal 3D T1 MPRAGE (~1 mm, one file per slice)
and an axial T2 (4 mm), all cut from one `HeadVolume` (default: pydeface's average head), with
invented identifying data in the usual places so that de-identification has work to do.
Output is deterministic for a seed (UIDs are derived from it).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepFinished, StepProgress, StepStarted, Throttle
from tui.core.nifti.head_volume import HeadVolume, template_head
from tui.core.safetext import counted

SUBJECT = "demo"
STEP = "make demo"
MARKER = "mrishare-demo.json"
T2_SLICES = 30
T2_THICKNESS_MM = 4.0
MAX_VALUE = 4095  # 12 bits stored

# Invented people (any likeness is coincidental): family, given, sex.
PEOPLE = (
    ("DOE", "JANE", "F"), ("ROE", "RICHARD", "M"), ("MUSTERMANN", "ERIKA", "F"), ("NOWAK", "PIOTR", "M"),
    ("ROSSI", "GIULIA", "F"), ("JANSSEN", "LARS", "M"), ("DUPONT", "CLAIRE", "F"), ("OKAFOR", "CHIDI", "M"),
)
SITE = {
    "InstitutionName": "Demo University Hospital",
    "InstitutionAddress": "Example Street 1, 12345 Sampletown",
    "InstitutionalDepartmentName": "Neuroradiology Research",
    "StationName": "MRC40123",
    "Manufacturer": "SIEMENS",
    "ManufacturerModelName": "Prisma_fit",
    "SoftwareVersions": "syngo MR E11",
    "DeviceSerialNumber": "166042",
    "MagneticFieldStrength": 3,
    "ReferringPhysicianName": "Brandauer^Hannelore^^Dr. med.",
    "PerformingPhysicianName": "Vogtmann^Rolf",
    "OperatorsName": "Kellner^Mia",
}


@dataclass(frozen=True)
class Person:
    """One invented participant."""

    family: str
    given: str
    sex: str
    birth: dt.date
    patient_id: str
    study: dt.datetime

    @property
    def folder(self) -> str:
        """A lab-export style folder name (itself identifying, as in real exports)."""
        return f"{self.family}_{self.given}_{self.birth:%Y%m%d}"

    @property
    def age(self) -> str:
        """PatientAge at the study date, e.g. `044Y`."""
        before_birthday = (self.study.month, self.study.day) < (self.birth.month, self.birth.day)
        years = self.study.year - self.birth.year - before_birthday
        return f"{years:03d}Y"


@dataclass(frozen=True)
class Plane:
    """One image to write: pixels (rows x cols) and where it sits (DICOM LPS patient coordinates)."""

    pixels: np.ndarray
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    spacing: tuple[float, float]
    thickness: float


@dataclass(frozen=True)
class SeriesSpec:
    """Series-level attributes of one demo series."""

    number: int
    folder: str
    description: str
    image_type: str
    attrs: dict[str, object]


LOCALIZER = SeriesSpec(1, "01_localizer", "localizer", "ORIGINAL\\PRIMARY\\LOCALIZER\\NONE", {
    "ScanningSequence": "GR", "SequenceVariant": "SP\\OSP", "MRAcquisitionType": "2D", "RepetitionTime": 8.6,
    "EchoTime": 4.0, "FlipAngle": 20, "SequenceName": "*fl2d1", "ProtocolName": "localizer"})
T1 = SeriesSpec(2, "02_t1_mprage_sag", "t1_mprage_sag_p2_iso", "ORIGINAL\\PRIMARY\\M\\ND\\NORM", {
    "ScanningSequence": "GR\\IR", "SequenceVariant": "SK\\SP\\MP", "MRAcquisitionType": "3D",
    "RepetitionTime": 2300.0, "EchoTime": 2.32, "InversionTime": 900.0, "FlipAngle": 8,
    "SequenceName": "*tfl3d1_16ns", "ProtocolName": "t1_mprage_sag_p2_iso"})
T2 = SeriesSpec(3, "03_t2_tse_tra", "t2_tse_tra", "ORIGINAL\\PRIMARY\\M\\ND\\NORM", {
    "ScanningSequence": "SE", "SequenceVariant": "SK\\SP\\OSP", "MRAcquisitionType": "2D",
    "RepetitionTime": 6000.0, "EchoTime": 96.0, "FlipAngle": 150, "SequenceName": "*tse2d1_15",
    "ProtocolName": "t2_tse_tra"})


def person(index: int, seed: int) -> Person:
    """The invented participant number `index` for `seed`."""
    rng = np.random.default_rng([seed, index, 1])
    family, given, sex = PEOPLE[(index + seed) % len(PEOPLE)]
    if index >= len(PEOPLE):
        family = f"{family}{index // len(PEOPLE) + 1}"
    birth = dt.date(1950, 1, 1) + dt.timedelta(days=int(rng.integers(0, 50 * 365)))
    study = dt.datetime(2024, 1, 8, 8, 0) + dt.timedelta(days=int(rng.integers(0, 600)),
                                                         minutes=int(rng.integers(0, 9 * 60)))
    return Person(family, given, sex, birth, f"LAB{seed:02d}{index + 1:04d}{int(rng.integers(10, 99))}", study)


# ---------------------------------------------------------------- geometry (RAS volume -> LPS planes)


def _lps(head: HeadVolume, i: float, j: float, k: float) -> tuple[float, float, float]:
    """DICOM patient coordinates (LPS, mm) of voxel (i, j, k) of a RAS volume."""
    (dx, dy, dz), (x0, y0, z0) = head.voxel_mm, head.origin_ras
    return (-(x0 + i * dx), -(y0 + j * dy), z0 + k * dz)


def sagittal_plane(head: HeadVolume, volume: np.ndarray, i: int) -> Plane:
    """The sagittal image at x index `i`: columns run anterior->posterior, rows head->feet."""
    _, ny, nz = volume.shape
    dx, dy, dz = head.voxel_mm
    return Plane(volume[i, ::-1, ::-1].T, _lps(head, i, ny - 1, nz - 1), (0, 1, 0, 0, 0, -1), (dz, dy), dx)


def coronal_plane(head: HeadVolume, volume: np.ndarray, j: int) -> Plane:
    """The coronal image at y index `j`: columns right->left, rows head->feet."""
    nx, _, nz = volume.shape
    dx, dy, dz = head.voxel_mm
    return Plane(volume[::-1, j, ::-1].T, _lps(head, nx - 1, j, nz - 1), (1, 0, 0, 0, 0, -1), (dz, dx), dy)


def axial_plane(head: HeadVolume, volume: np.ndarray, centre: float, thickness: float) -> Plane:
    """The axial slab of `thickness` mm centred at z index `centre` (mean): columns right->left, rows A->P."""
    nx, ny, nz = volume.shape
    dx, dy, dz = head.voxel_mm
    half = thickness / dz / 2
    lo = min(nz - 1, max(0, round(centre - half)))
    hi = min(nz, max(lo + 1, round(centre + half)))
    slab = volume[:, :, lo:hi].mean(axis=2)
    return Plane(slab[::-1, ::-1].T, _lps(head, nx - 1, ny - 1, centre), (1, 0, 0, 0, 1, 0), (dy, dx), thickness)


def axial_planes(head: HeadVolume, volume: np.ndarray, count: int, thickness: float) -> list[Plane]:
    """`count` contiguous axial slabs from the top of the head down, in feet->head order."""
    profile = volume.max(axis=(0, 1))
    top = int(np.nonzero(profile > profile.max() * 0.1)[0].max())
    step = thickness / head.voxel_mm[2]
    return [axial_plane(head, volume, top - (n + 0.5) * step, thickness) for n in reversed(range(count))]


# ---------------------------------------------------------------- contrast


def t1_contrast(head: HeadVolume, rng: np.random.Generator) -> np.ndarray:
    """The head scaled to 12 bits with per-participant gain and Rician-like noise."""
    data = head.data.astype(np.float32)
    data *= np.float32(rng.uniform(1.6, 2.2) * 1000.0 / max(1.0, float(np.percentile(data[data > 0], 99))))
    sigma = np.float32(rng.uniform(8.0, 20.0))
    noise_a = rng.standard_normal(data.shape, dtype=np.float32) * sigma
    noise_b = rng.standard_normal(data.shape, dtype=np.float32) * sigma
    return np.sqrt((data + noise_a) ** 2 + noise_b**2)


def t2_contrast(t1: np.ndarray) -> np.ndarray:
    """A T2-like look from the T1: fluid bright, white matter darker; background stays dark."""
    head = t1 > np.percentile(t1, 60)
    peak = np.percentile(t1[head], 95)
    return np.where(head, np.clip(peak * 1.2 - t1, 0, None) * 1.4 + 100, t1 * 0.5)


# ---------------------------------------------------------------- DICOM writing


def _uid(seed: int, *parts: object) -> UID:
    """A UID derived from the seed and `parts` (same inputs, same UID)."""
    return generate_uid(entropy_srcs=["mrishare-demo", str(seed), *map(str, parts)])


def _common(p: Person, seed: int, index: int) -> dict[str, object]:
    """Patient, study and equipment attributes shared by every file of one participant."""
    return {
        "SpecificCharacterSet": "ISO_IR 100",
        "PatientName": f"{p.family.title()}^{p.given.title()}",
        "PatientID": p.patient_id,
        "IssuerOfPatientID": "DEMO-HIS",
        "PatientBirthDate": f"{p.birth:%Y%m%d}",
        "PatientSex": p.sex,
        "PatientAge": p.age,
        "PatientWeight": 55 + (index * 7 + seed) % 40,
        "PatientSize": 1.60 + ((index * 3 + seed) % 30) / 100,
        "StudyInstanceUID": _uid(seed, index, "study"),
        "StudyDate": f"{p.study:%Y%m%d}",
        "StudyTime": f"{p.study:%H%M%S}",
        "StudyID": f"{1000 + index}",
        "AccessionNumber": f"ACC{p.study:%y%m%d}{index + 1:03d}",
        "StudyDescription": "Neuro^Kopf Forschung",
        "FrameOfReferenceUID": _uid(seed, index, "frame"),
        "PositionReferenceIndicator": "",
        "BodyPartExamined": "HEAD",
        "PatientPosition": "HFS",
        **SITE,
    }


def _write(path: Path, common: dict[str, object], spec: SeriesSpec, plane: Plane, number: int,
           seed: int, index: int, person_: Person) -> None:
    """Write one MR image file (Explicit VR Little Endian, with file meta)."""
    sop_uid = _uid(seed, index, spec.number, number)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    for keyword, value in common.items():
        setattr(ds, keyword, value)
    for keyword, value in spec.attrs.items():
        setattr(ds, keyword, value)
    series_time = person_.study + dt.timedelta(minutes=3 * spec.number)
    ds.ImageType = spec.image_type.split("\\")
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "MR"
    ds.SeriesInstanceUID = _uid(seed, index, spec.number, "series")
    ds.SeriesNumber = spec.number
    ds.SeriesDescription = spec.description
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = f"{series_time:%Y%m%d}"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = f"{series_time:%H%M%S}.{number:06d}"
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [round(v, 4) for v in plane.position]
    ds.ImageOrientationPatient = list(plane.orientation)
    normal = np.cross(plane.orientation[:3], plane.orientation[3:])
    ds.SliceLocation = round(float(np.dot(normal, plane.position)), 4)
    ds.PixelSpacing = [plane.spacing[0], plane.spacing[1]]
    ds.SliceThickness = plane.thickness
    if spec is not LOCALIZER:
        ds.SpacingBetweenSlices = plane.thickness
    pixels = np.clip(np.rint(plane.pixels), 0, MAX_VALUE).astype("<u2")
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 600, 1200
    ds.BurnedInAnnotation = "NO"
    block = ds.private_block(0x0011, "MRISHARE DEMO 1.0", create=True)
    block.add_new(0x01, "LO", str(common["PatientName"]))  # a vendor-style copy of the name
    block.add_new(0x02, "LO", person_.patient_id)
    block.add_new(0x03, "DA", f"{person_.birth:%Y%m%d}")
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def _file_name(p: Person, index: int, spec: SeriesSpec, number: int) -> str:
    """Even participants: OsiriX-style series folders; odd ones: a flat Siemens-style .IMA export."""
    if index % 2 == 0:
        return f"{spec.folder}/IM-{spec.number:04d}-{number:04d}.dcm"
    return f"{p.family}_{p.given}.MR.NEURO_RESEARCH.{spec.number:04d}.{number:04d}.{p.study:%Y.%m.%d}.IMA"


def _series_planes(head: HeadVolume, rng: np.random.Generator) -> list[tuple[SeriesSpec, list[Plane]]]:
    """The three series of one participant, as planes cut from a noisy copy of the head."""
    t1 = t1_contrast(head, rng)
    nx, ny, nz = t1.shape
    localizer = [sagittal_plane(head, t1, nx // 2), coronal_plane(head, t1, ny // 2),
                 axial_plane(head, t1, nz // 2, head.voxel_mm[2])]
    return [(LOCALIZER, localizer), (T1, [sagittal_plane(head, t1, i) for i in range(nx)]),
            (T2, axial_planes(head, t2_contrast(t1), T2_SLICES, T2_THICKNESS_MM))]


def make_demo_study(out: Path, participants: int = 2, seed: int = 0, cancel: threading.Event | None = None,
                    head: Callable[[], HeadVolume] = template_head) -> EventStream[list[Path]]:
    """Write the demo study into `out/<FOLDER>/...`; returns the participant folders."""
    out = Path(out)
    marker = out / MARKER
    if out.exists() and any(out.iterdir()) and not marker.exists():
        raise MrishareError("folder is not empty and holds no earlier demo study", where=out)
    if marker.exists():
        for name in json.loads(marker.read_text())["participants"]:
            shutil.rmtree(out / name, ignore_errors=True)
        marker.unlink()
    volume = head()
    people = [person(i, seed) for i in range(participants)]
    per_participant = 3 + volume.shape[0] + T2_SLICES
    total = per_participant * participants
    yield StepStarted(SUBJECT, STEP, total)
    throttle = Throttle()
    done = 0
    folders = []
    for index, p in enumerate(people):
        rng = np.random.default_rng([seed, index, 2])
        common = _common(p, seed, index)
        folder = out / p.folder
        for spec, planes in _series_planes(volume, rng):
            for number, plane in enumerate(planes, 1):
                if cancel is not None and cancel.is_set():
                    raise MrishareError("demo study cancelled", where=out)
                path = folder / _file_name(p, index, spec, number)
                path.parent.mkdir(parents=True, exist_ok=True)
                _write(path, common, spec, plane, number, seed, index, p)
                done += 1
                if throttle.ready(done, total):
                    yield StepProgress(SUBJECT, STEP, done, total)
        folders.append(folder)
    marker.write_text(json.dumps({"seed": seed, "participants": [f.name for f in folders],
                                  "note": "synthetic demo data; every name, ID and date is invented"}, indent=1))
    yield StepFinished(SUBJECT, STEP, f"{counted(participants, 'participant')}, {done} files")
    return folders
