"""What the app needs from the outside world, injected so tests can swap in fixed data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from threading import Event as CancelEvent
from typing import Any

from tui.core.config import data_dir
from tui.core.events import EventStream


def _scan(root: Path, cancel: CancelEvent | None = None) -> EventStream[Any]:
    """Scan a study folder with the core scanner (imported on first use)."""
    from tui.core.dicom.scan import scan_events

    return scan_events(root, cancel=cancel)


def _run_batch(participants: list[Any], settings: Any, ledger: Any, cancel: CancelEvent) -> EventStream[Any]:
    """Run the core pipeline for `participants` (imported on first use)."""
    from tui.core.pipeline import run_batch

    return run_batch(participants, settings, ledger, cancel)


def default_ledger_path() -> Path:
    """The ledger file used when neither `--ledger` nor a study folder names one."""
    return data_dir() / "share-list.xlsx"


@dataclass
class Services:
    """The ledger file, scanner, pipeline runner and clock the app works with."""

    ledger_path: Path = field(default_factory=default_ledger_path)
    """The xlsx ledger that lists every share."""
    scan: Callable[..., EventStream[Any]] = _scan
    """`scan(root, cancel)` -> event stream returning a ScanResult."""
    run_batch: Callable[..., EventStream[Any]] = _run_batch
    """`run_batch(participants, settings, ledger, cancel)` -> event stream returning a BatchResult."""
    settings: Any = None
    """PipelineSettings for runs (the settings screen edits them for the session)."""
    clock: Callable[[], datetime] = datetime.now
    """Wall clock for "revealed at", ETAs and throughput (tests fix it)."""
    reveal_seconds: float = 60.0
    """How long the passphrase stays on screen before it hides itself."""
    mail_language: str = "de+en"
    """Language(s) of the copied e-mail text: de, en, de+en or en+de."""
    check_links: bool = True
    """On start, ask each shared row's server in the background whether its link still lives (fixed test data
    with made-up links switches it off)."""
