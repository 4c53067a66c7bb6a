"""The passphrase page beside the zip: one HTML file that opens in any browser, no unzip tool needed.

AES-256 zips do not open with the tools built into Windows or macOS. This page carries the same files,
encrypted with AES-256-GCM under a key from PBKDF2-SHA256 (600,000 iterations, random salt: stronger than
the zip's own key derivation), and decrypts them with the browser's WebCrypto after the participant types
the passphrase. It then shows the 3D viewer, the README and the previews, and offers every file (and all
of them as a plain zip) to save. Nothing is sent anywhere: the page has no network access (CSP) and the
passphrase is only ever in the participant's browser, never in the page, its name or on a server.

The payload is the package as a plain zip: the files of the folder the zip was packed from, each checked against
the zip's own MANIFEST-SHA256.txt (included), so "save all" hands over exactly what the zip holds. It is made on a
helper thread while the zip is written (`PageSealer`). A package too large for one page (`MAX_PAYLOAD`) gets a page
with the documents and the anatomical images only, which says so and names the files left out; if even those do
not fit, no page.

Only `page_path` is cheap to import (destinations use it); the crypto and zip code load when a page is made.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import io
import json
import secrets
import time
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
"""Largest payload (the package as a plain zip) a page carries; above it, the anatomical images only. Measured in
headless Chromium (tests/bench/bench_unlock_limit.py): a 496 MB page (372 MB payload) opened in 20 s at 2.6 GB; a
566 MB page (425 MB payload) told the right passphrase it was wrong, as V8 strings end at 2^29-24 characters and the
page reads its payload as one. Kept well below, since the browser needs about 4x the page in memory."""


class PageTooLarge(MrishareError):
    """The package is larger than a page can carry in a browser (`MAX_PAYLOAD`)."""


@dataclass(frozen=True)
class UnlockPage:
    """The written page, its plain (unencrypted, non-vendored) text, and what of it is not our template."""

    path: Path
    plain_text: str
    payload_size: int
    inserted: str
    """The values put into the template (the package's folder name, the sealing header, the names left out): what
    the leak gate searches; the template's own words ('slice', 'brain', ...) are never a finding."""
    left_out: tuple[str, ...] = ()
    """Files of the package the page does not hold (relative to its folder): empty unless the whole package was too
    large for a page and it holds the documents and the anatomical images only."""


def is_anatomical_page_file(relative: str) -> bool:
    """True for what a page too small for the whole package still holds: the documents at the top and in
    `previews/` and `viewer/` (the viewer's copies are small), and the anatomical images with their sidecars
    (`<session>/anat/...`); not functional, diffusion or other series, nor the DICOM files."""
    parts = relative.split("/")
    return len(parts) == 1 or parts[0] in ("previews", "viewer") or (parts[0] != "dicom" and "anat" in parts[:-1])


def page_path(zip_path: Path) -> Path:
    """Where the page goes: beside the zip, named after it (never after the passphrase)."""
    return zip_path.with_name(zip_path.name.removesuffix(".zip") + PAGE_SUFFIX)


class PageSealer:
    """The page of one package, begun before its zip is written: on a helper thread it derives the key (PBKDF2 lets
    go of the GIL) and deflates the package folder's files into the plain payload zip, while the caller writes the
    encrypted zip on the other core. `write` then adds the zip's own manifest, which also proves the passphrase and
    that every file is the one the zip holds, and writes the page."""

    def __init__(self, folder: Path, passphrase: str, max_payload: int = MAX_PAYLOAD) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.folder, self.passphrase, self.max_payload = Path(folder), passphrase, max_payload
        self.salt = secrets.token_bytes(SALT_BYTES)
        pool = ThreadPoolExecutor(2, thread_name_prefix="mrishare-page")
        self._key = pool.submit(hashlib.pbkdf2_hmac, "sha256", passphrase.encode("utf-8"), self.salt, ITERATIONS, 32)
        self._files = pool.submit(self._deflate_folder)
        pool.shutdown(wait=False)  # the threads end with their work; `write` waits for it

    def _deflate_folder(self) -> tuple[io.BytesIO, dict[str, str], tuple[str, ...]]:
        """The folder's files as `<folder name>/...` members of a plain zip in memory, their SHA-256, and the files
        left out: none if the whole package fits in `max_payload`, else all but the documents and the anatomical
        images (`is_anatomical_page_file`); PageTooLarge if even those do not fit."""
        files = sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file())
        # files stored as they are cannot shrink: when they alone are too large, do not deflate the rest first
        if sum((self.folder / name).stat().st_size for name in files if name.endswith(STORED)) <= self.max_payload:
            with contextlib.suppress(PageTooLarge):
                return (*self._zip(files), ())
        kept = [name for name in files if is_anatomical_page_file(name)]
        return (*self._zip(kept), tuple(name for name in files if not is_anatomical_page_file(name)))

    def _zip(self, files: list[str]) -> tuple[io.BytesIO, dict[str, str]]:
        """`files` (relative to the folder) deflated into a plain zip and their SHA-256; stops with PageTooLarge as
        soon as the zip outgrows `max_payload`."""
        out = io.BytesIO()
        digests = {}
        with zipfile.ZipFile(out, "w") as target:
            for relative in files:
                path, name = self.folder / relative, f"{self.folder.name}/{relative}"
                data = path.read_bytes()
                digests[name] = hashlib.sha256(data).hexdigest()
                method = zipfile.ZIP_STORED if name.endswith(STORED) else zipfile.ZIP_DEFLATED
                stamp = time.localtime(max(path.stat().st_mtime, 315532800))[:6]  # zip dates start in 1980
                target.writestr(zipfile.ZipInfo(name, date_time=stamp), data, compress_type=method, compresslevel=6)
                if out.tell() > self.max_payload:
                    raise self._too_large(out.tell())
        return out, digests

    def _too_large(self, size: int) -> PageTooLarge:
        return PageTooLarge(f"{size / 1e6:.0f} MB is more than a browser page can carry (at most "
                            f"{self.max_payload / 1e6:.0f} MB); the participant opens the zip", self.folder.name)

    def write(self, encrypted_zip: Path, out: Path | None = None) -> UnlockPage:
        """Write the page beside `encrypted_zip` (or to `out`), once the zip is written."""
        from tui.core.delivery.package import parse_manifest
        from tui.core.nifti.viewer_page import BUNDLE_DIR

        manifest_name, manifest = _manifest(encrypted_zip, self.passphrase)
        buffer, digests, left_out = self._files.result()
        top = manifest_name.split("/", 1)[0]
        listed = {f"{top}/{name}": digest for name, digest in parse_manifest(manifest, encrypted_zip).items()}
        # every file in the page is the zip's; the files left out are the rest of what the zip lists
        if (top != self.folder.name or any(listed.get(name) != digest for name, digest in digests.items())
                or listed.keys() != digests.keys() | {f"{top}/{name}" for name in left_out}):
            raise MrishareError("the package folder no longer matches the zip; pack again", encrypted_zip)
        with zipfile.ZipFile(buffer, "a") as target:
            target.writestr(zipfile.ZipInfo(manifest_name, date_time=time.localtime()[:6]), manifest,
                            compress_type=zipfile.ZIP_DEFLATED)
        payload = buffer.getvalue()
        if len(payload) > self.max_payload:
            raise self._too_large(len(payload))
        page, plain, inserted = page_html(top, seal(payload, self.salt, self._key.result()),
                                          (BUNDLE_DIR / "niivue.umd.js").read_text("utf-8"), left_out)
        path = out or page_path(encrypted_zip)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
        return UnlockPage(path, plain, len(payload), inserted, left_out)


