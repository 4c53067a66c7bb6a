"""What a participant opens first: an offline `index.html` of the previews and a German/English README.

Nothing here comes from DICOM headers: only our own BIDS file names (pseudonym, never a name)
and fixed text. The leak gate matches short name parts as whole words, so the fixed text avoids
words that are also first names (CSS `max-width` tripped it on an operator called Max).
"""

from __future__ import annotations

import base64
import html
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import quote

from tui.core.nifti.conversion import Converted
from tui.core.nifti.viewer_page import CSP, VIEWER_DIR, viewer_script, viewer_section, viewer_styles, write_viewer

# BIDS suffix -> (German, English) plain-language description
KINDS = {
    "T1w": ("T1-gewichtete Aufnahme des Kopfes (Anatomie)", "T1-weighted image of the head (anatomy)"),
    "T2w": ("T2-gewichtete Aufnahme des Kopfes (Anatomie)", "T2-weighted image of the head (anatomy)"),
    "FLAIR": ("FLAIR-Aufnahme (T2-gewichtet, Nervenwasser dunkel)", "FLAIR image (T2-weighted, fluid dark)"),
    "PDw": ("Protonendichte-gewichtete Aufnahme", "Proton-density-weighted image"),
    "T2starw": ("T2*-gewichtete Aufnahme", "T2*-weighted image"),
    "angio": ("Aufnahme der Blutgefäße (Angiographie)", "Image of the blood vessels (angiography)"),
    "dwi": ("Diffusionsgewichtete Aufnahme", "Diffusion-weighted image"),
    "bold": ("Funktionelle Aufnahme (BOLD-Zeitserie)", "Functional image (BOLD time series)"),
    "fieldmap": ("Feldkarte (Magnetfeld, zur Korrektur anderer Aufnahmen)",
                 "Field map (magnetic field, to correct other images)"),
}


def dicom_note(faces_changed: bool) -> str:
    """Appended to README.txt when the package holds the de-identified DICOM (`--keep-dicom`)."""
    faces = ("; Gesichter wie oben entfernt", "; faces removed as above") if faces_changed else ("", "")
    return ("\nDICOM:\n"
            f"  - dicom/: dieselben Aufnahmen im DICOM-Format des Scanners (ohne Ihre Daten{faces[0]}).\n"
            f"  - dicom/: the same images in the scanner's DICOM format (without your details{faces[1]}).\n")
UNKNOWN_KIND = ("MRT-Aufnahme", "MRI image")
VIEWER_LINES = (
    ("- viewer/: der 3D-Betrachter für index.html (NiiVue, freie Software, siehe\n"
     "  viewer/NOTICE.txt) und eine verkleinerte 8-Bit-Kopie jeder Aufnahme dafür.\n"),
    ("- viewer/: the 3D viewer for index.html (NiiVue, free software, see\n"
     "  viewer/NOTICE.txt) and a reduced 8-bit copy of each image for it.\n"),
)
ABOUT_LABELS = (("Studie", "Aufnahmedatum", "Kontakt bei Fragen"), ("Study", "Date of the scan", "Questions"))


@dataclass(frozen=True)
class About:
    """What the documents say about where the images come from; empty fields are left out."""

    lab_name: str = ""
    lab_contact: str = ""
    study_name: str = ""
    scan_date: date | None = None
    """Only where the preset keeps the real dates (a shifted date would mislead)."""

    def lines(self, language: int) -> list[tuple[str, str]]:
        """(label, value) pairs in German (0) or English (1), without the empty ones."""
        study, scanned, contact = ABOUT_LABELS[language]
        when = ""
        if self.scan_date:
            when = f"{self.scan_date:%d.%m.%Y}" if language == 0 else f"{self.scan_date:%Y-%m-%d}"
        who = ", ".join(v for v in (self.lab_name, self.lab_contact) if v)
        return [(label, value) for label, value in ((study, self.study_name), (scanned, when), (contact, who)) if value]

VIEWERS = [
    ("MRIcroGL", "Windows, macOS, Linux", "https://www.nitrc.org/projects/mricrogl"),
    ("ITK-SNAP", "Windows, macOS, Linux", "http://www.itksnap.org"),
    ("3D Slicer", "Windows, macOS, Linux", "https://www.slicer.org"),
    ("FSLeyes", "macOS, Linux (Windows: WSL)", "https://open.win.ox.ac.uk/pages/fsl/fsleyes/fsleyes/userdoc/"),
]

