"""Fixtures for the app tests: the demo study, a ledger with fixed rows, a fixed clock and site secret."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest

from tui.app.app import TuiApp
from tui.app.services import Services
from tui.core.delivery.ledger import Ledger, LedgerRow
from tui.core.demo import make_demo_study
from tui.core.events import drain
from tui.core.pipeline import PipelineSettings

SIZE = (80, 24)
NOW = datetime(2026, 11, 21, 9, 30, 0)
FAKE_PASSPHRASE = "orbit-candle-meadow-falcon-ripple-sugar-violet"
SITE_SECRET = "5eed" * 16


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic demo study (two invented participants), written once per session."""
    out = tmp_path_factory.mktemp("demo") / "study"
    drain(make_demo_study(out, participants=2, seed=0))
    return out


@pytest.fixture(autouse=True)
def fixed_site_secret(mrishare_home: Path) -> None:
    """A fixed site secret, so participant keys (hashes of folder names) are the same every run."""
    secret = mrishare_home / "config" / "site-secret"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(SITE_SECRET + "\n")
    os.chmod(secret, 0o600)


def fixed_rows() -> list[LedgerRow]:
    """Ledger rows in every interesting state; the passphrase is a fixed fake."""
    states = [("P0001", "shared"), ("P0002", "failed"), ("P0003", "revoked"), ("P0004", "uploaded"),
              ("P0005", "shared")]
    rows = []
    for number, (participant, status) in enumerate(states, 1):
        shared = status == "shared"
        rows.append(
            LedgerRow(
                id=f"s00000000{number:02d}",
                participant=participant,
                pseudonym=f"sub-{number:03d}",
                series=3,
                size=52_000_000 * number,
                destination="folder:/srv/outbox",
                link=f"https://cloud.example.org/s/Ab{number}Cd" if shared else "",
                passphrase=FAKE_PASSPHRASE if status in ("shared", "uploaded") else "",
                expires=date(2026, 12, number) if shared else None,
                status=status,
                created=datetime(2026, 11, 20, 10, number),
                last_action="shared" if shared else status,
                note="convert: series 2 has no pixel data" if status == "failed" else "",
            )
        )
    return rows


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    """A real share-list.xlsx holding `fixed_rows()`."""
    path = tmp_path / "share-list.xlsx"
    with Ledger.open(path) as ledger:
        for row in fixed_rows():
            ledger.upsert(row)
        ledger.save()
    return path


@pytest.fixture
def settings(tmp_path: Path) -> PipelineSettings:
    """Pipeline settings with a local-folder destination under tmp_path."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    return PipelineSettings(destination=f"folder:{outbox}", work_dir=tmp_path / "work")


@pytest.fixture
def make_app(ledger_path: Path, settings: PipelineSettings) -> Callable[..., TuiApp]:
    """Build a TuiApp on the fixed ledger, fixed clock and local-folder settings."""

    def build(study: Path | None = None, **changes: object) -> TuiApp:
        # the fixed rows' links are made up (folder:/srv/outbox): no server to ask; test_link_check asks real ones
        services = Services(ledger_path=ledger_path, clock=lambda: NOW, settings=settings, reveal_seconds=60,
                            check_links=False)
        for name, value in changes.items():
            setattr(services, name, value)
        return TuiApp(services, study_dir=study)

    return build
