"""DICOM -> NIfTI with both engines on every real series in shared/data: agreement, names, privacy, skips."""

from __future__ import annotations

import json
import re
import shutil
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tui.core.errors import MrishareError
from tui.core.events import StepFailed, StepNote, drain
from tui.core.nifti.conversion import (
    SIDECAR_KEYS,
    Converted,
    Dcm2niixEngine,
    NotConverted,
    SeriesInput,
    bids_name,
    convert_series,
)

MULTIVENDOR = [
    "d2n_tiny/ge_mr750_4sl",
    "d2n_tiny/hitachi_echelon_4sl_implicitvr",
    "d2n_tiny/philips_intera_4sl_implicitvr",
    "d2n_tiny/siemens_triotim_4sl",
    "ge_signa_pioneer_3d_t1_mprage_130sl/dicom",
    "siemens_prisma_t1_fl2d_sag_35sl/dicom",
]
ENGINES = ("dcm2niix", "dicom2nifti")
BIDS = re.compile(r"^sub-[A-Za-z0-9]+_ses-[A-Za-z0-9]+(_task-[A-Za-z0-9]+)?(_acq-[A-Za-z0-9]+)?(_run-\d+)?"
                  r"(_echo-\d+)?(_part-[a-z]+)?_[A-Za-z0-9]+\.(nii\.gz|json)$")


