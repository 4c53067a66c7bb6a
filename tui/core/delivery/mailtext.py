"""The e-mail that carries the download link (German and/or English), never the passphrase.

The passphrase goes by a second channel (phone, letter, SMS), so a leaked mailbox alone does not open
the archive. Nextcloud ends a link at 00:00 of its expiry date, so the text names the day before as
the last day the link works.
"""

from __future__ import annotations

from datetime import date, timedelta

from tui.core.delivery.ledger import LedgerRow
from tui.core.delivery.unlock_page import PAGE_SUFFIX
from tui.core.errors import MrishareError

LANGUAGES = ("de", "en")
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")


def mail_text(row: LedgerRow, language: str = "de+en", lab_name: str = "") -> tuple[str, str]:
    """(subject, body) for the link e-mail in 'de', 'en', 'de+en' or 'en+de'; never the passphrase."""
    languages = language.split("+")
    if not languages or any(lang not in LANGUAGES for lang in languages) or len(set(languages)) != len(languages):
        raise MrishareError(f"mail language must be de, en, de+en or en+de, not {language!r}")
    if not row.link:
        raise MrishareError(f"ledger row {row.id} has no link yet")
    last_day = row.expires - timedelta(days=1) if row.expires else None
    subject = " / ".join(_SUBJECT[lang] for lang in languages) + (f" ({lab_name})" if lab_name else "")
    parts = [_BODY[lang](row, last_day, lab_name) for lang in languages]
    body = "\n\n----------------------------------------\n\n".join(parts)
    if row.passphrase and row.passphrase.lower() in (subject + body).lower():
        raise MrishareError(f"ledger row {row.id}: the mail text would contain the passphrase")
    return subject, body


_SUBJECT = {"de": "Ihre MRT-Daten zum Herunterladen", "en": "Your MRI data for download"}


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{max(n / 1e6, 0.1):.1f} MB"


# What to click first: the passphrase page lies beside the zip (folder), or the link opens the share's folder
# holding both (Nextcloud); see pipeline.upload.
_PAGE_AT = {
    "folder": {
        "de": ("Am einfachsten: Neben der ZIP-Datei liegt eine Datei, deren Name auf " + PAGE_SUFFIX + " endet.\n"
               "Öffnen Sie diese zuerst, mit Doppelklick in Ihrem Webbrowser. "),
        "en": ("The easiest way: beside the ZIP file there is a file whose name ends in " + PAGE_SUFFIX + ".\n"
               "Open it first, with a double-click in your web browser. "),
    },
    "link": {
        "de": ("Der Link öffnet einen Ordner mit zwei Dateien. Am einfachsten: Laden Sie zuerst die Datei\n"
               "herunter, deren Name auf " + PAGE_SUFFIX + " endet, und öffnen Sie sie mit Doppelklick in\n"
               "Ihrem Webbrowser. "),
        "en": ("The link opens a folder with two files. The easiest way: first download the file whose name\n"
               "ends in " + PAGE_SUFFIX + ", then open it with a double-click in your web browser. "),
    },
}
_PAGE_DOES = {
    "de": ("Sie fragt nach der Passphrase und\n"
           "zeigt dann Ihre Aufnahmen (auch in 3D), die Erklärungen und alle Dateien zum Speichern - ohne\n"
           "Zusatzprogramm und ohne etwas ins Internet zu senden.\n\nDie ZIP-Datei enthält dasselbe. "),
    "en": ("It asks for the passphrase and then shows\n"
           "your images (also in 3D), the explanations and every file to save - with no extra software and\n"
           "without sending anything over the internet.\n\nThe ZIP file holds the same. "),
}


def _page(row: LedgerRow, language: str) -> str:
    """Where the passphrase page is and what it does; '' where none was delivered (an old Nextcloud share of the
    zip alone: its remote path names the zip, while a share of the folder names the folder only)."""
    if row.destination.startswith("folder"):
        where = "folder"
    elif row.remote_path and "/" not in row.remote_path:
        where = "link"
    else:
        return ""
    return _PAGE_AT[where][language] + _PAGE_DOES[language]