def _manifest(encrypted_zip: Path, passphrase: str) -> tuple[str, bytes]:
    """The zip's `<top>/MANIFEST-SHA256.txt`, decrypted with `passphrase`: its name and content."""
    import pyzipper

    from tui.core.delivery.package import manifest_member

    try:
        with pyzipper.AESZipFile(encrypted_zip) as source:
            source.setpassword(passphrase.encode())
            name = manifest_member(source.infolist(), encrypted_zip)
            return name, source.read(name)
    except (RuntimeError, zipfile.BadZipFile, OSError) as exc:
        raise MrishareError(f"cannot read the package for the passphrase page ({exc})", encrypted_zip) from None


def seal(payload: bytes, salt: bytes, key: bytes) -> dict[str, str | int]:
    """AES-256-GCM under `key` (PBKDF2-SHA256 of the passphrase and `salt`); ciphertext with the 16-byte tag at its
    end, and what the page needs to derive the key again."""
    from Cryptodome.Cipher import AES

    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext, tag = AES.new(key, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(payload)
    return {"kdf": "PBKDF2-SHA256", "iterations": ITERATIONS, "salt": base64.b64encode(salt).decode(),
            "cipher": "AES-256-GCM", "iv": base64.b64encode(nonce).decode(),
            "data": base64.b64encode(ciphertext + tag).decode()}


def _inline(script: str) -> str:
    """A script body that cannot end its <script> element early."""
    return script.replace("</script", "<\\/script").replace("<!--", "<\\!--")


def _partial_note(left_out: tuple[str, ...]) -> str:
    """For a page that holds the anatomical images only: what is not in it and how to reach it (German/English)."""
    if not left_out:
        return ""
    names = "".join(f"<li>{html.escape(name)}</li>" for name in left_out)
    return f"""<div id="partial" class="note">
<p lang="de"><strong>Diese Seite enthält nur die anatomischen Aufnahmen</strong> (mit Vorschaubildern und
3D-Betrachter): das ganze Paket ist zu groß für eine Browserseite. Die übrigen Dateien sind in der ZIP-Datei,
die Sie zusammen mit dieser Seite bekommen haben. Öffnen Sie sie mit 7-Zip (Windows) oder Keka (macOS) und
derselben Passphrase.</p>
<p lang="en"><strong>This page holds only the anatomical images</strong> (with previews and the 3D viewer): the
whole package is too large for a browser page. The other files are in the ZIP file you received together with
this page. Open it with 7-Zip (Windows) or Keka (macOS) and the same passphrase.</p>
<details{" open" if len(left_out) <= 20 else ""}><summary>Nicht auf dieser Seite / Not on this page:
{len(left_out)} {"Datei / file" if len(left_out) == 1 else "Dateien / files"}</summary>
<ul id="left-out">{names}</ul></details>
</div>
"""


def page_html(top: str, sealed: dict[str, str | int], bundle: str, left_out: tuple[str, ...] = ()
              ) -> tuple[str, str, str]:
    """(the whole page, its plain parts, the values inserted into it): the plain parts leave out the ciphertext
    and the vendored bundle. `left_out` names the package's files the page does not hold (see `_partial_note`)."""
    from tui.core.nifti.participant_docs import NOT_DIAGNOSTIC
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
#partial {{ margin-bottom: 1rem; }}
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
{_partial_note(left_out)}<form id="unlock" autocomplete="off">
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
{NOT_DIAGNOSTIC}{viewer_section()}<section><h2>Dateien speichern / Save the files</h2>
<p><a id="save-all" href="#" download="{html.escape(top)}.zip">\
{"Alle Dateien dieser Seite als ZIP speichern / Save all files on this page as a ZIP" if left_out
 else "Alle Dateien als ZIP speichern / Save all files as a ZIP"}</a>
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
    return page, head + own, "\n".join((top, header, *left_out))


def write_unlock_page(encrypted_zip: Path, passphrase: str, folder: Path, out: Path | None = None,
                      max_payload: int = MAX_PAYLOAD) -> UnlockPage:
    """Write the passphrase page for `encrypted_zip`, packed from `folder`, beside it (or to `out`), readable only
    with `passphrase`; a package larger than `max_payload` gets its anatomical images only, or no page (PageTooLarge)
    if even those are larger."""
    return PageSealer(folder, passphrase, max_payload).write(encrypted_zip, out)
