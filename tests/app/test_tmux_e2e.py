"""End to end: the real program in tmux at 80x24, driven by send-keys, read with capture-pane."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


class Tmux:
    """One detached tmux session running a command."""

    def __init__(self, name: str) -> None:
        self.name = name

    def keys(self, *keys: str) -> None:
        """Send keys (tmux key names: Enter, Escape, Down, F1...)."""
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def pane(self) -> str:
        """The visible screen as text."""
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              check=False).stdout

    def wait_for(self, *texts: str, timeout: float = 60) -> str:
        """Wait until every text is on screen; return the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.pane()
            if all(text in screen for text in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"not on screen after {timeout} s: {texts}\n{screen}")
            time.sleep(0.2)

    def alive(self) -> bool:
        """True while the session (and so the program) runs."""
        found = subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True, check=False)
        return found.returncode == 0


@pytest.fixture
def tmux_app(tmp_path: Path, demo_study: Path, mrishare_home: Path) -> Iterator[Tmux]:
    """`python -m tui app STUDY` in an 80x24 tmux session, writing to a local-folder destination."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    command = shlex.join([
        "env", f"MRISHARE_HOME={mrishare_home}", "TERM=xterm", f"PYTHONPATH={Path(__file__).resolve().parents[2]}",
        sys.executable, "-m", "tui", "app", str(demo_study), "--ledger", str(tmp_path / "share-list.xlsx"),
        "--dest", f"folder:{outbox}",
    ])
    session = Tmux(f"mrishare-e2e-{os.getpid()}")
    subprocess.run(["tmux", "new-session", "-d", "-s", session.name, "-x", "80", "-y", "24", command], check=True)
    try:
        yield session
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session.name], capture_output=True, check=False)


def test_open_inspect_run_and_reveal_in_tmux(tmux_app: Tmux) -> None:
    screen = tmux_app.wait_for("2 participants found", "scanned")
    assert "Open" in screen and "Quit" in screen  # the footer fits 80 columns
    tmux_app.keys("Enter")
    # the header and legend come before the rows: wait for a row ("new UID" alone is in the legend too)
    screen = tmux_app.wait_for("Tags", "localizer", "t1_mprage_sag_p2_iso", "After", " SOPInstanceUID ")
    [row] = [line for line in screen.splitlines() if " SOPInstanceUID " in line]
    assert "•••••" in row and "new UID" in row  # the identifying value masked; After says what a share leaves
    tmux_app.keys("Down")
    tmux_app.wait_for("series 2")
    tmux_app.keys("Escape")
    tmux_app.wait_for("Participant", "scanned")
    tmux_app.keys("r")
    tmux_app.wait_for("Share 1 participant?", "Destination")  # r says where and how before it starts
    tmux_app.keys("y")
    screen = tmux_app.wait_for("1/1 done", timeout=600)
    assert "✗" not in screen
    tmux_app.keys("Escape")
    tmux_app.wait_for("shared")
    tmux_app.keys("p")
    screen = tmux_app.wait_for("Passphrase for", "word 1 of")
    assert "█" in screen
    tmux_app.keys("x")  # any other key hides the words
    screen = tmux_app.wait_for("Participant")
    assert "Passphrase for" not in screen
    tmux_app.keys("q")
    deadline = time.monotonic() + 10
    while tmux_app.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux_app.alive()


def test_demo_command_opens_the_app_on_the_demo_study(mrishare_home: Path) -> None:
    """The README's first command: `mrishare demo` in a terminal opens the app with the demo participants."""
    command = shlex.join([
        "env", f"MRISHARE_HOME={mrishare_home}", "TERM=xterm", f"PYTHONPATH={Path(__file__).resolve().parents[2]}",
        sys.executable, "-m", "tui", "demo", "--participants", "1",
    ])
    session = Tmux(f"mrishare-demo-{os.getpid()}")
    subprocess.run(["tmux", "new-session", "-d", "-s", session.name, "-x", "80", "-y", "24", command], check=True)
    try:
        screen = session.wait_for("1 participant found", "scanned", timeout=120)
        assert "No participants yet" not in screen
        session.keys("q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session.name], capture_output=True, check=False)
    assert (mrishare_home / "data" / "demo").is_dir()
