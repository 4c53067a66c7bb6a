"""Where the app's stylesheets live: `tui/styles` in a wheel, `../styles` in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def styles_dir() -> Path:
    """The folder holding `app.tcss` and one `.tcss` per screen."""
    for candidate in (_PACKAGE / "styles", _PACKAGE.parent / "styles"):
        if (candidate / "app.tcss").is_file():
            return candidate
    raise FileNotFoundError(f"app.tcss not found next to {_PACKAGE}")


def stylesheets() -> list[Path]:
    """Every stylesheet, `app.tcss` first so screen sheets can refine it."""
    folder = styles_dir()
    return [folder / "app.tcss", *sorted(p for p in folder.glob("*.tcss") if p.name != "app.tcss")]