def series_from(folder: Path, key: str, description: str = "", image_type: str = "ORIGINAL\\PRIMARY",
                sop: str = "1.2.840.10008.5.1.4.1.1.4") -> SeriesInput:
    """A SeriesInput over the DICOM files of one folder (licence files left out)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != "LICENSE")
    return SeriesInput(key, files, description, "MR", image_type, {sop})


def convert(series: list[SeriesInput], out: Path, engine: str) -> list:
    return drain(convert_series(series, out, "p01", engine=engine))


def assert_agree(a: Path, b: Path) -> None:
    """Same shape, same world orientation (affine after reorienting to RAS), same displayed values."""
    ia, ib = nib.load(a), nib.load(b)
    ca, cb = nib.as_closest_canonical(ia), nib.as_closest_canonical(ib)
    assert ca.shape == cb.shape
    assert np.allclose(ca.affine, cb.affine, atol=1e-3)
    slope = max(abs(float(ia.dataobj.slope)), abs(float(ib.dataobj.slope)))
    assert np.abs(ca.get_fdata() - cb.get_fdata()).max() <= 0.5 * slope + 1e-3
    for img in (ia, ib):  # integer storage + scaling, never float64
        assert img.get_data_dtype().kind in "iu"


def assert_private(item: Converted) -> None:
    """Blank NIfTI text fields, no extensions, only whitelisted sidecar keys, a BIDS name."""
    header = nib.load(item.nifti).header
    for name in ("descrip", "aux_file", "db_name", "intent_name"):
        assert header[name].item() == b"", name
    assert len(header.extensions) == 0
    sidecar = json.loads(item.sidecar.read_text())
    assert set(sidecar) <= SIDECAR_KEYS
    assert not {"AcquisitionTime", "DeviceSerialNumber", "StudyDescription", "SeriesDescription"} & set(sidecar)
    assert BIDS.match(item.nifti.name) and BIDS.match(item.sidecar.name)


@pytest.fixture(scope="module")
def multivendor(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, dict[str, Converted]]:
    """All multivendor series converted in one batch per engine: {engine: {series: Converted}}."""
    series = [series_from(shared_data / "multivendor" / name, name) for name in MULTIVENDOR]
    out = {}
    for engine in ENGINES:
        results = convert(series, tmp_path_factory.mktemp(engine), engine)
        assert all(isinstance(r, Converted) for r in results), results
        out[engine] = {r.series_key: r for r in results}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", MULTIVENDOR)
def test_engines_agree_on_multivendor_series(multivendor: dict, shared_data: Path, name: str) -> None:
    a, b = multivendor["dcm2niix"][name], multivendor["dicom2nifti"][name]
    assert_agree(a.nifti, b.nifti)
    assert a.suffix == b.suffix and a.nifti.name == b.nifti.name
    expected = json.loads((shared_data / "multivendor" / "expected.json").read_text())[name]
    assert list(nib.load(a.nifti).shape) == expected["dcm2niix_v1.0.20260724"]["shapes"][0]
    img = nib.load(b.nifti)
    las = img.as_reoriented(nib.orientations.ornt_transform(nib.io_orientation(img.affine),
                                                            nib.orientations.axcodes2ornt("LAS")))
    assert nib.aff2axcodes(las.affine) == tuple(expected["dicom2nifti_2.6.2"]["axcodes"])
    assert sorted(las.shape) == sorted(expected["dicom2nifti_2.6.2"]["shape"])
    sa, sb = (json.loads(x.sidecar.read_text()) for x in (a, b))
    for key in ("EchoTime", "RepetitionTime", "MagneticFieldStrength", "PhaseEncodingAxis"):
        if key in sa and key in sb:
            assert sa[key] == pytest.approx(sb[key], rel=1e-3), key


@pytest.mark.slow
def test_outputs_are_private_and_bids_named(multivendor: dict) -> None:
    for engine in ENGINES:
        items = list(multivendor[engine].values())
        for item in items:
            assert_private(item)
        assert len({i.nifti for i in items}) == len(items)
    names = {k: v.nifti.name for k, v in multivendor["dcm2niix"].items()}
    # three T1w of different kinds get acq labels; the two 3D FLAIRs are repeats of one kind
    assert names["siemens_prisma_t1_fl2d_sag_35sl/dicom"] == "sub-p01_ses-1_acq-2dsag_T1w.nii.gz"
    assert names["ge_signa_pioneer_3d_t1_mprage_130sl/dicom"].startswith("sub-p01_ses-1_acq-3d")
    assert {names["d2n_tiny/siemens_triotim_4sl"], names["d2n_tiny/philips_intera_4sl_implicitvr"]} <= {
        f"sub-p01_ses-1_acq-3d{p}_run-{r}_FLAIR.nii.gz" for p in ("sag", "cor", "ax") for r in (1, 2)
    } | {f"sub-p01_ses-1_acq-3d{p}_FLAIR.nii.gz" for p in ("sag", "cor", "ax")}
    assert "/ses-1/anat/" in multivendor["dcm2niix"][MULTIVENDOR[0]].nifti.as_posix()


@pytest.mark.parametrize("head", [
    pytest.param("philips_ingenia_elitionx_adni_mprage_1mm", marks=pytest.mark.slow),
    "siemens_prisma_xa30_mprage_2mm",
])
def test_engines_agree_on_heads(shared_data: Path, tmp_path: Path, head: str) -> None:
    series = [series_from(shared_data / "head-mri" / head / "dicom", head)]
    a, b = (convert(series, tmp_path / e, e)[0] for e in ENGINES)
    assert_agree(a.nifti, b.nifti)
    assert a.suffix == b.suffix == "T1w"
    for item in (a, b):
        assert_private(item)
    # the stored dicom2nifti reference (float64 for Philips) has the same displayed values and geometry
    reference = nib.as_closest_canonical(nib.load(next((shared_data / "head-mri" / head / "nifti").glob("*.nii.gz"))))
    ours = nib.as_closest_canonical(nib.load(a.nifti))
    assert np.allclose(reference.affine, ours.affine, atol=1e-3)
    assert np.abs(reference.get_fdata() - ours.get_fdata()).max() < 0.01
    if head.startswith("philips"):  # displayed values, not dcm2niix's default precise float (56.7x larger)
        sidecar = json.loads(a.sidecar.read_text())
        assert sidecar["UsePhilipsFloatNotDisplayScaling"] == 0
        assert nib.load(a.nifti).dataobj.slope == pytest.approx(sidecar["PhilipsRescaleSlope"], rel=1e-4)


def test_two_slice_series_converts_like_dcm2niix(shared_data: Path, tmp_path: Path) -> None:
    """Two slices is no reason to skip: a localizer is known by ImageType or description (issue 11.7)."""
    series = series_from(shared_data / "multivendor/rejected/too_few_slices_2sl", "two")
    [result] = convert([series], tmp_path, "dcm2niix")
    assert isinstance(result, Converted)
    assert sorted(nib.load(result.nifti).shape) == [2, 256, 256]


def test_dicom2nifti_names_its_own_limit_on_two_slices(shared_data: Path, tmp_path: Path) -> None:
    series = series_from(shared_data / "multivendor/rejected/too_few_slices_2sl", "two")
    events: list = []
    [result] = drain(convert_series([series], tmp_path, "p01", engine="dicom2nifti"), events.append)
    assert result == NotConverted("two", "dicom2nifti needs at least 3 slices")
    assert any(isinstance(e, StepNote) and "at least 3 slices" in e.message for e in events)
    assert not list(tmp_path.rglob("*.nii.gz"))


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_slice_is_skipped(shared_data: Path, tmp_path: Path, engine: str) -> None:
    source = shared_data / "multivendor/siemens_prisma_t1_fl2d_sag_35sl/dicom"
    copy = tmp_path / "gap"
    shutil.copytree(source, copy)
    [gone] = copy.glob("0018_*.dcm")
    gone.unlink()
    [result] = convert([series_from(copy, "gap")], tmp_path / "out", engine)
    assert result == NotConverted("gap", "inconsistent slice spacing")


def test_skips_by_series_kind_without_running_an_engine(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "multivendor/d2n_tiny/hitachi_echelon_4sl_implicitvr"
    one = series_from(folder, "one")
    series = [
        series_from(folder, "sc", sop="1.2.840.10008.5.1.4.1.1.7"),
        series_from(folder, "loc", image_type="ORIGINAL\\PRIMARY\\LOCALIZER"),
        series_from(folder, "scout", description="AAHead_Scout_32ch"),
        SeriesInput("single", one.files[:1], "", "MR", "", {"1.2.840.10008.5.1.4.1.1.4"}),
        series_from(folder, "raw", sop="1.2.840.10008.5.1.4.1.1.66"),
        series_from(folder, "pr", sop="1.2.840.10008.5.1.4.1.1.11.1"),
    ]
    results = convert(series, tmp_path, "dcm2niix")
    assert [r.reason for r in results] == ["secondary capture", "localizer", "localizer", "single image",
                                           "not an image series (raw data)",
                                           "not an image series (presentation state)"]


@pytest.mark.slow
def test_crashing_engine_falls_back_and_a_broken_series_does_not_stop_the_batch(
        shared_data: Path, tmp_path: Path) -> None:
    aborting = tmp_path / "dcm2niix-aborts"
    aborting.write_text("#!/bin/sh\nkill -ABRT $$\n")
    aborting.chmod(aborting.stat().st_mode | stat.S_IEXEC)
    good = series_from(shared_data / "multivendor/d2n_tiny/hitachi_echelon_4sl_implicitvr", "good")
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    for index, path in enumerate(good.files):  # every file cut inside its pixel data
        (broken_dir / f"{index}.dcm").write_bytes(path.read_bytes()[:-3000])
    broken = series_from(broken_dir, "broken")
    results = drain(convert_series([broken, good], tmp_path / "out", "p01", engine=Dcm2niixEngine(str(aborting))))
    assert isinstance(results[0], NotConverted) and results[0].reason.startswith("engine failed: dcm2niix")
    assert "dicom2nifti" in results[0].reason
    assert isinstance(results[1], Converted)
    assert json.loads(results[1].sidecar.read_text())["ConversionSoftware"] == "dicom2nifti"


def test_bids_name_and_label_checks(tmp_path: Path) -> None:
    assert bids_name("p01", "1", "T1w") == "sub-p01_ses-1_T1w"
    assert bids_name("p01", "2", "T1w", acq="3dsag", run=2) == "sub-p01_ses-2_acq-3dsag_run-2_T1w"
    with pytest.raises(MrishareError):
        bids_name("Doe, John", "1", "T1w")
    with pytest.raises(MrishareError):
        drain(convert_series([], tmp_path, "../x"))


def test_cancel_stops_before_the_next_series(shared_data: Path, tmp_path: Path) -> None:
    import threading

    cancel = threading.Event()
    cancel.set()
    events: list = []
    series = [series_from(shared_data / "multivendor/d2n_tiny/hitachi_echelon_4sl_implicitvr", "x")]
    assert drain(convert_series(series, tmp_path, "p01", cancel=cancel), events.append) == []
    assert any(isinstance(e, StepFailed) and e.reason == "cancelled" for e in events)
    assert not any(p.name.startswith(".convert-") for p in tmp_path.iterdir())


def test_whitelist_drops_what_the_leak_gate_finds_in_raw_dcm2niix_output(shared_data: Path, tmp_path: Path) -> None:
    from tui.core.deid import leakcheck
    from tui.core.nifti.conversion import filter_sidecar, read_header, write_clean_gz

    # Philips puts the patient's name into ProcedureStepDescription/StudyDescription
    files = sorted((shared_data / "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/dicom").iterdir())
    identifiers = leakcheck.identifiers_from_datasets([read_header(files[0])])
    [raw] = Dcm2niixEngine().convert(files, tmp_path / "work")
    assert leakcheck.check_text(json.dumps(raw.sidecar), identifiers)
    assert b"Time=" in raw.nifti.read_bytes()[148:228]  # descrip holds the time of day
    assert leakcheck.check_text(json.dumps(filter_sidecar(raw.sidecar)), identifiers) == []
    write_clean_gz(raw.nifti, tmp_path / "clean.nii.gz")
    assert nib.load(tmp_path / "clean.nii.gz").header["descrip"].item() == b""
    assert leakcheck.check_files([tmp_path / "clean.nii.gz"], identifiers, root=tmp_path) == []


@pytest.mark.slow
def test_cli_convert_on_a_phi_laden_folder_passes_the_leak_gate(shared_data: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    from tui.cli import main

    source = shared_data / "phi-corpus/files/synthetic/KANARIENVOGEL_ADELHEID_19230405"
    assert main(["convert", str(source), str(tmp_path), "--subject", "A1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "leak gate passed" in out and "skipped: secondary capture" in out
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert "sub-A1/ses-1/anat/sub-A1_ses-1_T1w.nii.gz" in names and "sub-A1/README.txt" in names
    assert not any("ROI" in n or (n.endswith((".bval", ".bvec")) and "/anat/" in n) for n in names)
    assert not any("KANARIENVOGEL" in n.upper() for n in names)


REALWORLD_NIFTI = {  # what dcm2niix itself writes for these folders (its own run, counted by hand)
    "siemens_orientation_2slice": 21,  # 19 two-slice series in three planes + 2 multiband fMRI
    "philips_enhanced_with_raw": 6,  # 3 enhanced image series (one with 2 echoes x magnitude/phase)
}


@pytest.mark.parametrize("folder", sorted(REALWORLD_NIFTI))
def test_every_image_series_of_a_real_export_converts(shared_data: Path, tmp_path: Path, folder: str) -> None:
    """Issue 11.7: 2-slice series convert; Raw Data objects sharing a series UID stay apart from the images."""
    from tui.core.dicom.scan import scan
    from tui.core.nifti.conversion import inputs_from_scan

    [participant] = scan(shared_data / "realworld" / folder, as_participant=True).participants
    results = convert(inputs_from_scan(participant.series()), tmp_path, "dcm2niix")
    converted = [r for r in results if isinstance(r, Converted)]
    assert len(converted) == REALWORLD_NIFTI[folder]
    skipped = {r.reason for r in results if isinstance(r, NotConverted)}
    assert skipped <= {"not an image series (raw data)"}
    image_series = [s for s in participant.series() if not s.kind]
    assert {c.series_key for c in converted} == {str(n) for n, s in enumerate(participant.series(), 1) if not s.kind}
    assert all(min(nib.load(c.nifti).shape[:3]) >= 2 for c in converted) and image_series
