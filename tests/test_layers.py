"""The core's layers (issue 17, STYLE.md section 2): app/cli -> core; inside core dicom <- deid <- nifti <- delivery,
net beside delivery; the top-level core modules (events, errors, config...) sit below every stage, except `pipeline`,
`demo` and `settings`, which sit above them all. Every import counts, also those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TUI = Path(__file__).resolve().parents[1] / "tui"
CORE = TUI / "core"
# what each stage may import from tui.core besides itself and the top-level base modules
ALLOWED = {
    "dicom": set(),
    "deid": {"dicom"},
    "nifti": {"dicom", "deid"},
    "net": {"dicom"},
    "delivery": {"dicom", "deid", "nifti", "net"},
}
ABOVE_ALL = {"pipeline", "demo", "settings"}  # top-level modules that orchestrate or configure the stages


def imported_modules(path: Path) -> set[str]:
    """Every absolute `tui...` module the file imports, at any depth of the code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "tui" or m.startswith("tui.")}


def layer_of(module: str) -> str | None:
    """`tui.core.deid.leakcheck` -> 'deid'; a top-level core module -> 'base', or its name if it is above all."""
    parts = module.split(".")
    if parts[:2] != ["tui", "core"] or len(parts) < 3:
        return None
    name = parts[2]
    if name in ALLOWED or name in ABOVE_ALL:
        return name
    return "base"


def files_of(layer: str) -> list[Path]:
    """The source files of one layer."""
    if layer == "base":
        return sorted(p for p in CORE.glob("*.py") if p.stem not in ABOVE_ALL)
    return sorted((CORE / layer).rglob("*.py"))


def test_every_layer_has_modules() -> None:
    for layer in [*ALLOWED, "base"]:
        assert files_of(layer), f"no modules found for layer {layer}"


@pytest.mark.parametrize("layer", [*ALLOWED, "base"])
def test_a_layer_imports_only_the_layers_below(layer: str) -> None:
    allowed = {layer, "base"} | ALLOWED.get(layer, set())
    wrong = {
        f"{path.relative_to(TUI.parent)} imports {module}"
        for path in files_of(layer)
        for module in imported_modules(path)
        if module.startswith(("tui.app", "tui.cli")) or (layer_of(module) or layer) not in allowed
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_concrete_destinations_never_import_the_registry() -> None:
    for name in ("nextcloud.py", "node.py", "folder.py"):
        assert "tui.core.delivery.destinations" not in imported_modules(CORE / "delivery" / name), name
