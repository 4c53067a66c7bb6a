"""Face check: faces are found on the intact heads, none after deface, the template's after reface."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from heads import HEADS

from tui.assets import ASSETS
from tui.core.errors import MrishareError
from tui.core.events import drain
from tui.core.nifti.deface import apply_to_other
from tui.core.nifti.facecheck import SAME_PERSON, face_check, view_descriptors
from tui.core.nifti.head_render import ANGLES, render_front

# both files use the session fixture `processed_heads`: keep them on one xdist worker, so it runs once
pytestmark = pytest.mark.xdist_group("heads")


def test_renders_show_a_lit_head_in_front_of_black(shared_data: Path) -> None:
    img = nib.load(shared_data / HEADS["siemens"])
    views = render_front(np.asanyarray(img.dataobj), img.affine)
    assert [(v.yaw, v.pitch) for v in views] == list(ANGLES) and len(views) == 9
    for view in views:
        assert view.image.dtype == np.uint8
        head = view.image > 0
        assert 0.25 < head.mean() < 0.8  # the head fills a good part of the frame, not all of it
        assert view.image[0, 0] == 0 and view.image[head].std() > 20  # shaded, not a flat silhouette


def test_unknown_mode_is_refused(shared_data: Path) -> None:
    with pytest.raises(MrishareError, match="unknown face-check mode"):
        face_check(shared_data / HEADS["siemens"], "blur")


@pytest.mark.slow
@pytest.mark.parametrize("head", sorted(HEADS))
def test_the_intact_heads_show_a_face(shared_data: Path, head: str, tmp_path: Path) -> None:
    check = face_check(shared_data / HEADS[head], "deface", png_dir=tmp_path)
    assert sum(1 for v in check.per_view if v.faces) >= 8
    assert not check.passed
    assert check.pngs == [tmp_path / f"{check.pngs[0].name}"] and check.pngs[0].stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("head", sorted(HEADS))
def test_deface_leaves_no_face_in_any_view(processed_heads, head: str, tmp_path: Path) -> None:
    check = face_check(processed_heads[(head, "deface")].output, "deface", png_dir=tmp_path)
    assert check.views == 9
    assert [v.faces for v in check.per_view] == [0] * 9
    assert check.passed and check.pngs == [] and not list(tmp_path.iterdir())  # renders only on failure


@pytest.mark.slow
@pytest.mark.parametrize("head", sorted(HEADS))
def test_reface_is_a_stranger_in_every_view(processed_heads, shared_data: Path, head: str) -> None:
    check = face_check(processed_heads[(head, "reface")].output, "reface", original=shared_data / HEADS[head])
    found = [v for v in check.per_view if v.faces]
    assert len(found) >= 6  # the new face is still a face
    for view in found:
        assert view.to_original >= SAME_PERSON, view  # dlib's rule: not the same person in any view
    assert check.distances() == [v.to_original for v in found]
    assert check.stranger is True and check.passed
    assert "distance to the original min" in check.summary()


@pytest.mark.slow
def test_reface_is_as_far_from_the_participant_as_another_person(processed_heads, shared_data: Path) -> None:
    """The median distance refaced-to-original is at least the median distance between the two real people."""
    people = [float(np.linalg.norm(a - b)) for a, b in zip(view_descriptors(shared_data / HEADS["philips"]),
                                                            view_descriptors(shared_data / HEADS["siemens"]),
                                                            strict=True) if a is not None and b is not None]
    assert len(people) >= 6
    for head in sorted(HEADS):
        check = face_check(processed_heads[(head, "reface")].output, "reface", original=shared_data / HEADS[head])
        assert np.median(check.distances()) >= np.median(people), head


@pytest.mark.slow
def test_reface_check_fails_when_the_original_face_is_left(shared_data: Path) -> None:
    source = shared_data / HEADS["siemens"]
    check = face_check(source, "reface", original=source)  # "refaced" output that is the original itself
    assert check.stranger is False and not check.passed
    assert max(check.distances()) < 0.05


@pytest.mark.slow
def test_the_check_catches_what_pydeface_box_leaves_on_the_siemens_head(processed_heads, shared_data: Path,
                                                                        tmp_path: Path) -> None:
    pydeface = sitk.ReadImage(str(ASSETS / "pydeface" / "facemask.nii.gz"), sitk.sitkFloat32)
    face = sitk.Cast(pydeface < 0.5, sitk.sitkUInt8)  # pydeface's mask is 0 on the face
    sitk.WriteImage(face, str(tmp_path / "pydeface_face.nii.gz"))
    reference = dataclasses.replace(processed_heads[("siemens", "reface")], face_mask=tmp_path / "pydeface_face.nii.gz")
    boxed = drain(apply_to_other(reference, shared_data / HEADS["siemens"], tmp_path / "boxed.nii.gz", mode="deface"))
    check = face_check(boxed.output, "deface", png_dir=tmp_path / "renders")
    assert check.faces_found >= 1 and not check.passed  # eyes and brows are still a face to the CNN
    assert len(check.pngs) == 1 and check.pngs[0].parent == tmp_path / "renders"