README_DE = """\
IHRE MRT-AUFNAHMEN
==================

Dieses Paket enthält die Magnetresonanztomographie-(MRT-)Aufnahmen, die im Rahmen
einer Forschungsstudie von Ihnen gemacht wurden. Sie erhalten sie auf Ihren Wunsch
(Auskunftsrecht, Art. 15 DSGVO).

WICHTIG: Diese Forschungsaufnahmen waren keine diagnostische Untersuchung. Sie
wurden nicht von einer Ärztin oder einem Arzt auf Krankheiten hin befundet und
eignen sich nicht dafür, Krankheiten zu erkennen oder auszuschließen. Wenn Sie
Fragen zu Ihrer Gesundheit haben, wenden Sie sich bitte an Ihre Hausärztin oder
Ihren Hausarzt.
{about}{faces}
Inhalt
------
{listing}
- index.html: Ihre Aufnahmen in Schichten und in 3D sowie als Vorschaubilder.
  Öffnen Sie die Datei mit einem beliebigen Webbrowser (Doppelklick); sie
  funktioniert ohne Internet, nachdem alle Dateien entpackt sind.
- previews/: die Vorschaubilder als PNG-Dateien.
{viewer}- MANIFEST-SHA256.txt: eine Prüfsumme (SHA-256) für jede Datei. Damit lässt
  sich prüfen, dass beim Herunterladen nichts beschädigt wurde
  (z. B. unter Linux/macOS: sha256sum -c MANIFEST-SHA256.txt).

Die Bilder (.nii.gz) liegen im NIfTI-Format vor, dem üblichen Format der
Hirnforschung. Die .json-Datei daneben nennt die technischen Aufnahmeparameter
(z. B. Feldstärke, Echozeit). Die Vorschaubilder zeigen die radiologische
Ansicht: Ihre rechte Körperseite ist links im Bild.

NIfTI-Dateien öffnen
--------------------
Kostenlose Programme:
{viewers}
So geht es: Programm installieren, starten, "File > Open" (bzw. die Datei ins
Fenster ziehen) und eine .nii.gz-Datei wählen.
"""

README_EN = """\
YOUR MRI IMAGES
===============

This package holds the magnetic resonance imaging (MRI) images taken of you in a
research study. You receive them at your request (right of access, Art. 15 GDPR).

IMPORTANT: these research images were not a diagnostic examination. No doctor
has reviewed them for disease, and they are not suitable for finding or ruling
out any illness. If you have questions about your health, please ask your
general practitioner.
{about}{faces}
Contents
--------
{listing}
- index.html: your images in slices and in 3D, and preview pictures. Open it
  with any web browser (double-click); it works without internet once all
  files are extracted.
- previews/: the preview pictures as PNG files.
{viewer}- MANIFEST-SHA256.txt: a checksum (SHA-256) for every file, to check that
  nothing was damaged on the way (e.g. on Linux/macOS:
  sha256sum -c MANIFEST-SHA256.txt).

The images (.nii.gz) are in NIfTI format, the common format of brain research.
The .json file beside each one lists the technical acquisition parameters
(e.g. field strength, echo time). The previews use the radiological view: your
right side is on the left of the picture.

Opening NIfTI files
-------------------
Free programs:
{viewers}
How: install a program, start it, use "File > Open" (or drag the file onto its
window) and choose a .nii.gz file.
"""

FACES = (
    ("\nZum Schutz Ihrer Privatsphäre wurde der Gesichtsbereich in den Aufnahmen verändert\n"
    "(entfernt oder durch ein Durchschnittsgesicht ersetzt). Das Gehirn ist unverändert.\n"),
    ("\nTo protect your privacy, the face in the images was changed (removed or replaced\n"
    "by an average face). The brain is unchanged.\n"),
)


def _entry(item: Converted | Path) -> Converted:
    """A Converted for a bare NIfTI path too (suffix = the last `_` part of its BIDS name)."""
    if isinstance(item, Converted):
        return item
    path = Path(item)
    stem = path.name.removesuffix(".gz").removesuffix(".nii")
    return Converted(path.name, path, path.with_name(f"{stem}.json"), stem.rsplit("_", 1)[-1])


def _kind(item: Converted) -> tuple[str, str]:
    """(German, English) description of a series."""
    return KINDS.get(item.suffix, UNKNOWN_KIND)


def _relative(path: Path, root: Path) -> str:
    """`path` relative to the participant folder, with forward slashes."""
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


def readme_text(root: Path, items: Sequence[Converted | Path], language: str = "de+en",
                faces_changed: bool = False, about: About = About(), viewer: bool = False) -> str:
    """README.txt text: German and/or English (`de`, `en`, `de+en`)."""
    entries = [_entry(i) for i in items]
    parts = []
    for index, (code, template) in enumerate((("de", README_DE), ("en", README_EN))):
        if code not in language:
            continue
        listing = "\n".join(f"- {_relative(i.nifti, root)}: {_kind(i)[index]}" for i in entries) or "-"
        viewers = "\n".join(f"- {name} ({systems}): {url}" for name, systems, url in VIEWERS)
        facts = "".join(f"{label}: {value}\n" for label, value in about.lines(index))
        parts.append(template.format(listing=listing, viewers=viewers, faces=FACES[index] if faces_changed else "",
                                     about=f"\n{facts}" if facts else "", viewer=VIEWER_LINES[index] if viewer else ""))
    return ("\n" + "-" * 78 + "\n\n").join(parts)


