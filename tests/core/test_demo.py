"""The demo study: realistic series from a swappable head volume, correct geometry, deterministic."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from tui.core.demo import MARKER, make_demo_study
from tui.core.dicom.scan import scan
from tui.core.errors import MrishareError
from tui.core.events import StepFinished, StepProgress, StepStarted, drain
from tui.core.nifti.head_volume import TEMPLATE, HeadVolume, template_head


def small_head() -> HeadVolume:
    """A tiny ramp volume: every voxel's value encodes its (x, y, z) index."""
    x, y, z = np.meshgrid(np.arange(12), np.arange(14), np.arange(40), indexing="ij")
    return HeadVolume((100 + x * 50 + y * 40 + z * 30).astype(np.int16), (1.0, 0.5, 0.75), (-6.0, -3.5, 10.0))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list]:
    out = tmp_path_factory.mktemp("demo")
    events: list = []
    folders = drain(make_demo_study(out, participants=2, seed=0), events.append)
    return out, folders, events


def test_scanned_back_two_participants_three_series(demo) -> None:
    out, folders, _ = demo
    result = scan(out)
    assert [p.folder for p in result.participants] == folders
    assert [s.path.name for s in result.skipped] == [MARKER]
    for participant in result.participants:
        assert not participant.mixed_patients
        localizer, t1, t2 = list(participant.series())
        assert (localizer.slices, localizer.image_type) == (3, "ORIGINAL\\PRIMARY\\LOCALIZER\\NONE")
        assert t1.slices >= 128 and (t1.rows, t1.cols) == (256, 256) and t1.modality == "MR"
        assert t2.slices == 30
        assert t1.transfer_syntaxes == {"1.2.840.10008.1.2.1"}


def test_folder_names_and_invented_phi(demo) -> None:
    _out, folders, _ = demo
    assert [f.name for f in folders] == ["DOE_JANE_19940617", "ROE_RICHARD_19830910"]
    flat = sorted(folders[1].iterdir())  # the second participant is a flat .IMA export
    assert all(f.suffix == ".IMA" for f in flat) and len(flat) == 3 + 176 + 30
    ds = pydicom.dcmread(next((folders[0] / "02_t1_mprage_sag").iterdir()))
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert str(ds.PatientName) == "Doe^Jane" and ds.PatientBirthDate == "19940617"
    for keyword in ("PatientID", "PatientSex", "PatientAge", "InstitutionName", "ReferringPhysicianName",
                    "StudyDescription", "AccessionNumber", "StationName", "DeviceSerialNumber", "StudyDate"):
        assert ds.get(keyword), keyword
    block = ds.private_block(0x0011, "MRISHARE DEMO 1.0")
    assert block[0x01].value == "Doe^Jane"
    assert (ds.SliceThickness, ds.PixelSpacing) == (1.0, [0.9765625, 0.9765625])
    assert ds.pixel_array.max() > 500


def test_progress_events(demo) -> None:
    _, _, events = demo
    assert isinstance(events[0], StepStarted) and events[0].total == 2 * 209
    assert isinstance(events[-1], StepFinished)
    assert [e for e in events if isinstance(e, StepProgress)][-1].done == 418
    assert "DOE" not in " ".join(map(str, events))


def test_t1_converts_with_the_template_orientation(demo, tmp_path: Path) -> None:
    _, folders, _ = demo
    dcm2niix = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    for series in ("02_t1_mprage_sag", "03_t2_tse_tra"):
        subprocess.run([dcm2niix, "-z", "n", "-f", series, "-o", str(tmp_path), str(folders[0] / series)],
                       check=True, capture_output=True)
    converted = nib.as_closest_canonical(nib.load(tmp_path / "02_t1_mprage_sag.nii"))
    template = nib.as_closest_canonical(nib.load(TEMPLATE))
    assert converted.shape == template.shape
    assert nib.aff2axcodes(converted.affine) == ("R", "A", "S")
    head = template_head()
    assert np.allclose(converted.affine[:3, 3], head.origin_ras, atol=0.01)
    assert np.allclose(np.diag(converted.affine)[:3], head.voxel_mm, atol=1e-4)
    a = np.asanyarray(converted.dataobj, dtype=np.float32).ravel()
    b = np.asanyarray(template.dataobj, dtype=np.float32).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.99
    t2 = nib.as_closest_canonical(nib.load(tmp_path / "03_t2_tse_tra.nii"))
    assert t2.shape == (176, 256, 30)
    assert np.allclose(np.diag(t2.affine)[:3], (*head.voxel_mm[:2], 4.0), atol=1e-4)
    assert np.allclose(t2.affine[:2, 3], head.origin_ras[:2], atol=0.01)


def test_geometry_maps_every_pixel_to_its_voxel(tmp_path: Path) -> None:
    """Pixel values follow the voxel that ImagePositionPatient/Orientation/PixelSpacing point at."""
    head = small_head()
    drain(make_demo_study(tmp_path, participants=1, head=lambda: head))
    files = sorted(p for p in tmp_path.rglob("*.dcm"))
    assert len(files) == 3 + 12 + 30
    orientations = set()
    for path in files[:3] + files[3:15:4]:  # localizer (3 planes) and T1; T2 shares the axial code path
        ds = pydicom.dcmread(path)
        ipp, iop = np.array(ds.ImagePositionPatient, float), np.array(ds.ImageOrientationPatient, float)
        orientations.add(tuple(iop))
        row_sp, col_sp = (float(v) for v in ds.PixelSpacing)
        r, c = np.meshgrid(np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
        lps = ipp + (c * col_sp)[..., None] * iop[:3] + (r * row_sp)[..., None] * iop[3:]
        ras = lps * np.array([-1.0, -1.0, 1.0])
        ijk = np.rint((ras - head.origin_ras) / head.voxel_mm).astype(int)
        ijk = np.clip(ijk, 0, np.array(head.shape) - 1)  # axial slab centres may sit half a voxel outside
        expected = head.data[ijk[..., 0], ijk[..., 1], ijk[..., 2]].astype(float)
        assert np.corrcoef(expected.ravel(), ds.pixel_array.ravel().astype(float))[0, 1] > 0.95, path.name
    assert len(orientations) == 3  # sagittal, coronal, axial
    t2 = [pydicom.dcmread(p) for p in files[15:]]
    assert np.allclose(np.diff([float(d.ImagePositionPatient[2]) for d in t2]), 4.0)
    assert {tuple(d.ImageOrientationPatient) for d in t2} == {(1, 0, 0, 0, 1, 0)}


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    head = small_head()
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        folders = drain(make_demo_study(tmp_path / name, participants=1, seed=seed, head=lambda: head))
        first = sorted(folders[0].rglob("*"))[-1]
        ds = pydicom.dcmread(first)
        runs.append((folders[0].name, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.PixelData))
    assert runs[0] == runs[1]
    assert runs[0][1] != runs[2][1] and runs[0][3] != runs[2][3]


def test_refuses_a_foreign_folder_and_remakes_its_own(tmp_path: Path) -> None:
    (tmp_path / "foreign.txt").write_text("x")
    with pytest.raises(MrishareError, match="not empty"):
        drain(make_demo_study(tmp_path, head=small_head))
    out = tmp_path / "demo"
    drain(make_demo_study(out, participants=2, head=small_head))
    drain(make_demo_study(out, participants=1, seed=1, head=small_head))
    assert len([p for p in out.iterdir() if p.is_dir()]) == 1