def _body_de(row: LedgerRow, last_day: date | None, lab_name: str) -> str:
    until = (f"Der Link funktioniert bis einschließlich {last_day:%d.%m.%Y}; danach wird er gelöscht."
             if last_day else "Bitte laden Sie die Datei bald herunter; danach löschen wir sie wieder.")
    size = f" (etwa {_size(row.size).replace('.', ',')})" if row.size else ""
    if row.mode == "zipcrypto":
        opening = ("Die ZIP-Datei lässt sich mit den eingebauten Programmen von Windows und macOS öffnen;\n"
                   "sie fragen nach der Passphrase.")
    else:
        opening = ("Die ZIP-Datei ist mit AES-256 verschlüsselt. Zum Öffnen brauchen Sie ein Programm,\n"
                   "das AES-verschlüsselte ZIP-Dateien kann (die eingebauten Programme von Windows und\n"
                   "macOS können das meist nicht):\n"
                   "  - Windows: 7-Zip (kostenlos, https://www.7-zip.org), Rechtsklick > 7-Zip > Entpacken\n"
                   "  - macOS: Keka (kostenlos, https://www.keka.io) oder The Unarchiver\n"
                   "  - Linux: im Terminal  7z x DATEINAME.zip  (Paket p7zip-full bzw. 7zip)\n"
                   "Beim Entpacken werden Sie nach der Passphrase gefragt.")
    return (
        "Guten Tag,\n\n"
        f"wie besprochen erhalten Sie eine Kopie Ihrer MRT-Daten. Sie können sie hier herunterladen{size}:\n\n"
        f"  {row.link}\n\n"
        f"{until}\n\n"
        f"{_page(row, 'de')}{opening}\n\n"
        "Die Passphrase (und, falls die Download-Seite eines verlangt, das Passwort) erhalten Sie\n"
        "getrennt von dieser E-Mail, zum Beispiel telefonisch oder per Brief - nie per E-Mail.\n"
        "Geben Sie die Wörter klein und mit Bindestrichen dazwischen ein.\n\n"
        "Nach dem Entpacken öffnen Sie zuerst die Datei index.html; sie erklärt, was der Ordner enthält\n"
        "und mit welchen Programmen Sie die Bilder ansehen können. Die Daten sind keine medizinische\n"
        "Befundung.\n\n"
        "Mit freundlichen Grüßen\n"
        f"{lab_name or 'Ihr Studienteam'}"
    )


def _body_en(row: LedgerRow, last_day: date | None, lab_name: str) -> str:
    until = (f"The link works until the end of {last_day.day} {_MONTHS_EN[last_day.month - 1]} {last_day.year}; "
             "after that it is deleted." if last_day else
             "Please download the file soon; we will delete it afterwards.")
    size = f" (about {_size(row.size)})" if row.size else ""
    if row.mode == "zipcrypto":
        opening = ("The ZIP file opens with the programs built into Windows and macOS; they ask for the\n"
                   "passphrase.")
    else:
        opening = ("The ZIP file is encrypted with AES-256. To open it you need a program that handles\n"
                   "AES-encrypted ZIP files (the programs built into Windows and macOS usually cannot):\n"
                   "  - Windows: 7-Zip (free, https://www.7-zip.org), right-click > 7-Zip > Extract\n"
                   "  - macOS: Keka (free, https://www.keka.io) or The Unarchiver\n"
                   "  - Linux: in a terminal  7z x FILENAME.zip  (package p7zip-full or 7zip)\n"
                   "It asks for the passphrase while extracting.")
    return (
        "Hello,\n\n"
        f"as agreed, here is a copy of your MRI data. You can download it here{size}:\n\n"
        f"  {row.link}\n\n"
        f"{until}\n\n"
        f"{_page(row, 'en')}{opening}\n\n"
        "You will receive the passphrase (and, if the download page asks for one, the password)\n"
        "separately from this e-mail, for example by phone or letter - never by e-mail.\n"
        "Type the words in lower case with hyphens between them.\n\n"
        "After extracting, open the file index.html first; it explains what the folder contains and\n"
        "which programs show the images. The data are not a medical diagnosis.\n\n"
        "Kind regards\n"
        f"{lab_name or 'Your study team'}"
    )


_BODY = {"de": _body_de, "en": _body_en}
