"""The slice count a Siemens series declares in its CSA series header, read only where it is reliable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.core.dicom.siemens_protocol import declared_slices

PRISMA_2D = "multivendor/siemens_prisma_t1_fl2d_sag_35sl/dicom"


def first_file(folder: Path) -> Path:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != "LICENSE" and p.suffix != ".nii")[0]


def test_a_2d_series_declares_its_slices(shared_data: Path) -> None:
    assert declared_slices(first_file(shared_data / PRISMA_2D), "ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D") == 35


def test_a_derived_copy_of_it_declares_nothing(shared_data: Path) -> None:
    # a reformat or a composed series keeps the source protocol but not its slices
    assert declared_slices(first_file(shared_data / PRISMA_2D), "DERIVED\\SECONDARY\\MPR") is None


@pytest.mark.parametrize(("folder", "image_type"), [
    ("multivendor/d2n_tiny/siemens_triotim_4sl", "ORIGINAL\\PRIMARY\\M\\ND\\NORM"),  # 3D: 208 partitions, 4 kept
    ("realworld/siemens_orientation_2slice/ax/axasc35", "ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC"),  # 35 slices a mosaic
    ("head-mri/siemens_prisma_xa30_mprage_2mm/dicom", "ORIGINAL\\PRIMARY\\M\\NONE"),  # enhanced: no CSA header
    ("multivendor/d2n_tiny/ge_mr750_4sl", "ORIGINAL\\PRIMARY\\OTHER"),  # not Siemens
])
def test_no_count_where_the_protocol_does_not_give_one(shared_data: Path, folder: str, image_type: str) -> None:
    assert declared_slices(first_file(shared_data / folder), image_type) is None
