"""Pixel export (`mrishare inspect FILE --png OUT`): real images through their window, checked against pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_windowing

from tui.cli import main
from tui.core.dicom.pixel_export import export_frame, linear_window
from tui.core.errors import MrishareError

CLASSIC = "realworld/siemens_orientation_2slice/sag/sagdesc36"  # MONOCHROME2, 12 bits, window 771/1637
ENHANCED = "head-mri/siemens_prisma_xa30_mprage_2mm/dicom"  # 96 frames, window in the per-frame groups


def first(shared_data: Path, folder: str) -> Path:
    return min((shared_data / folder).iterdir())


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


def test_png_equals_pydicoms_windowing_of_the_file(shared_data: Path, tmp_path: Path) -> None:
    source = first(shared_data, CLASSIC)
    done = export_frame(source, tmp_path / "a.png")
    ds = pydicom.dcmread(source)
    expected = np.round(apply_windowing(apply_modality_lut(ds.pixel_array, ds), ds) / (2**ds.BitsStored - 1) * 255)
    assert (done.center, done.width, done.window_from, done.frames) == (771.0, 1637.0, "file", 1)
    assert pixels(done.path).shape == (ds.Rows, ds.Columns)
    assert np.abs(pixels(done.path) - expected).max() <= 1


def test_frame_of_an_enhanced_image_uses_its_frame_window_and_jpeg(shared_data: Path, tmp_path: Path) -> None:
    source = first(shared_data, ENHANCED)
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    voi = ds.PerFrameFunctionalGroupsSequence[39].FrameVOILUTSequence[0]
    done = export_frame(source, tmp_path / "f40.jpg", frame=40, jpeg=True)
    assert (done.frame, done.frames, done.window_from) == (40, 96, "file")
    assert (done.center, done.width) == (float(voi.WindowCenter), float(voi.WindowWidth))
    with Image.open(done.path) as picture:
        assert picture.format == "JPEG" and picture.size == (ds.Columns, ds.Rows)
    png = export_frame(source, tmp_path / "f40.png", frame=40)
    assert np.abs(pixels(png.path) - np.asarray(Image.open(done.path)).astype(int)).mean() < 3  # same picture
    assert not np.array_equal(pixels(png.path), pixels(export_frame(source, tmp_path / "f1.png").path))


def test_monochrome1_is_inverted_and_no_window_takes_percentiles(shared_data: Path, tmp_path: Path) -> None:
    source = first(shared_data, CLASSIC)
    plain = pixels(export_frame(source, tmp_path / "plain.png").path)
    ds = pydicom.dcmread(source)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    assert np.array_equal(pixels(export_frame(tmp_path / "m1.dcm", tmp_path / "m1.png").path), 255 - plain)
    del ds.WindowCenter, ds.WindowWidth
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.save_as(tmp_path / "nowin.dcm")
    done = export_frame(tmp_path / "nowin.dcm", tmp_path / "nowin.png")
    low, high = np.percentile(ds.pixel_array, (1, 99))
    assert done.window_from == "percentiles" and done.width == pytest.approx(high - low)
    assert (pixels(done.path) == 255).mean() == pytest.approx(0.01, abs=0.01)  # about 1 % above the window


def test_cli_png_frame_jpeg_and_clear_errors(shared_data: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = first(shared_data, ENHANCED)
    assert main(["inspect", str(source), "--png", str(tmp_path / "x.jpg"), "--frame", "40", "--jpeg"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out == f"wrote {tmp_path / 'x.jpg'}: frame 40 of 96, window center 523 width 1196 (file)"
    assert main(["inspect", str(source), "--png", str(tmp_path / "y.png"), "--frame", "97"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(source) in error
    assert "frame 97 does not exist (the image has 96 frames)" in error
    assert main(["inspect", str(source), "--frame", "2"]) == 2
    assert "--frame and --jpeg go with --png OUT" in capsys.readouterr().err
    with pytest.raises(MrishareError, match="cannot write the picture"):
        export_frame(source, Path("/proc/no/such.png"))


def test_an_enhanced_frame_goes_through_the_rescale_of_its_functional_groups(shared_data: Path,
                                                                            tmp_path: Path) -> None:
    ds = pydicom.dcmread(first(shared_data, ENHANCED))
    item = pydicom.Dataset()
    item.RescaleSlope, item.RescaleIntercept, item.RescaleType = 2, -100, "US"
    for groups in ds.PerFrameFunctionalGroupsSequence:
        if "PixelValueTransformationSequence" in groups:
            del groups.PixelValueTransformationSequence
    ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence = pydicom.Sequence([item])
    ds.save_as(tmp_path / "rescaled.dcm")
    window = (400.0, 600.0)
    done = export_frame(tmp_path / "rescaled.dcm", tmp_path / "f3.png", frame=3, window=window)
    expected = linear_window(ds.pixel_array[2] * 2.0 - 100, *window)
    assert np.array_equal(pixels(done.path), expected)
    assert not np.array_equal(expected, linear_window(ds.pixel_array[2], *window))  # the rescale mattered
