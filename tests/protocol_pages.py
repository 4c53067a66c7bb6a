"""A real participant folder with a protocol page among its images (issue 12: dicom-anon's quarantine rule)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

REAL = "realworld/siemens_orientation_2slice"
"""42 real MR images of one patient that the de-identifier releases."""


def copy_with_protocol_page(shared_data: Path, folder: Path, description: str = "PATIENT protocol") -> Path:
    """Copy the real folder to `folder` and add two of its images re-described as a protocol page: a new series
    #99 with BurnedInAnnotation NO (the flag scanners write on these pages although the name is in them)."""
    shutil.copytree(shared_data / REAL, folder)
    page_dir = folder / "protocol"
    page_dir.mkdir()
    series_uid = generate_uid()
    for number, source in enumerate(sorted((folder / "sag/sagdesc36").iterdir()), 1):
        ds = pydicom.dcmread(source)
        ds.SeriesDescription = description
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.BurnedInAnnotation = series_uid, 99, "NO"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(page_dir / f"page{number}.dcm")
    return folder
