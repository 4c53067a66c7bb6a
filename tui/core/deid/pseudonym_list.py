"""The pseudonym list (ADIT's "View Results" CSV): which PatientID got which pseudonym in a run.

A CSV with the header `PatientID,Pseudonym` and one row per participant, written with mode 0600 on this
machine only: it re-identifies everybody in it, so it is refused inside any folder whose content is
packed, released or uploaded (the de-identified output, the work folder, a folder destination). When some
participants failed, a third column `Status` says `ok` or `failed: reason` for each row; a participant
whose pseudonym could not be made (empty PatientID, not in the batch file) has an empty Pseudonym. With
`csv:FILE` and no failure the list holds exactly the batch file's pairs for the run's participants.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.config import data_dir, site_secret, write_private
from tui.core.deid.pseudonym import Pseudonymizer, parse_scheme, strip_padding
from tui.core.errors import MrishareError

if TYPE_CHECKING:
    from tui.core.dicom.scan import Participant
    from tui.core.run_settings import PipelineSettings

HEADER = ["PatientID", "Pseudonym"]


@dataclass(frozen=True)
class ListEntry:
    """One participant's line; `failure` is empty when the participant went through."""

    patient_id: str
    pseudonym: str
    failure: str = ""


def entries_for(participants: Iterable[Participant], scheme: str, failures: Mapping[str, str] | None = None,
                used: Mapping[str, str] | None = None) -> list[ListEntry]:
    """An entry per participant (by key): the pseudonym `used` in the run, else the one `scheme` gives;
    `failures` maps keys of participants that did not finish to their reason."""
    failures, used = failures or {}, used or {}
    names = Pseudonymizer(parse_scheme(scheme), site_secret())
    entries = []
    for participant in participants:
        main = participant.main_patient
        patient_id = strip_padding(main.patient_id) if main is not None else ""
        failure = failures.get(participant.key, "")
        pseudonym = used.get(participant.key, "")
        if not pseudonym:
            try:
                pseudonym = names.pseudonym(patient_id)
            except MrishareError as error:
                failure = failure or error.reason
        entries.append(ListEntry(patient_id, pseudonym, failure))
    return entries


def released_folders(settings: PipelineSettings) -> list[Path]:
    """Local folders whose content is packed or delivered: a pseudonym list must never be inside one."""
    folders = [settings.work_dir]
    if settings.destination.startswith("folder:"):
        folders.append(Path(settings.destination.removeprefix("folder:")))
    return folders


def default_list_path() -> Path:
    """Where the app offers to save the list: the local data folder, beside the pseudonym mapping."""
    return data_dir() / "pseudonym-list.csv"


def check_list_path(path: Path, released: Iterable[Path | None], scheme: str = "keyed") -> Path:
    """`path` resolved, or an error if it lies inside a folder that is packed, released or uploaded, or
    would replace the batch file of a `csv:FILE` scheme."""
    target = Path(path).expanduser().resolve()
    parsed = parse_scheme(scheme)
    if parsed.kind == "csv" and target == Path(parsed.arg).expanduser().resolve():
        raise MrishareError("the pseudonym list would overwrite the batch file", path)
    for folder in released:
        if folder is None:
            continue
        inside = Path(folder).expanduser().resolve()
        if target == inside or inside in target.parents:
            raise MrishareError(f"the pseudonym list must stay outside {inside} (its content is released)", path)
    if target.is_dir():
        raise MrishareError("is a folder; give a file name for the pseudonym list", path)
    return target


def write_pseudonym_list(path: Path, entries: list[ListEntry], released: Iterable[Path | None] = (),
                         scheme: str = "keyed") -> Path:
    """Write the list (0600, atomically) after `check_list_path`."""
    target = check_list_path(path, released, scheme)
    marked = any(entry.failure for entry in entries)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER + (["Status"] if marked else []))
    for entry in entries:
        status = [f"failed: {entry.failure}" if entry.failure else "ok"] if marked else []
        writer.writerow([entry.patient_id, entry.pseudonym, *status])
    write_private(target, buffer.getvalue().encode("utf-8"))
    return target

