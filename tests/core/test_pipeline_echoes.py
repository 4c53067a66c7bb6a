"""Echoes and phase through the whole pipeline, on a real Philips field map (2 echoes x magnitude and phase).

`realworld/philips_enhanced_with_raw/2001_WIP_fcMRI_Field_Mapping_e2_phMag.dcm` is one enhanced DICOM whose
frames are two echoes of magnitude and phase at 3 mm. Its magnitude shows the face (the detector finds it in 7 of
9 views). Before this test the series was named `bold` and left unchanged, face and all.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tui.core.delivery.ledger import Ledger
from tui.core.dicom.scan import scan
from tui.core.events import StepNote, drain
from tui.core.nifti.conversion import SeriesInput, convert_series
from tui.core.nifti.facecheck import face_check
from tui.core.pipeline import PipelineSettings, run_batch

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("heads")]

FIELD_MAP = "realworld/philips_enhanced_with_raw/2001_WIP_fcMRI_Field_Mapping_e2_phMag.dcm"


def _unzip(zip_path: Path, phrase: str, out: Path) -> None:
    subprocess.run(["7z", "x", f"-p{phrase}", f"-o{out}", str(zip_path)], check=True, capture_output=True)


def _volumes(folder: Path) -> dict[tuple[int, str], nib.Nifti1Image]:
    """(echo, 'mag'|'phase') -> image of the field-map files below `folder`."""
    found = {}
    for path in folder.rglob("*fieldmap.nii.gz"):
        echo = int(path.name.split("_echo-")[1].split("_")[0])
        found[(echo, "phase" if "_part-phase" in path.name else "mag")] = nib.load(path)
    return found


def test_every_echo_and_phase_of_a_real_field_map_takes_the_first_magnitudes_mask(shared_data: Path,
                                                                                  tmp_path: Path) -> None:
    source = shared_data / FIELD_MAP
    participant = tmp_path / "in" / "participant"
    participant.mkdir(parents=True)
    shutil.copy(source, participant / "fieldmap.dcm")
    before = _volumes(tmp_path / "plain") if drain(convert_series(
        [SeriesInput("1", [source], "fcMRI Field Mapping")], tmp_path / "plain", "x")) else {}
    assert sorted(before) == [(1, "mag"), (1, "phase"), (2, "mag"), (2, "phase")], sorted(before)
    assert face_check(next(tmp_path.glob("plain/**/*echo-1_fieldmap.nii.gz")), "deface").faces_found > 0

    outbox = tmp_path / "outbox"
    outbox.mkdir()
    events: list[object] = []
    run = PipelineSettings(destination=f"folder:{outbox}", work_dir=tmp_path / "work", preset="research",
                           deface_mode="deface")
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        result = drain(run_batch(scan(tmp_path / "in").participants, run, ledger), events.append)
        phrase = ledger.rows()[0].passphrase
    assert [o.status for o in result.outcomes] == ["shared"], result.outcomes
    notes = [e.message for e in events if isinstance(e, StepNote) and e.step == "deface"]
    assert sum("mask of magnitude" in n and "same FrameOfReferenceUID and grid" in n for n in notes) == 2, notes
    assert sum("mask of first echo" in n for n in notes) == 1, notes
    _unzip(next(outbox.rglob("*.zip")), phrase, tmp_path / "package")
    after = _volumes(tmp_path / "package")
    assert sorted(after) == sorted(before)  # nothing withheld

    def values(images: dict, key: tuple[int, str]) -> np.ndarray:
        return np.asanyarray(images[key].dataobj, dtype=np.float64)

    changed = {echo: values(after, (echo, "mag")) != values(before, (echo, "mag")) for echo in (1, 2)}
    assert changed[1].sum() > 20_000, changed[1].sum()  # the face of a 3 mm head: tens of thousands of voxels
    both_nonzero = (values(before, (1, "mag")) != 0) & (values(before, (2, "mag")) != 0)
    # one mask for both echoes: only feather-edge voxels whose faded value rounds to the old one may differ
    assert ((changed[1] ^ changed[2]) & both_nonzero).sum() < 0.01 * changed[1].sum()
    zeroed = []
    for echo in (1, 2):
        phase = after[(echo, "phase")]
        real = values(after, (echo, "phase"))
        zero = np.abs(real) < phase.dataobj.slope  # 0 to the stored precision (Philips: 0.77 of +-3142)
        zeroed.append(zero & (real != values(before, (echo, "phase"))))
        assert zero[changed[1]].all()  # phase is 0 wherever the first echo's face was removed...
        assert zeroed[-1].sum() > changed[1].sum()  # ...(the mask also covers air the magnitude left at 0)...
        assert np.array_equal(real[~zero], values(before, (echo, "phase"))[~zero])  # ...and nothing else changed
    assert ((zeroed[0] ^ zeroed[1]).sum()) < 0.01 * zeroed[0].sum()  # the same region in each echo
    for echo in (1, 2):
        path = next((tmp_path / "package").rglob(f"*echo-{echo}_fieldmap.nii.gz"))
        check = face_check(path, "deface")
        assert check.passed and check.faces_found == 0, check.summary()
