"""Link e-mail: link, last valid day, how to open the archive; never the passphrase."""

from __future__ import annotations

from datetime import date

import pytest

from tui.core.delivery.ledger import LedgerRow
from tui.core.delivery.mailtext import mail_text
from tui.core.delivery.passphrase import generate
from tui.core.delivery.unlock_page import PAGE_SUFFIX
from tui.core.errors import MrishareError

LINK = "https://cloud.example.org/s/Ab12Cd34"


def _row(**kw: object) -> LedgerRow:
    base: dict[str, object] = {
        "participant": "P01", "pseudonym": "7f3k", "link": LINK, "passphrase": "quartz-walrus-tundra-lagoon-zephyr",
        "expires": date(2026, 12, 24), "size": 157_000_000, "status": "shared", "mode": "aes",
    }
    base.update(kw)
    return LedgerRow("x1", **base)  # type: ignore[arg-type]


def test_bilingual_text_has_link_last_day_and_how_to_open() -> None:
    subject, body = mail_text(_row(), "de+en", lab_name="MRT-Labor Musterstadt")
    assert "MRT-Daten" in subject and "MRI data" in subject and "MRT-Labor Musterstadt" in subject
    assert body.count(LINK) == 2
    assert "23.12.2026" in body and "23 December 2026" in body  # link dies at 00:00 of 24 Dec
    assert "24.12" not in body and "24 December" not in body
    german, english = body.split("-" * 40)
    for tool in ("7-Zip", "Keka", "7z x"):
        assert tool in german and tool in english
    assert "157,0 MB" in german and "157.0 MB" in english
    assert body.index("Guten Tag") < body.index("Hello")
    assert "MRT-Labor Musterstadt" in body
    assert PAGE_SUFFIX not in body  # a Nextcloud link reaches the zip only: no page to mention


def test_folder_delivery_says_to_open_the_passphrase_page_first() -> None:
    _, body = mail_text(_row(destination="folder:/media/stick", link="file:///media/stick/a/x.zip"), "de+en")
    assert body.count(PAGE_SUFFIX) == 2 and body.index(PAGE_SUFFIX) < body.index("7-Zip")
    assert "Webbrowser" in body and "web browser" in body


def test_a_nextcloud_folder_share_says_the_link_opens_a_folder_and_to_download_the_page_first() -> None:
    _, body = mail_text(_row(destination="nextcloud", remote_path="s0123456789"), "de+en")
    german, english = body.split("-" * 40)
    assert "Der Link öffnet einen Ordner mit zwei Dateien" in german and "Laden Sie zuerst die Datei" in german
    assert "The link opens a folder with two files" in english and "first download the file" in english
    assert body.count(PAGE_SUFFIX) == 2 and body.index(PAGE_SUFFIX) < body.index("7-Zip")
    old_share = mail_text(_row(destination="nextcloud", remote_path="s0123456789/sub-7f3k.zip"), "de+en")[1]
    assert PAGE_SUFFIX not in old_share  # a link to the zip alone: no page reached it


@pytest.mark.parametrize("language", ["de", "en", "de+en", "en+de"])
def test_never_contains_the_passphrase(language: str) -> None:
    for _ in range(50):
        phrase = generate("de" if language.startswith("de") else "en").text()
        subject, body = mail_text(_row(passphrase=phrase), language)
        assert phrase not in subject + body
        assert "quartz" not in body


def test_single_language_and_order() -> None:
    _, de = mail_text(_row(), "de")
    _, en_de = mail_text(_row(), "en+de")
    assert "Hello" not in de and en_de.index("Hello") < en_de.index("Guten Tag")


def test_zipcrypto_mode_says_the_builtin_tools_work() -> None:
    _, body = mail_text(_row(mode="zipcrypto"), "en")
    assert "built into Windows and macOS" in body and "7-Zip" not in body


def test_no_expiry_and_no_link() -> None:
    _, body = mail_text(_row(expires=None), "en")
    assert "download the file soon" in body
    with pytest.raises(MrishareError, match="no link"):
        mail_text(_row(link=""))


def test_refuses_when_the_passphrase_would_leak() -> None:
    with pytest.raises(MrishareError, match="would contain the passphrase") as info:
        mail_text(_row(passphrase="cloud"))  # a phrase that happens to be part of the link
    assert "cloud" not in str(info.value)


def test_unknown_language() -> None:
    with pytest.raises(MrishareError):
        mail_text(_row(), "fr")
