"""The passphrase page beside the zip: one HTML file that opens in any browser, no unzip tool needed.

AES-256 zips do not open with the tools built into Windows or macOS. This page carries the same files,
encrypted with AES-256-GCM under a key from PBKDF2-SHA256 (600,000 iterations, random salt: stronger than
the zip's own key derivation), and decrypts them with the browser's WebCrypto after the participant types
the passphrase. It then shows the 3D viewer, the README and the previews, and offers every file (and all
of them as a plain zip) to save. Nothing is sent anywhere: the page has no network access (CSP) and the
passphrase is only ever in the participant's browser, never in the page, its name or on a server.

The payload is the encrypted zip's content repacked as a plain zip (MANIFEST-SHA256.txt included), so
"save all" hands over exactly what the zip holds.

Only `page_path` is cheap to import (destinations use it); the crypto and zip code load when a page is made.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tui.assets import ASSETS
from tui.core.errors import MrishareError

ITERATIONS = 600_000  # OWASP 2023 for PBKDF2-HMAC-SHA256
SALT_BYTES, NONCE_BYTES = 16, 12
SCRIPT = ASSETS / "participant" / "unlock.js"
STORED = (".gz", ".png", ".zip")  # already compressed: deflating again only costs time
PAGE_SUFFIX = "_oeffnen_open.html"  # German/English "open": the file to click first
MAX_PAYLOAD = 300 << 20
"""Largest package (as a plain zip) a page carries. Measured in headless Chromium (tests/bench/bench_unlock_limit.py):
a 496 MB page (372 MB payload) opened in 20 s at 2.6 GB; a 566 MB page (425 MB payload) told the right passphrase
it was wrong, as V8 strings end at 2^29-24 characters and the page reads its payload as one. Kept well below, since
the browser needs about 4x the page in memory."""


class PageTooLarge(MrishareError):
    """The package is larger than a page can carry in a browser (`MAX_PAYLOAD`)."""


@dataclass(frozen=True)
class UnlockPage:
    """The written page, its plain (unencrypted, non-vendored) text, and what of it is not our template."""

    path: Path
    plain_text: str
    payload_size: int
    inserted: str
    """The values put into the template (the package's folder name, the sealing header): what the leak gate
    searches; the template's own words ('slice', 'brain', ...) are never a finding."""


def page_path(zip_path: Path) -> Path:
    """Where the page goes: beside the zip, named after it (never after the passphrase)."""
    return zip_path.with_name(zip_path.name.removesuffix(".zip") + PAGE_SUFFIX)


def plain_zip(encrypted_zip: Path, passphrase: str) -> bytes:
    """Every member of the encrypted package, repacked as an ordinary zip in memory."""
    import pyzipper

    out = io.BytesIO()
    try:
        with pyzipper.AESZipFile(encrypted_zip) as source, zipfile.ZipFile(out, "w") as target:
            source.setpassword(passphrase.encode())
            for info in source.infolist():
                if info.is_dir():
                    continue
                method = zipfile.ZIP_STORED if info.filename.endswith(STORED) else zipfile.ZIP_DEFLATED
                item = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                target.writestr(item, source.read(info.filename), compress_type=method, compresslevel=6)
    except (RuntimeError, zipfile.BadZipFile, OSError) as exc:
        raise MrishareError(f"cannot read the package for the passphrase page ({exc})", encrypted_zip) from None
    return out.getvalue()


def encrypt(payload: bytes, passphrase: str) -> dict[str, str | int]:
    """AES-256-GCM under PBKDF2-SHA256(passphrase, random salt); ciphertext with the 16-byte tag at its end."""
    from Cryptodome.Cipher import AES

    salt, nonce = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(NONCE_BYTES)
    key = hashlib.pbkdf2_hmac("sha256", passphrase.encode("utf-8"), salt, ITERATIONS, dklen=32)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    ciphertext, tag = cipher.encrypt_and_digest(payload)
    return {"kdf": "PBKDF2-SHA256", "iterations": ITERATIONS, "salt": base64.b64encode(salt).decode(),
            "cipher": "AES-256-GCM", "iv": base64.b64encode(nonce).decode(),
            "data": base64.b64encode(ciphertext + tag).decode()}


def _inline(script: str) -> str:
    """A script body that cannot end its <script> element early."""
    return script.replace("</script", "<\\/script").replace("<!--", "<\\!--")


def page_html(top: str, sealed: dict[str, str | int], bundle: str) -> tuple[str, str, str]:
    """(the whole page, its plain parts, the values inserted into it): the plain parts leave out the ciphertext
    and the vendored bundle."""
    from tui.core.nifti.viewer_page import CSP, viewer_script, viewer_section, viewer_styles

    header = json.dumps({k: v for k, v in sealed.items() if k != "data"})
    head = f"""<!DOCTYPE html>
<html lang="de">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MRT-Aufnahmen öffnen / Open your MRI images</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem 6%; background: #111; color: #eee; line-height: 1.4; }}
.note {{ border: 2px solid #e0a030; padding: .5rem 1rem; border-radius: .4rem; }}
.error {{ border-color: #e05050; }}
input, button {{ font: inherit; padding: .4rem .8rem; }}
#unlock-phrase {{ width: min(100%, 28rem); }}
a {{ color: #9cf; }}
pre {{ white-space: pre-wrap; background: #1b1b1b; padding: 1rem; }}
img {{ max-width: 100%; height: auto; display: block; margin: .5rem 0; }}
section {{ border-top: 1px solid #444; margin-top: 1.5rem; }}
{viewer_styles()}</style>
</head>
<body data-unlock="locked">
<h1><span lang="de">Ihre MRT-Aufnahmen</span> / <span lang="en">Your MRI images</span></h1>
<form id="unlock" autocomplete="off">
<p lang="de">Geben Sie die Passphrase ein, die Sie von uns bekommen haben (Wörter mit Bindestrich).
Die Aufnahmen werden in diesem Browser entschlüsselt; nichts wird irgendwohin gesendet.</p>
<p lang="en">Type the passphrase you received from us (words joined by hyphens). The images are decrypted
in this browser; nothing is sent anywhere.</p>
<label for="unlock-phrase">Passphrase:</label>
<input id="unlock-phrase" type="password" autocomplete="off" autocapitalize="off" spellcheck="false" required>
<button type="submit" id="unlock-button">Öffnen / Open</button>
</form>
<div id="unlock-status" class="note" hidden></div>
<div id="content" hidden>
<div class="note">
<p lang="de"><strong>Wichtig:</strong> Diese Forschungsaufnahmen waren keine diagnostische Untersuchung.</p>
<p lang="en"><strong>Important:</strong> these research images were not a diagnostic examination.</p>
</div>
{viewer_section()}<section><h2>Dateien speichern / Save the files</h2>
<p><a id="save-all" href="#" download="{html.escape(top)}.zip">\
Alle Dateien als ZIP speichern / Save all files as a ZIP</a>
<span lang="de">(öffnet sich ohne Zusatzprogramm)</span> / <span lang="en">(opens without extra software)</span></p>
<ul id="files"></ul></section>
<section><h2>README</h2><pre id="readme"></pre></section>
<section id="previews"><h2>Vorschaubilder / Previews</h2></section>
</div>
<script id="sealed-header" type="application/json">{_inline(header)}</script>
"""
    own = (f"<script>\n{_inline(viewer_script())}\n{_inline(SCRIPT.read_text(encoding='utf-8'))}\n</script>\n"
           "</body>\n</html>\n")
    page = (head + f'<script id="sealed-data" type="application/octet-stream">{sealed["data"]}</script>\n'
            + f"<script>\n{_inline(bundle)}\n</script>\n" + own)
    return page, head + own, f"{top}\n{header}"


def write_unlock_page(encrypted_zip: Path, passphrase: str, out: Path | None = None,
                      max_payload: int = MAX_PAYLOAD) -> UnlockPage:
    """Write the passphrase page for `encrypted_zip` beside it (or to `out`), readable only with `passphrase`;
    a package larger than `max_payload` gets no page (an error saying so)."""
    from tui.core.nifti.viewer_page import BUNDLE_DIR

    payload = plain_zip(encrypted_zip, passphrase)
    if len(payload) > max_payload:
        raise PageTooLarge(f"{len(payload) / 1e6:.0f} MB is more than a browser page can carry (at most "
                           f"{max_payload / 1e6:.0f} MB); the participant opens the zip", encrypted_zip.name)
    top = zipfile.ZipFile(io.BytesIO(payload)).namelist()[0].split("/", 1)[0]
    page, plain, inserted = page_html(top, encrypt(payload, passphrase),
                                      (BUNDLE_DIR / "niivue.umd.js").read_text("utf-8"))
    path = out or page_path(encrypted_zip)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return UnlockPage(path, plain, len(payload), inserted)
