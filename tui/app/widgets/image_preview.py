"""An image preview of a series (half-blocks, or sixel/kitty graphics): slices/frames, planes, window/level."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from tui.app.screens.save_path import SavePathScreen
from tui.app.widgets import graphics
from tui.core.config import data_dir
from tui.core.errors import MrishareError

if TYPE_CHECKING:
    import numpy as np
    from textual_image.widget import BaseImage

PLANES = ("as stored", "plane 2", "plane 3")
LEVELS = 32
"""Grey levels drawn (fewer distinct styles keeps rendering cheap; 16-colour terminals show ~4)."""
MODE = graphics.choose()
"""Renderer for this run, asked of the terminal at import: before Textual starts reading stdin."""


def load_volume(files: list[Path]) -> np.ndarray:
    """The series' pixels as a float32 (slices, rows, cols) volume, slices in instance order."""
    import numpy as np  # numpy and pydicom only once a preview is shown, not before the first frame
    import pydicom

    if len(files) == 1:
        pixels = pydicom.dcmread(files[0]).pixel_array
        return np.asarray(pixels, dtype=np.float32).reshape((-1, *pixels.shape[-2:]))
    slices = []
    for path in files:
        ds = pydicom.dcmread(path)
        slices.append((int(ds.get("InstanceNumber") or 0), np.asarray(ds.pixel_array, dtype=np.float32)))
    slices.sort(key=lambda s: s[0])
    shape = slices[0][1].shape[-2:]
    return np.stack([s for _, s in slices if s.shape[-2:] == shape])


@lru_cache(maxsize=LEVELS * LEVELS)
def _pair(top: int, bottom: int) -> Style:
    t = int(top * 255 / (LEVELS - 1))
    b = int(bottom * 255 / (LEVELS - 1))
    return Style(color=Color.from_rgb(t, t, t), bgcolor=Color.from_rgb(b, b, b))


