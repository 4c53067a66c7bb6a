"""`mrishare scan DIR`: show the participants, series and unused files found under a folder.

Per series: number, modality, description, files, size, rows x cols x slices, and the
BurnedInAnnotation flag (`BURNED-IN TEXT` = YES, `burned-in?` = a derived/secondary image without NO), and
`WITHHELD` with the reason when the description names a protocol/report page on the settings' withheld list.

Patient values (name, ID, birth date, study description, dates, accession) and participant folder
names are masked unless `--reveal`: the participant key and "patient 1 of 2" stand in for them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from rich.tree import Tree

from tui.cli.output import run_with_progress, stdout
from tui.core.presets import PROTOCOL_PAGES

if TYPE_CHECKING:
    from tui.core.dicom.scan import Participant, ScanResult, Series, Skipped


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `scan` subcommand."""
    p = subparsers.add_parser("scan", help="find participants, series and unusable files under a folder")
    p.add_argument("folder", type=Path, metavar="DIR", help="a study folder or one participant's folder")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--participant", action="store_true", help="treat DIR as one participant's folder")
    p.add_argument("--reveal", action="store_true",
                   help="show patient names, IDs, birth dates, study descriptions and folder names")
    p.add_argument("--workers", type=int, default=None, help="reader processes (default: all cores)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Scan and print; unusable files are reported, not an error (exit 0)."""
    from tui.core.dicom.scan import scan_events
    from tui.core.settings import load_settings

    pages = load_settings().protocol_pages
    result = run_with_progress(scan_events(args.folder, workers=args.workers, as_participant=args.participant),
                               quiet=args.json)
    if args.json:
        print(json.dumps(to_json(result, reveal=args.reveal, pages=pages), indent=2, ensure_ascii=False))
    else:
        print_result(result, reveal=args.reveal, pages=pages)
    return 0


def count(n: int, noun: str) -> str:
    """`1 file`, `2 files`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def human_size(n: int) -> str:
    """Bytes as B/KB/MB/GB (powers of 1000, one decimal above KB)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def shown_path(path: Path, result: ScanResult, reveal: bool) -> str:
    """A path relative to the scanned root; masked: the participant folder is replaced by its key."""
    if reveal:
        return str(path.relative_to(result.root)) if path.is_relative_to(result.root) else str(path)
    for participant in result.participants:
        if path.is_relative_to(participant.folder):
            rest = path.relative_to(participant.folder)
            return participant.key if rest == Path(".") else f"{participant.key}/{rest}"
    return str(path.relative_to(result.root)) if path.is_relative_to(result.root) else str(path)


def withheld(series: Series, pages: Collection[str]) -> str | None:
    """Why the whole series is withheld from release (a protocol/report page), or None."""
    from tui.core.deid.quarantine import protocol_page, protocol_page_reason

    page = protocol_page(series.description, pages)
    return protocol_page_reason(page) if page is not None else None


def series_line(series: Series, pages: Collection[str] = PROTOCOL_PAGES) -> Text:
    """One series: number, modality, description, files, size, dimensions, burned-in flag, withheld reason."""
    dims = f"{series.rows}x{series.cols}x{series.slices}" if series.rows else count(series.slices, "object")
    text = Text(f"#{series.number if series.number is not None else '?'} {series.modality or '??'} ")
    text.append(series.description or "(no description)", style="bold")
    text.append(f"  {count(len(series.files), 'file')}, {human_size(series.bytes)}, {dims}")
    evidence = burned_in_evidence(series)
    if evidence:
        text.append(f"  {evidence}", style="red" if series.burned_in == "YES" else "yellow")
    reason = withheld(series, pages)
    if reason:
        text.append(f"  WITHHELD: {reason}", style="red")
    if series.kind:
        text.append(f"  {series.kind}, not an image")
    if series.problems:
        text.append("  INCOMPLETE (withheld unless --allow-incomplete)", style="red")
    return text


def burned_in_evidence(series: Series) -> str:
    """Say 'burned-in' only with evidence, and name it; a plain MR series without the tag says nothing.

    The same evidence the de-identification quarantines on (tui/core/deid/quarantine.py).
    """
    if (series.burned_in or "").upper() == "YES":
        return "BURNED-IN TEXT (BurnedInAnnotation = YES)"
    if "SECONDARY" in (series.image_type or "").upper() and (series.burned_in or "").upper() != "NO":
        return "burned-in? (ImageType SECONDARY and no BurnedInAnnotation NO: may show text)"
    return ""


def participant_tree(participant: Participant, result: ScanResult, reveal: bool,
                     pages: Collection[str] = PROTOCOL_PAGES) -> Tree:
    """Patient -> study -> series tree of one participant."""
    head = Text(f"participant {participant.key}", style="bold")
    if reveal:
        head.append(f"  {shown_path(participant.folder, result, True)}")
    head.append(f"  {count(participant.files, 'file')}, {human_size(participant.bytes)}")
    if participant.mixed_patients:
        head.append(f"  {len(participant.patients)} different patients in one folder", style="red")
    tree = Tree(head)
    for p_index, patient in enumerate(participant.patients, 1):
        label = Text(f"patient {p_index} of {len(participant.patients)} ({count(patient.files, 'file')})")
        if reveal:
            label.append(f"  {patient.patient_name} | ID {patient.patient_id or '(empty)'} | born {patient.birth_date}")
        elif not patient.patient_id:
            label.append("  empty Patient ID", style="yellow")
        branch = tree.add(label)
        for s_index, study in enumerate(patient.studies, 1):
            study_label = Text(f"study {s_index} of {len(patient.studies)}")
            if reveal:
                study_label.append(f"  {study.date} {study.description} | accession {study.accession}")
            study_branch = branch.add(study_label)
            for series in study.series:
                series_branch = study_branch.add(series_line(series, pages))
                for problem in series.problems:
                    series_branch.add(Text(str(problem), style="red"))
    for problem in participant.problems:
        tree.add(Text(f"may be incomplete: {problem}", style="red"))
    return tree


def print_result(result: ScanResult, reveal: bool, pages: Collection[str] = PROTOCOL_PAGES) -> None:
    """Human output: a tree per participant, misfiled files, then unused files with reasons."""
    if not result.participants:
        stdout.print(Text("no DICOM series found"))
    for participant in result.participants:
        stdout.print(participant_tree(participant, result, reveal, pages))
        for path in participant.misfiled:
            stdout.print(Text(f"  misfiled (other patient): {shown_path(path, result, reveal)}", style="red"))
    if result.skipped:
        stdout.print(Text(f"unused files ({len(result.skipped)}):", style="bold"))
        for skipped in result.skipped:
            stdout.print(Text(f"  {shown_path(skipped.path, result, reveal)}: {skipped.reason}"))


def _skipped_json(skipped: Skipped) -> dict[str, str]:
    return {"path": str(skipped.path), "reason": skipped.reason}


def to_json(result: ScanResult, reveal: bool, pages: Collection[str] = PROTOCOL_PAGES) -> dict[str, object]:
    """The scan as plain JSON data; identifying values only with `reveal`."""

    def series_json(series: Series) -> dict[str, object]:
        data: dict[str, object] = {
            "series_uid": series.series_uid, "number": series.number, "modality": series.modality,
            "description": series.description, "sop_classes": sorted(series.sop_classes),
            "transfer_syntaxes": sorted(series.transfer_syntaxes), "files": [str(f) for f in series.files],
            "bytes": series.bytes, "rows": series.rows, "cols": series.cols, "slices": series.slices,
            "frames": series.frames, "burned_in": series.burned_in, "image_type": series.image_type,
            "body_part": series.body_part, "protocol": series.protocol, "withheld": withheld(series, pages),
            "kind": series.kind, "problems": [str(p) for p in series.problems],
        }
        if reveal:
            data.update(date=series.date, time=series.time)
        return data

    participants = []
    for participant in result.participants:
        patients = []
        for patient in participant.patients:
            studies = []
            for study in patient.studies:
                entry: dict[str, object] = {"study_uid": study.study_uid,
                                            "series": [series_json(s) for s in study.series]}
                if reveal:
                    entry.update(date=study.date, description=study.description, accession=study.accession)
                studies.append(entry)
            record: dict[str, object] = {"files": patient.files, "studies": studies,
                                         "empty_patient_id": not patient.patient_id}
            if reveal:
                record.update(patient_id=patient.patient_id, patient_name=patient.patient_name,
                              birth_date=patient.birth_date)
            patients.append(record)
        participants.append({
            "key": participant.key, "folder": str(participant.folder), "files": participant.files,
            "bytes": participant.bytes, "mixed_patients": participant.mixed_patients, "patients": patients,
            "misfiled": [str(p) for p in participant.misfiled],
            "skipped": [_skipped_json(s) for s in participant.skipped],
            "problems": [str(p) for p in participant.problems],
        })
    return {"root": str(result.root), "participants": participants,
            "skipped": [_skipped_json(s) for s in result.skipped]}
