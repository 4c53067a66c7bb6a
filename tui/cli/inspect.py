"""`mrishare inspect`: one DICOM file's elements with the action and resulting value a share would give them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from tui.cli.output import stdout
from tui.core.dicom import annex_e
from tui.core.errors import MrishareError
from tui.core.presets import PRESETS
from tui.core.safetext import shown

if TYPE_CHECKING:
    from tui.core.dicom.tags import TagRow

ACTION_STYLES = {"K": "green", "C": "cyan", "U": "magenta", "Z": "yellow", "D": "yellow", "X": "bold red"}
"""Named ANSI colours, so they read the same under any terminal theme."""
LEGEND = (
    ("K", "keep"),
    ("C", "clean"),
    ("U", "new UID"),
    ("Z", "empty"),
    ("D", "dummy"),
    ("X", "remove"),
)
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `inspect` subcommand."""
    p = sub.add_parser(
        "inspect",
        help="show a DICOM file's tags and what de-identification does to each",
        description="Show every element of one DICOM file (for a folder: the first DICOM file in it) "
        "with the PS3.15 Annex E action a share applies under --preset and the value left after it. "
        "Values of identifying elements are masked unless --reveal.",
    )
    p.add_argument("target", metavar="FILE_OR_SERIES_DIR", type=Path)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="judge as this preset shares (default: the share default from settings)")
    p.add_argument(
        "--option", action="append", default=[], choices=annex_e.OPTIONS, metavar="NAME",
        help=f"Annex E option, repeatable; replaces the preset's options: {', '.join(annex_e.OPTIONS)}",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of rows instead of a table")
    p.add_argument("--reveal", action="store_true", help="show identifying values instead of masking them")
    p.add_argument("--only-identifying", action="store_true",
                   help="list only elements de-identification changes or flags")
    p.add_argument("--png", type=Path, default=None, metavar="OUT",
                   help="write the image to OUT through its window/level instead of listing tags (NOT de-identified)")
    p.add_argument("--frame", type=int, default=None, metavar="N", help="with --png: frame N of a multi-frame image "
                   "(1-based, default 1)")
    p.add_argument("--jpeg", action="store_true", help="with --png: write JPEG instead of PNG")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Inspect the file and print the table or JSON."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from tui.core.dicom.tags import flatten

    preset = args.preset or share_default_preset()
    options = annex_e.validate_options(args.option) if args.option else PRESETS[preset].options
    path = first_dicom(args.target)
    if args.png is not None:
        return export(path, args.png, args.frame or 1, args.jpeg)
    if args.frame is not None or args.jpeg:
        raise MrishareError("--frame and --jpeg go with --png OUT")
    try:
        ds = pydicom.dcmread(path, force=True, defer_size="256 KB")
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise MrishareError(f"not a readable DICOM file ({type(error).__name__})", where=path) from error
    rows = flatten(ds, options)
    if args.only_identifying:
        rows = only_identifying(rows)
    if args.json:
        json.dump([row_dict(r, args.reveal) for r in rows], sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        stdout.print(table(rows, args.reveal, path))
        stdout.print(legend(options, args.reveal, "options given" if args.option else f"preset {preset}"))
    broken = [r for r in rows if "malformed" in r.flags]
    if broken:
        where = ", ".join(f"{r.path} {r.value.strip('<>')}" for r in broken[:3])
        print(f"mrishare: {shown(path)}: {len(broken)} element(s) could not be read: {where}", file=sys.stderr)
        return 1
    return 0


def export(path: Path, out: Path, frame: int, jpeg: bool) -> int:
    """Write one frame as a picture and say which window was used."""
    from tui.core.dicom.pixel_export import export_frame

    done = export_frame(path, out, frame, jpeg)
    window = ("colour, no window" if done.window_from == "colour"
              else f"window center {done.center:g} width {done.width:g} ({done.window_from})")
    stdout.print(Text(f"wrote {done.path}: frame {done.frame} of {done.frames}, {window}"))
    return 0


def share_default_preset() -> str:
    """The preset `mrishare share` uses without --preset (settings.json, else the built-in default)."""
    from tui.core.settings import load_settings

    return load_settings().preset


def first_dicom(target: Path) -> Path:
    """`target` itself, or the first file under it (sorted walk) whose content is DICOM."""
    if target.is_file():
        if not _sniff(target):
            raise MrishareError("not a DICOM file", where=target)
        return target
    if not target.is_dir():
        raise MrishareError("no such file or folder", where=target)
    for root, dirs, files in os.walk(target):
        dirs.sort()
        for name in sorted(files):
            candidate = Path(root, name)
            if _is_dicom_image(candidate):
                return candidate
    raise MrishareError("no DICOM file found", where=target)


def _sniff(path: Path) -> bool:
    """DICOM by content: preamble + DICM, or a bare little-endian dataset starting in group 0002/0008."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or head[:2] in (b"\x02\x00", b"\x08\x00")


def _is_dicom_image(path: Path) -> bool:
    """A DICOM file by content that is not a DICOMDIR."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not _sniff(path):
        return False
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False
    meta = getattr(ds, "file_meta", None)
    sop = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    return sop is not None and str(sop) != DICOMDIR_CLASS


def only_identifying(rows: list[TagRow]) -> list[TagRow]:
    """Identifying rows, plus the sequences that contain them so nested rows keep their context."""
    keep = set()
    for r in rows:
        if "identifying" in r.flags:
            keep.add(r.path)
            keep.update(r.path[:i] for i, ch in enumerate(r.path) if ch == "[")
    return [r for r in rows if r.path in keep]


def row_dict(row: TagRow, reveal: bool) -> dict[str, object]:
    """A TagRow as plain JSON-able data."""
    from tui.core.dicom.tag_view import after_value, shown_value

    return {
        "path": row.path,
        "keyword_path": row.keyword_path,
        "tag": f"({row.tag >> 16:04X},{row.tag & 0xFFFF:04X})",
        "keyword": row.keyword,
        "vr": row.vr,
        "depth": row.depth,
        "value": shown_value(row, reveal),
        "after": after_value(row, reveal),
        "private_creator": row.private_creator,
        "action": row.decision.action,
        "code": row.decision.code,
        "reason": row.decision.reason,
        "review": row.decision.review,
        "flags": sorted(row.flags),
    }


def table(rows: list[TagRow], reveal: bool, path: Path) -> Table:
    """Rich table; every cell is a Text, so values are never read as markup."""
    from tui.core.dicom.tag_view import after_value, identifying, shown_value

    t = Table(title=Text(shown(path)), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("Tag", no_wrap=True)
    t.add_column("Name", overflow="ellipsis", no_wrap=True, max_width=26)
    t.add_column("VR", no_wrap=True)
    t.add_column("Act", no_wrap=True)
    t.add_column("Value", overflow="fold", min_width=14)
    t.add_column("After", overflow="fold", min_width=12)
    for r in rows:
        style = ACTION_STYLES[r.decision.action]
        private = "private" in r.flags
        tag = Text(" " * r.depth + f"({r.tag >> 16:04X},{r.tag & 0xFFFF:04X})" + ("*" if private else " "))
        review = "?" if r.decision.review else ""
        t.add_row(
            tag,
            Text(r.name, style="italic" if private else ""),
            Text(r.vr),
            Text(r.decision.action + review, style=style),
            Text(shown_value(r, reveal), style=style if identifying(r) else ""),
            Text(after_value(r, reveal), style=style),
        )
    return t


def legend(options: frozenset[str], reveal: bool, source: str) -> Text:
    """One line explaining colours, marks and the options in force (and where they come from)."""
    line = Text()
    for code, meaning in LEGEND:
        line.append(f"{code} {meaning}", style=ACTION_STYLES[code]).append("  ")
    line.append("? review  * private")
    if not reveal:
        line.append("  ••••• masked (--reveal)")
    line.append(f"\n{annex_e.TABLE_EDITION} Basic Profile, {source}: {', '.join(sorted(options)) or 'no options'}")
    return line