class ImagePreview(Widget, can_focus=True):
    """Draws one slice with '▀' cells (two pixels per cell) or as a sixel/kitty picture; keys move through it."""

    DEFAULT_CSS = "ImagePreview { align: center middle; }"

    BINDINGS = [
        Binding("up,k", "slice(1)", "Next slice", id="preview.next"),
        Binding("down,j", "slice(-1)", "Previous slice", id="preview.previous"),
        Binding("pageup", "slice(10)", "10 slices on", show=False, id="preview.next10"),
        Binding("pagedown", "slice(-10)", "10 slices back", show=False, id="preview.previous10"),
        Binding("p", "plane", "Plane", id="preview.plane"),
        Binding("w", "window(0.8)", "Narrower window", show=False, id="preview.narrow"),
        Binding("W", "window(1.25)", "Wider window", show=False, id="preview.wide"),
        Binding("l", "level(-0.05)", "Lower level", show=False, id="preview.lower"),
        Binding("L", "level(0.05)", "Higher level", show=False, id="preview.higher"),
        Binding("0", "reset", "Reset window", show=False, id="preview.reset"),
        Binding("x", "export", "Export picture…", show=False, id="preview.export"),
    ]

    plane: reactive[int] = reactive(0)
    index: reactive[int] = reactive(0)
    window: reactive[tuple[float, float]] = reactive((0.0, 1.0))

    class Loaded(Message):
        """Pixels arrived from the reader thread (or `error` says why not)."""

        def __init__(self, volume: np.ndarray | None, error: str = "") -> None:
            super().__init__()
            self.volume = volume
            self.error = error

    def __init__(self, id: str | None = None, mode: str = MODE) -> None:
        super().__init__(id=id)
        self.mode = mode
        self.volume: np.ndarray | None = None
        self.note = "no series"
        self._auto = (0.0, 1.0)
        self._cells: np.ndarray | None = None

    def compose(self) -> ComposeResult:
        if self.mode != "halfblock":
            yield graphics.image_widget(self.mode)

    def load(self, files: list[Path]) -> None:
        """Read the series' pixels in a thread."""
        self.volume = None
        self.note = "reading pixels…"
        self.refresh()
        self._read_worker(files)

    @work(thread=True, exclusive=True, group="pixels", exit_on_error=False)
    def _read_worker(self, files: list[Path]) -> None:
        try:
            self.post_message(self.Loaded(load_volume(files)))
        except Exception as error:  # any unreadable pixel data: say so in the pane, keep the app alive
            self.post_message(self.Loaded(None, f"cannot show pixels: {type(error).__name__}"))

    def on_image_preview_loaded(self, message: Loaded) -> None:
        """Keep the volume and pick a window from its 1st..99th percentiles."""
        import numpy as np

        self.volume = message.volume
        self.note = message.error
        if self.volume is not None:
            low, high = np.percentile(self.volume[:: max(1, len(self.volume) // 8)], (1, 99))
            self._auto = (float(low), float(max(high, low + 1)))
            self.window = self._auto
            self.plane = 0
            self.index = self.depth // 2
        self._cells = None
        self._show_picture()
        self.refresh()

    @property
    def depth(self) -> int:
        """Number of slices in the current plane."""
        return 0 if self.volume is None else self.volume.shape[self.plane]

    def _slice(self) -> np.ndarray:
        import numpy as np

        assert self.volume is not None
        picked = np.take(self.volume, self.index, axis=self.plane)
        return picked if self.plane == 0 else np.flipud(picked)

    @property
    def status(self) -> str:
        """One line: plane, slice, window."""
        if self.volume is None:
            return self.note
        low, high = self.window
        return f"{PLANES[self.plane]} · slice {self.index + 1}/{self.depth} · window {low:.0f}..{high:.0f}"

    def _changed(self) -> None:
        self._cells = None
        self.border_subtitle = self.status
        self._show_picture()

    watch_plane = watch_index = watch_window = _changed

    def on_resize(self) -> None:
        self._cells = None

    def _show_picture(self) -> None:
        """In sixel/kitty mode hand the windowed slice to the picture widget (it scales to fit)."""
        if self.mode == "halfblock" or not self.is_mounted:
            return
        picture = cast("BaseImage", self.query_one("#picture"))  # graphics.image_widget made it
        if self.volume is None or self.depth == 0:
            picture.image = None
            return
        low, high = self.window
        picture.image = graphics.grey_image((self._slice() - low) / (high - low))

    def _levels(self) -> np.ndarray:
        """Grey levels for every pixel pair of the content area (nearest neighbour, aspect kept)."""
        import numpy as np

        if self._cells is not None:
            return self._cells
        image = self._slice()
        width, height = self.content_region.width, self.content_region.height * 2
        rows, cols = image.shape
        scale = min(width / cols, height / rows) * 0.999
        out_w, out_h = max(1, int(cols * scale)), max(2, int(rows * scale) // 2 * 2)
        picked = image[np.linspace(0, rows - 1, out_h).astype(int)][:, np.linspace(0, cols - 1, out_w).astype(int)]
        low, high = self.window
        self._cells = np.clip((picked - low) / (high - low) * (LEVELS - 1), 0, LEVELS - 1).astype(np.int16)
        return self._cells

    def render_line(self, y: int) -> Strip:
        width = self.content_region.width
        if self.volume is None or self.depth == 0:
            text = self.note if y == 0 else ""
            return Strip([Segment(text[:width].ljust(width))])
        if self.mode != "halfblock":
            return Strip.blank(width)
        cells = self._levels()
        pad = (width - cells.shape[1]) // 2
        if 2 * y + 1 >= cells.shape[0]:
            return Strip.blank(width)
        top, bottom = cells[2 * y], cells[2 * y + 1]
        segments = [Segment(" " * pad)] if pad > 0 else []
        segments += [Segment("▀", _pair(int(t), int(b))) for t, b in zip(top, bottom, strict=True)]
        return Strip(segments).adjust_cell_length(width)

    def action_slice(self, step: int) -> None:
        """Move through the slices of the current plane."""
        if self.depth:
            self.index = max(0, min(self.depth - 1, self.index + step))

    def action_plane(self) -> None:
        """Switch to the next of the three planes."""
        if self.volume is not None:
            self.plane = (self.plane + 1) % 3
            self.index = self.depth // 2

    def action_window(self, factor: float) -> None:
        """Narrow or widen the window around its centre."""
        low, high = self.window
        centre, half = (low + high) / 2, (high - low) / 2 * factor
        self.window = (centre - half, centre + max(half, 0.5))

    def action_level(self, fraction: float) -> None:
        """Shift the window up or down by a fraction of the auto window's width."""
        low, high = self.window
        shift = (self._auto[1] - self._auto[0]) * fraction
        self.window = (low + shift, high + shift)

    def action_reset(self) -> None:
        """Back to the automatic window."""
        self.window = self._auto

    def action_export(self) -> None:
        """Save the slice shown, with the window shown, as PNG (or JPEG for a .jpg/.jpeg name)."""
        if self.volume is None or self.depth == 0:
            self.notify("No picture to export yet.", severity="warning")
            return
        default = data_dir() / "exports" / f"{PLANES[self.plane].replace(' ', '-')}-slice-{self.index + 1}.png"
        note = "With the window shown; .jpg for JPEG. NOT de-identified: text burned into the pixels stays."
        self.app.push_screen(SavePathScreen("Export this picture", note, default), self._export)

    def _export(self, path: Path | None) -> None:
        from tui.core.dicom.pixel_export import linear_window, save_picture

        if path is None or self.volume is None:
            return
        low, high = self.window  # as linear_window's centre/width this draws exactly (value - low) / (high - low)
        picture = linear_window(self._slice(), (low + high) / 2 + 0.5, high - low + 1)
        try:
            written = save_picture(picture, path, path.suffix.lower() in (".jpg", ".jpeg"))
        except MrishareError as error:
            self.notify(str(error), title="Not exported", severity="error")
            return
        self.notify(str(written), title="Picture exported")
