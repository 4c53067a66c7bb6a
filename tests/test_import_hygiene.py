"""The headless core never imports textual or rich (STYLE.md section 1)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import tui.core

CORE_MODULES = sorted(m.name for m in pkgutil.walk_packages(tui.core.__path__, "tui.core."))


def test_core_modules_were_found() -> None:
    assert {"tui.core.events", "tui.core.dicom.scan", "tui.core.delivery.ledger"} <= set(CORE_MODULES)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_ui(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = [m for m in ('textual', 'rich') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulled in {out.stdout.strip()}"
