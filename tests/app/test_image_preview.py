"""The image preview: half-blocks under the test driver, sixel/kitty pictures when chosen, and the chooser."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region

from tests.app.conftest import SIZE
from tui.app.widgets import graphics
from tui.app.widgets.image_preview import MODE, ImagePreview

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def enhanced_mr(shared_data: Path) -> list[Path]:
    """One enhanced multi-frame DICOM file: a real 96 x 128 x 128 head."""
    return sorted((shared_data / "head-mri" / "siemens_prisma_xa30_mprage_2mm" / "dicom").iterdir())


class PreviewApp(App[None]):
    """Only the preview, so each renderer is tested on its own."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def compose(self) -> ComposeResult:
        yield ImagePreview(id="image-preview", mode=self.mode)


async def loaded(app: PreviewApp, pilot, files: list[Path]) -> ImagePreview:
    """Load the series and wait for the reader thread."""
    preview = app.query_one(ImagePreview)
    preview.load(files)
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert preview.volume is not None and preview.volume.shape == (96, 128, 128)
    return preview


async def test_half_blocks_under_the_test_driver(enhanced_mr: list[Path]) -> None:
    assert MODE == "halfblock"  # pytest's stdout is no terminal: nothing is asked, half-blocks are drawn
    app = PreviewApp(MODE)
    async with app.run_test(size=SIZE) as pilot:
        preview = await loaded(app, pilot, enhanced_mr)
        assert not preview.query("#picture")
        rendered = "".join(seg.text for seg in preview.render_line(preview.size.height // 2))
        assert "▀" in rendered


async def test_sixel_mode_draws_a_sixel_picture_and_follows_the_keys(enhanced_mr: list[Path]) -> None:
    app = PreviewApp("sixel")
    async with app.run_test(size=SIZE) as pilot:
        preview = await loaded(app, pilot, enhanced_mr)
        preview.focus()
        picture = preview.query_one("#picture")
        first = picture.image
        assert first.size == (128, 128)
        await pilot.press("up")
        await pilot.pause()
        assert preview.index == 49 and picture.image is not first
        assert "▀" not in "".join(seg.text for seg in preview.render_line(preview.size.height // 2))
        inner = picture.children[0]
        assert 0 < inner.size.width <= preview.content_region.width
        strips = inner.render_lines(Region(0, 0, inner.size.width, inner.size.height))
        payload = "".join(seg.text for seg in strips[-1])
        assert "\x1bP" in payload and "q" in payload and payload.count("#") > 2  # DCS q, a palette, bands


async def test_kitty_mode_sends_graphics_protocol_data(enhanced_mr: list[Path], capfd) -> None:
    app = PreviewApp("kitty")
    async with app.run_test(size=SIZE) as pilot:
        preview = await loaded(app, pilot, enhanced_mr)
        await pilot.pause()
        assert preview.query_one("#picture").image.size == (128, 128)
    out = capfd.readouterr().out  # textual-image writes TGP straight to the terminal (sys.__stdout__)
    assert re.search(r"\x1b_Gi=(\d+),m=[01],f=100,q=2;iVBORw0KGgo", out)  # a PNG, in chunks
    assert re.search(r"\x1b_Ga=p,i=\d+,c=\d+,r=\d+,U=1", out)  # placed behind Unicode placeholders


def test_env_forces_a_renderer_and_auto_falls_back_without_a_terminal() -> None:
    for mode in graphics.MODES:
        assert graphics.choose({graphics.ENV: mode.upper()}) == mode
    assert graphics.choose({graphics.ENV: "auto"}) == "halfblock"
    assert graphics.choose({}) == "halfblock"


def test_grey_image_clips_levels() -> None:
    picture = graphics.grey_image(np.array([[-1.0, 0.5], [1.0, 3.0]]))
    assert picture.mode == "L" and np.asarray(picture).tolist() == [[0, 127], [255, 255]]


def ask_in_pty(replies: dict[bytes, bytes]) -> tuple[str, float]:
    """Run choose() on a pseudo-terminal answering queries (by their start) as a terminal would; choice, time."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # 80x24, pixel size unknown (SSH)
    code = "from tui.app.widgets import graphics; print('chose', graphics.choose({}))"
    env = {**os.environ, "MRISHARE_IMAGES": "auto"}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", code], stdin=terminal, stdout=terminal, stderr=terminal,
                             cwd=REPO, env=env)
    os.close(terminal)
    seen = b""
    while (child.poll() is None or select.select([controller], [], [], 0)[0]) and time.monotonic() < started + 20:
        if not select.select([controller], [], [], 0.05)[0]:
            continue
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        seen += chunk
        for query, reply in replies.items():
            if query in chunk:
                os.write(controller, reply)
    elapsed = time.monotonic() - started
    child.kill()
    child.wait()
    os.close(controller)
    found = re.search(rb"chose (\w+)", seen)
    assert found, seen
    return found[1].decode(), elapsed


def test_detect_reads_a_sixel_terminal_reply() -> None:
    assert ask_in_pty({b"\x1b[c": b"\x1b[?62;4;22c"})[0] == "sixel"


def test_detect_reads_a_kitty_terminal_reply() -> None:
    kitty = {b"\x1b[c": b"\x1b[?62;22c", b"\x1b_G": b"\x1b_Gi=7;OK\x1b\\"}
    assert ask_in_pty(kitty)[0] == "kitty"


def test_detect_does_not_hang_on_a_silent_terminal() -> None:
    chose, elapsed = ask_in_pty({})
    assert chose == "halfblock"
    assert elapsed < 15  # Python start-up and imports on a busy machine; each query waits 0.1 s for a reply


async def test_export_key_saves_the_slice_with_the_window_shown(enhanced_mr: list[Path], tmp_path: Path) -> None:
    from PIL import Image
    from textual.widgets import Input

    from tui.app.screens.save_path import SavePathScreen
    from tui.core.dicom.pixel_export import export_frame

    app = PreviewApp(MODE)
    async with app.run_test(size=SIZE) as pilot:
        preview = await loaded(app, pilot, enhanced_mr)
        preview.index = 39
        preview.window = (-75.0, 1120.0)  # = centre 523, width 1196 (PS3.3 C.11.2.1.2.1): the file's window, frame 40
        preview.focus()
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, SavePathScreen)
        assert app.screen.query_one("#save-path", Input).value.endswith("exports/as-stored-slice-40.png")
        app.screen.query_one("#save-path", Input).value = str(tmp_path / "shown.png")
        await pilot.press("enter")
        await pilot.pause()
    shown = np.asarray(Image.open(tmp_path / "shown.png")).astype(int)
    # the same frame through the file's window, by the command line's path: the same picture within rounding
    cli = np.asarray(Image.open(export_frame(enhanced_mr[0], tmp_path / "cli.png", frame=40).path)).astype(int)
    assert shown.shape == (128, 128) and np.abs(shown - cli).max() <= 1
