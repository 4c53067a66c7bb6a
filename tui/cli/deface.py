"""`mrishare deface NIFTI OUT` and `mrishare facecheck NIFTI`: defacing and the face check, headless."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from tui.cli.output import run_with_progress, stdout
from tui.core.errors import MrishareError
from tui.core.presets import DEFACE_MODES

if TYPE_CHECKING:
    from tui.core.nifti.facecheck import FaceCheck


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `deface` and `facecheck` subcommands."""
    p = subparsers.add_parser("deface", help="reface or deface a NIfTI head scan, then check for faces",
                              description="Replace (reface) or remove (deface) the face of a 3D head scan; "
                                          "the brain is never changed. A failed face check deletes OUT.")
    p.add_argument("nifti", type=Path, metavar="NIFTI")
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument("--mode", choices=DEFACE_MODES, default="reface")
    p.add_argument("--no-check", action="store_true", help="skip the face check")
    p.add_argument("--png", type=Path, default=None, metavar="DIR",
                   help="write the face-check renders here (default: beside OUT, only on failure)")
    p.set_defaults(handler=run_deface)
    q = subparsers.add_parser("facecheck", help="render a head from 9 angles and look for faces",
                              description="Render the head surface from the front (yaw/pitch -10/0/+10) and "
                                          "run a CNN face detector. Exit 0 if the check passes, 1 if not.")
    q.add_argument("nifti", type=Path, metavar="NIFTI")
    q.add_argument("--mode", choices=DEFACE_MODES, default="deface",
                   help="deface: pass only without faces (default); reface: faces must be nearer the "
                        "template than --original; off: report only")
    q.add_argument("--original", type=Path, default=None, help="the scan before refacing (same grid)")
    q.add_argument("--png", type=Path, default=None, metavar="DIR", help="write the renders here")
    q.set_defaults(handler=run_facecheck)


def run_deface(args: argparse.Namespace) -> int:
    """Deface, then face-check the output (unless --no-check or mode off)."""
    from tui.core.nifti.deface import deface
    from tui.core.nifti.facecheck import face_check

    result = run_with_progress(deface(args.nifti, output_path(args.nifti, args.out), args.mode))
    stdout.print(f"{result.mode}: {result.face_voxels} face voxels replaced, {result.brain_voxels_changed} brain "
                 f"voxels changed, head overlap {result.metric:.2f} -> {result.output}", markup=False)
    if args.no_check or result.mode == "off":
        return 0
    check = face_check(result.output, result.mode, original=args.nifti,
                       png_dir=args.png or result.output.parent, always_png=args.png is not None)
    _print_check(check)
    if not check.passed:
        result.output.unlink(missing_ok=True)
        stdout.print(f"face check FAILED: {result.output} deleted; look at the renders", style="red", markup=False)
        return 1
    return 0


NIFTI_SUFFIXES = (".nii.gz", ".nii")


def output_path(nifti: Path, out: Path) -> Path:
    """OUT as a file: a folder gets IN's name inside it; anything else must end in .nii.gz or .nii."""
    if not nifti.is_file():
        raise MrishareError("no such NIfTI file", nifti)
    if not nifti.name.endswith(NIFTI_SUFFIXES):
        raise MrishareError("expected a NIfTI head scan ending in .nii.gz or .nii", nifti)
    if out.is_dir():
        out = out / nifti.name
        if out.resolve() == nifti.resolve():
            raise MrishareError("OUT would overwrite the input; give another folder or file name", out)
        return out
    if not out.name.endswith(NIFTI_SUFFIXES):
        raise MrishareError("OUT must be a folder or a file name ending in .nii.gz or .nii", out)
    if not out.parent.is_dir():
        raise MrishareError("the folder for OUT does not exist", out.parent)
    return out


def run_facecheck(args: argparse.Namespace) -> int:
    """Render, detect, report; exit 1 if the check fails."""
    from tui.core.nifti.facecheck import face_check

    check = face_check(args.nifti, args.mode, original=args.original, png_dir=args.png, always_png=True)
    _print_check(check)
    return 0 if check.passed else 1


def _print_check(check: FaceCheck) -> None:
    """A per-view table and a one-line verdict."""
    table = Table(title="face check", title_justify="left")
    for column in ("yaw", "pitch", "faces", "confidence", "to template", "to original"):
        table.add_column(column, justify="right")
    for v in check.per_view:
        table.add_row(*(str(x) if x is not None else "-" for x in
                        (v.yaw, v.pitch, v.faces, v.confidence, v.to_template, v.to_original)))
    stdout.print(table)
    verdict = "passed" if check.passed else "FAILED"
    stdout.print(f"{verdict}: {check.summary()}", markup=False)
    for png in check.pngs:
        stdout.print(f"renders: {png}", markup=False)