def _data_uri(png: Path) -> tuple[str, int, int]:
    """A PNG as a data: URI with its pixel size (the page still shows it when opened alone from the zip)."""
    data = Path(png).read_bytes()
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), width, height


NOT_DIAGNOSTIC = """<div class="note">
<p lang="de"><strong>Wichtig:</strong> Diese Forschungsaufnahmen waren keine diagnostische Untersuchung.
Sie wurden nicht ärztlich auf Krankheiten hin befundet.</p>
<p lang="en"><strong>Important:</strong> these research images were not a diagnostic examination.
No doctor has reviewed them for disease.</p>
</div>
"""
"""The note at the top of index.html and of the passphrase page (the README says the same in its words)."""


def index_html(root: Path, items: Sequence[Converted | Path], previews: Mapping[str, list[Path]],
               viewer_scripts: Sequence[Path] = (), about: About = About()) -> str:
    """A self-contained page showing each series' previews and, with `viewer_scripts`, the 3D viewer.

    `previews` is keyed by series key or by NIfTI file name. Previews are inline (data: URIs) at their
    natural size; the viewer's scripts are neighbouring files, so it needs the extracted folder.
    """
    sections = []
    for item in map(_entry, items):
        german, english = _kind(item)
        name = html.escape(Path(item.nifti).name)
        images = []
        for png in previews.get(item.series_key) or previews.get(Path(item.nifti).name) or []:
            uri, width, height = _data_uri(png)
            label = html.escape(f"{english}: {Path(png).stem.rsplit('_', 1)[-1]}")
            images.append(f'<img src="{uri}" width="{width}" height="{height}" alt="{label}">')
        sections.append(f'<section><h2><span lang="de">{html.escape(german)}</span> / '
                        f'<span lang="en">{html.escape(english)}</span></h2>'
                        f"<p class=file>{name}</p>{''.join(images)}</section>")
    facts = "".join(f'<p lang="{code}">{html.escape(label)}: {html.escape(value)}</p>\n'
                    for index, code in enumerate(("de", "en")) for label, value in about.lines(index))
    viewer = ""
    if viewer_scripts:
        sources = [f"{VIEWER_DIR}/niivue.umd.js", *(_relative(s, root) for s in viewer_scripts)]
        viewer = (viewer_section() + "".join(f'<script src="{quote(s)}"></script>\n' for s in sources)
                  + f"<script>\n{viewer_script()}\nmrishare.startViewer(window.MRISHARE_VOLUMES);\n</script>\n")
    return f"""<!DOCTYPE html>
<html lang="de">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MRT-Aufnahmen / MRI images</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem 6%; background: #111; color: #eee; line-height: 1.4; }}
a {{ color: #9cf; }}
.note {{ border: 2px solid #e0a030; padding: .5rem 1rem; border-radius: .4rem; }}
img {{ max-width: 100%; height: auto; display: block; margin: .5rem 0; }}
.file {{ font-family: monospace; color: #bbb; }}
section {{ border-top: 1px solid #444; margin-top: 1.5rem; }}
{viewer_styles() if viewer_scripts else ""}</style>
</head>
<body>
<h1><span lang="de">Ihre MRT-Aufnahmen</span> / <span lang="en">Your MRI images</span></h1>
{facts}{NOT_DIAGNOSTIC}
<p lang="de">Radiologische Ansicht: Ihre rechte Körperseite ist links im Bild. Was jede Datei ist und wie Sie
die vollständigen Bilder (.nii.gz) öffnen, steht in <a href="README.txt">README.txt</a>.</p>
<p lang="en">Radiological view: your right side is on the left of the picture. What each file is and how to
open the full images (.nii.gz) is explained in <a href="README.txt">README.txt</a>.</p>
{viewer}{"".join(sections)}
</body>
</html>
"""


def write_participant_docs(out_dir: Path, items: Sequence[Converted | Path], previews: Mapping[str, list[Path]],
                           language: str = "de+en", faces_changed: bool = False, viewer: bool = True,
                           about: About = About()) -> list[Path]:
    """Write `index.html`, `README.txt` and (with `viewer`) the 3D viewer into the folder `out_dir` (`.../sub-<s>`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [_entry(i) for i in items]
    scripts = write_viewer(out_dir, [(i.nifti, " / ".join(_kind(i))) for i in entries]) if viewer else []
    index, readme = out_dir / "index.html", out_dir / "README.txt"
    index.write_text(index_html(out_dir, entries, previews, scripts, about), encoding="utf-8")
    # CRLF so that every Windows editor shows the lines; UTF-8 for the umlauts.
    readme.write_text(readme_text(out_dir, entries, language, faces_changed, about, viewer), encoding="utf-8",
                      newline="\r\n")
    return [index, readme]
