"""Which image renderer the terminal gets: half-blocks everywhere, sixel or kitty (TGP) where supported."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from textual._context import active_app

if TYPE_CHECKING:  # numpy, Pillow and textual-image load with the first picture, not before the first frame
    import numpy as np
    from PIL.Image import Image
    from textual.widget import Widget

MODES = ("halfblock", "sixel", "kitty")
ENV = "MRISHARE_IMAGES"
"""halfblock | sixel | kitty force a renderer; auto (the default) asks the terminal."""


def detect() -> str:
    """Ask the terminal (before Textual owns stdin; each reply waited for 0.1 s) for sixel, then kitty support."""
    if not (sys.__stdin__ and sys.__stdout__ and sys.__stdin__.isatty() and sys.__stdout__.isatty()):
        return "halfblock"
    if active_app.get(None) is not None:  # a running app reads stdin itself: the reply would arrive as keys
        return "halfblock"
    try:  # textual_image sends DA1 / a TGP query on import; a slow link (SSH) just times out to half-blocks
        from textual_image.renderable import Image, SixelImage, TGPImage
    except Exception:  # termios refusing the tty, a closed stream: no graphics, never a crash
        return "halfblock"
    return {SixelImage: "sixel", TGPImage: "kitty"}.get(Image, "halfblock")


def choose(env: Mapping[str, str] = os.environ) -> str:
    """The renderer named by MRISHARE_IMAGES, or the detected one for auto/unset/unknown values."""
    wanted = env.get(ENV, "auto").strip().lower()
    mode = wanted if wanted in MODES else detect()
    if mode == "halfblock":
        return mode
    try:  # importing the widgets measures the cell size in pixels (ioctl, else a query waited for 0.1 s)
        import textual_image.widget  # noqa: F401
    except Exception:  # as in detect(): a terminal we cannot talk to gets half-blocks
        return "halfblock"
    return mode


def grey_image(levels: np.ndarray) -> Image:
    """A greyscale picture of 0..1 levels (rows x cols)."""
    import numpy as np
    from PIL import Image as PILImage

    return PILImage.fromarray((np.clip(levels, 0, 1) * 255).astype(np.uint8))


def image_widget(mode: str) -> Widget:
    """A textual-image widget drawing pictures as sixels or kitty graphics, sized to fit with aspect kept."""
    from textual_image.widget import SixelImage, TGPImage

    widget = SixelImage(id="picture") if mode == "sixel" else TGPImage(id="picture")
    widget.styles.width = "auto"
    widget.styles.height = "auto"
    return widget
