"""A series the engine converts only in part never shares as if whole (issue 21, fuzz seeds 313 and 322).

The case is the one the fuzzer found: a copy of the real GE 4-slice series in which one flipped header
byte turns (0008,0030) StudyTime into (000C,0030), so dcm2niix splits the series into 3 + 1 slices. The
default engine keeps both parts; dcm2niix with `-w 1` (the option before the fix) writes the second part
over the first, a real engine writing fewer images than it got. Beside it the participant has a complete
copy of the series, so the run goes on and ends 'partly shared'.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.fuzz.mutate import prepare_base
from tui.core.deid.audit import read_records
from tui.core.delivery.ledger import Ledger
from tui.core.dicom.scan import scan
from tui.core.events import StepNote, drain
from tui.core.nifti.conversion import Dcm2niixEngine
from tui.core.pipeline import PipelineSettings, run_batch

pytestmark = pytest.mark.slow
FLIPPED = "IM-0001-0115-0001.dcm"


def flip_study_time(path: Path) -> None:
    """Fuzz seed 313's byte: the group of (0008,0030) StudyTime becomes 000C."""
    data = bytearray(path.read_bytes())
    at = data.index(b"\x08\x00\x30\x00", 132)
    data[at] = 0x0C
    path.write_bytes(bytes(data))


class OverwritingDcm2niix(Dcm2niixEngine):
    """The real dcm2niix with `-w 1`: a second output of one name replaces the first."""

    def command(self, source: Path, out: Path, compress: bool = False) -> list[str]:
        command = super().command(source, out, compress)
        at = command.index("-w")
        return [*command[: at + 1], "1", *command[at + 2:]]


@pytest.fixture
def participant(shared_data: Path, tmp_path: Path) -> Path:
    """The flipped series (SeriesNumber 4) and a complete copy of it (SeriesNumber 99)."""
    folder = prepare_base(shared_data, "ge4", tmp_path / "study" / "P01")
    copy = folder / "copy"
    copy.mkdir()
    uid = generate_uid()
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SOPInstanceUID = uid, 99, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(copy / path.name)
    flip_study_time(folder / FLIPPED)
    return folder


def share(participant: Path, tmp_path: Path, **settings: object) -> tuple[str, str, list[StepNote], Path]:
    """Share with the overwriting engine; (status, ledger note, warnings, kept package folder)."""
    work = tmp_path / "work"
    (tmp_path / "dest").mkdir()
    chosen = PipelineSettings(destination=f"folder:{tmp_path / 'dest'}", work_dir=work, deface_mode="off",
                              keep_work=True, engine=OverwritingDcm2niix(), **settings)  # type: ignore[arg-type]
    events: list[object] = []
    with Ledger.open(tmp_path / "share-list.xlsx") as ledger:
        result = drain(run_batch(scan(participant.parent).participants, chosen, ledger, workers=1), events.append)
        [row] = ledger.rows()
    [outcome] = result.outcomes
    notes = [e for e in events if isinstance(e, StepNote) and e.level == "warning"]
    [package] = work.rglob("package/sub-*")
    return outcome.status, row.note, notes, package


def audit_record(tmp_path: Path) -> dict[str, object]:
    """The run's one 'incomplete' audit record."""
    journal = json.loads(next((tmp_path / "work").rglob("journal.json")).read_text())
    records = read_records(Path(journal["done"]["deidentify"]["audit"]))
    [record] = [r for r in records if r.get("type") == "incomplete"]
    return record


def test_a_series_converted_in_part_is_withheld_and_named(participant: Path, tmp_path: Path) -> None:
    status, note, notes, package = share(participant, tmp_path)
    assert status == "partly shared"
    assert re.fullmatch(r"partly shared: withheld series 4: [13] of 4 slices converted", note), note
    assert any(re.search(r"withheld series 4: [13] of 4 slices converted", n.message) for n in notes)
    assert len(list(package.rglob("*.nii.gz"))) == 1 and len(list(package.rglob("*.json"))) >= 1
    assert "INCOMPLETE" not in (package / "README.txt").read_text()  # the withheld series is not in it
    assert audit_record(tmp_path)["decision"] == "withheld"


def test_allow_incomplete_releases_it_with_the_shortfall_recorded(participant: Path, tmp_path: Path) -> None:
    status, note, _, package = share(participant, tmp_path, allow_incomplete=True)
    assert status == "shared"
    assert re.fullmatch(r"incomplete series released on request: series 4: [13] of 4 slices converted", note)
    assert len(list(package.rglob("*.nii.gz"))) == 2
    readme = (package / "README.txt").read_text()
    assert re.search(r"INCOMPLETE DATA:\n  - series 4: [13] of 4 slices converted", readme), readme
    record = audit_record(tmp_path)
    assert record["decision"] == "released" and record["where"] == "series 4"
