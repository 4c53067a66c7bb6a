"""`mrishare share`, `shares list|extend|revoke|again`, `mail` on the demo study with a local-folder destination."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.cli import main
from tui.core.delivery.ledger import Ledger
from tui.core.demo import make_demo_study
from tui.core.events import drain

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def participant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    return drain(make_demo_study(out, participants=1, seed=11))[0]


def rows(ledger: Path) -> list:
    with Ledger.open(ledger) as book:
        return book.rows()


def test_share_then_manage_the_row(participant: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outbox, ledger = tmp_path / "outbox", tmp_path / "share-list.xlsx"
    assert main(["share", str(participant), "--dest", f"folder:{outbox}", "--ledger", str(ledger)]) == 0
    [row] = rows(ledger)
    assert row.status == "shared" and row.passphrase
    out = capsys.readouterr().out
    assert row.passphrase not in out

    assert main(["shares", "--ledger", str(ledger), "list"]) == 0
    listed = capsys.readouterr().out
    assert row.id in listed and row.passphrase not in listed

    assert main(["mail", "--ledger", str(ledger), row.id, "--language", "en"]) == 0
    mail = capsys.readouterr().out
    assert row.link in mail and row.passphrase not in mail

    assert main(["shares", "--ledger", str(ledger), "extend", row.id, "30"]) == 0
    [extended] = rows(ledger)
    assert extended.expires > row.expires

    assert main(["shares", "--ledger", str(ledger), "again", row.id]) == 0
    assert rows(ledger) == [] and not list(outbox.rglob("*.zip"))
    assert main(["share", str(participant), "--dest", f"folder:{outbox}", "--ledger", str(ledger)]) == 0
    [again] = rows(ledger)
    assert again.id != row.id and again.passphrase != row.passphrase and len(list(outbox.rglob("*.zip"))) == 1

    assert main(["shares", "--ledger", str(ledger), "revoke", again.id]) == 0
    [revoked] = rows(ledger)
    assert revoked.status == "revoked" and not list(outbox.rglob("*.zip"))
    assert main(["shares", "--ledger", str(ledger), "revoke", "nope"]) == 2
    assert "no such row" in capsys.readouterr().err


def test_reveal_refuses_a_pipe(participant: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "share-list.xlsx"
    assert main(["share", str(participant), "--dest", f"folder:{tmp_path / 'o'}", "--ledger", str(ledger)]) == 0
    [row] = rows(ledger)
    capsys.readouterr()
    assert main(["shares", "--ledger", str(ledger), "reveal", row.id]) == 2
    captured = capsys.readouterr()
    assert "terminal" in captured.err and row.passphrase not in captured.out + captured.err
