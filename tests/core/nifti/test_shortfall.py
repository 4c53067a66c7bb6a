"""Images in against images out (issue 21): real series converted by the real dcm2niix, in full and in part."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tui.core.nifti.conversion import DERIVED_DROPPED, Dcm2niixEngine, RawOutput
from tui.core.nifti.shortfall import Written, shortfall

GE4 = "multivendor/d2n_tiny/ge_mr750_4sl"
MOSAIC = "realworld/siemens_orientation_2slice"


def dicoms(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".nii" and p.name != "LICENSE")


def engine_outputs(files: list[Path], work: Path) -> list[RawOutput]:
    return Dcm2niixEngine().convert(files, work)


def written(outputs: list[RawOutput]) -> list[Written]:
    return [Written(o.nifti, o.dropped_volumes) for o in outputs]


def test_a_whole_series_has_no_shortfall(shared_data: Path, tmp_path: Path) -> None:
    files = dicoms(shared_data / GE4)
    assert shortfall(files, written(engine_outputs(files, tmp_path / "w"))) == ""


def test_slices_the_engine_never_wrote_are_counted(shared_data: Path, tmp_path: Path) -> None:
    files = dicoms(shared_data / GE4)
    part = written(engine_outputs(files[:3], tmp_path / "w"))
    assert shortfall(files, part) == "3 of 4 slices converted"


def test_copies_of_one_instance_count_once(shared_data: Path, tmp_path: Path) -> None:
    files = dicoms(shared_data / GE4)
    copy = tmp_path / "copy.dcm"
    shutil.copy(files[1], copy)  # the same SOP instance twice: dcm2niix merges it, nothing is lost
    assert shortfall([*files, copy], written(engine_outputs([*files, copy], tmp_path / "w"))) == ""


def test_volumes_the_engine_drops_on_purpose_are_no_loss(shared_data: Path, tmp_path: Path) -> None:
    files = dicoms(shared_data / GE4)
    [three] = engine_outputs(files[:3], tmp_path / "w")
    assert shortfall(files, [Written(three.nifti, dropped_volumes=1)]) == ""
    note = "Note: 1 volumes appear to be ADC or trace images that will be removed to allow processing"
    assert DERIVED_DROPPED.findall(f"Converting x\n{note}\n") == ["1"]


@pytest.mark.parametrize("folder", ["ax/axasc35", "cor/corint36", "sag/sagdesc35"])
def test_a_mosaic_counts_volumes_not_its_empty_tiles(shared_data: Path, tmp_path: Path, folder: str) -> None:
    files = dicoms(shared_data / MOSAIC / folder)
    assert len(files) == 2  # two mosaic volumes, each 35 or 36 slices in a 6 x 6 grid
    assert shortfall(files, written(engine_outputs(files, tmp_path / "all"))) == ""
    assert shortfall(files, written(engine_outputs(files[:1], tmp_path / "one"))) == "1 of 2 volumes converted"
