"""The phi-corpus answer key, row by row: `mrishare deid` on the whole tree must leave nothing behind.

One real CLI run (in-process, `tui.cli.main`) over `phi-corpus/files` into a temporary folder.
Every MANIFEST.csv row is then checked against its `check` column on the released output (a
file that was not released satisfies every row about its content). A second, engine-level pass
de-identifies every parseable input file in memory, released or not, and checks the same rows:
the profile itself must remove what the table asks, not only the quarantine.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from tui.cli import main
from tui.core.config import site_secret
from tui.core.deid.cleaner import DeidContext, deidentify_dataset
from tui.core.deid.leakcheck import identifiers_from_datasets
from tui.core.dicom import annex_e
from tui.core.dicom.uidmap import UidMap

# The answer key asks descriptors to be "removed_or_replaced" even where Clean Descriptors would
# keep their non-identifying rest, so the run uses the options whose results the key can judge.
OPTIONS = ("rtn_long_modif_dates", "rtn_safe_priv")
SHARED = Path(os.environ.get("MRISHARE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
CORPUS = SHARED / "data" / "phi-corpus"
_STEP = re.compile(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)(?:\[(\d+)\])?")


@dataclass
class Run:
    """The CLI run's output folder, site secret, exit code and everything it printed or logged."""

    corpus: Path
    out: Path
    home: Path
    secret: bytes
    code: int
    printed: str
    released: dict[str, Path]
    options: tuple[str, ...]

    def output_for(self, source: Path) -> Path | None:
        """The released file derived from `source` (matched by its remapped SOPInstanceUID)."""
        try:
            uid = str(pydicom.dcmread(source, stop_before_pixels=True, force=True).get("SOPInstanceUID", ""))
        except Exception:
            return None
        return self.released.get(UidMap(self.secret).remap(uid)) if uid else None


@pytest.fixture(scope="module", params=[(), OPTIONS], ids=["cli-defaults", "+rtn_safe_priv"])
def run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Run:
    """The real CLI over the whole corpus: as the issue runs it (no options), and with safe private kept."""
    corpus = CORPUS
    base = tmp_path_factory.mktemp("manifest")
    home, out = base / "home", base / "out"
    printed = io.StringIO()
    handler = logging.StreamHandler(printed)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed), \
                contextlib.redirect_stderr(printed):
            patch.setenv("MRISHARE_HOME", str(home))
            patch.setenv("COLUMNS", "200")
            args = ["deid", str(corpus / "files"), str(out)] + [a for o in request.param for a in ("--option", o)]
            code = main(args)
    finally:
        logging.getLogger().removeHandler(handler)
    secret = site_secret(home / "config" / "site-secret")
    released = {}
    for path in out.rglob("*"):
        if path.is_file():
            released[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    return Run(corpus, out, home, secret, code, printed.getvalue(), released, request.param)


def manifest_rows() -> list[dict[str, str]]:
    with (CORPUS / "MANIFEST.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


ROWS = manifest_rows()


def _canaries(corpus: Path) -> list[str]:
    lines = (corpus / "canary_strings.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _element(ds: Dataset, tag_path: str):
    """The element at a MANIFEST tag path, or None if any step is gone."""
    current: Dataset | None = ds
    element = None
    steps = _STEP.findall(tag_path.split(" ")[0])
    for group, number, index in steps:
        if current is None:
            return None
        tag = int(group + number, 16)
        meta = getattr(current, "file_meta", None)
        element = meta.get(tag) if tag >> 16 == 2 and meta is not None else current.get(tag)
        if element is None:
            return None
        if index:
            items = element.value or []
            current = items[int(index)] if int(index) < len(items) else None
            if current is None:
                return None
        else:
            current = None
    return element


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def _row_satisfied(row: dict[str, str], ds: Dataset, data: bytes | None, uids: UidMap) -> str | None:
    """None if the de-identified `ds` (and its bytes) satisfy the row, else a short failure reason."""
    check, value = row["check"], row["value"]
    if row["tag_path"].startswith("(7FE0,0010)") or row["tag_path"].startswith("(file") or \
            row["tag_path"] == "(path name)":
        return "file-level row but the file was released"
    element = _element(ds, row["tag_path"])
    if check.startswith("uid_changed"):
        if element is None or element.value in (None, ""):
            return None
        expected = [uids.remap(u) for u in value.split("\\")]
        got = [str(v) for v in (element.value if isinstance(element.value, (list, tuple)) or
                                type(element.value).__name__ == "MultiValue" else [element.value])]
        return None if got == expected else "UID not remapped consistently"
    if check == "removed_with_private_block":
        if element is None:
            return None
        decision = annex_e.lookup(int(element.tag), "LO", _text(element.value).strip(), frozenset(OPTIONS))
        return None if decision.action == "K" else "private creator kept for an unsafe block"
    if check.startswith("removed_unless_rtn_safe_priv"):
        return None  # rtn_safe_priv is on in this run: keeping it is allowed
    if element is not None:
        got = _text(element.value).strip(" \x00")
        original = value.strip(" \x00")
        if got and not value.startswith("<") and (got == original or (len(original) >= 4 and original in got)):
            return "value still present"
        size = re.match(r"<(\d+) bytes>", value)
        if size and isinstance(element.value, bytes) and len(element.value) == int(size.group(1)):
            return "binary value still present"
    if data is not None and row["grep_raw"] == "yes" and len(value) >= 6 and not value.startswith("<"):
        for encoding in ("utf-8", "latin-1"):
            with contextlib.suppress(UnicodeEncodeError):
                if value.strip().encode(encoding) in data:
                    return "value found in raw bytes"
    return None


def _releasable(run: Run) -> set[Path]:
    """Corpus files the answer key does not mark unreleasable, minus those that need an option or
    another modality (SR, documents, non-MR) and those the default quarantine rules hold back for
    their pixels (derived/secondary images); the leak gate must release every one of them."""
    from tui.core.deid.quarantine import quarantine_reason

    rows = [r for r in ROWS if not r["file"].endswith("DICOMDIR")]
    unreleasable = {r["file"] for r in rows if r["check"].startswith(("not_released", "pixels_hidden"))}
    files = set()
    for name in sorted({r["file"] for r in rows} - unreleasable):
        if not (CORPUS / name).is_file():  # rows about a folder name
            continue
        ds = pydicom.dcmread(CORPUS / name, stop_before_pixels=True, force=True)
        if "SOPClassUID" in ds and quarantine_reason(ds, {"MR"}, run.options) is None:
            files.add(CORPUS / name)
    return files


def test_run_finished_and_released_every_releasable_file(run: Run) -> None:
    # Issue 11: 0 leaks by releasing nothing is not the goal; every releasable file must come out.
    assert run.code == 0, "no participant fails and the gate holds nothing back (quarantine rules still do)"
    printed = " ".join(run.printed.split())  # the console may wrap a long line at its width
    assert "empty PatientID: pseudonym derived from the PatientName+PatientBirthDate" in printed
    assert "participant failed" not in printed
    releasable = _releasable(run)
    missing = sorted(str(p.relative_to(CORPUS)) for p in releasable if run.output_for(p) is None)
    assert not missing
    assert len(run.released) >= 15 and len(releasable) >= 15


def test_every_manifest_row_is_satisfied_by_the_cli_output(run: Run) -> None:
    uids = UidMap(run.secret)
    failures: Counter[str] = Counter()
    satisfied: Counter[str] = Counter()
    all_paths = [str(p.relative_to(run.out)).lower() for p in run.out.rglob("*")]
    for row in ROWS:
        source = run.corpus / row["file"]
        check = row["check"]
        if row["tag_path"] == "(path name)":
            ok = not any(row["value"].lower() in p for p in all_paths)
        elif source.is_dir() or not source.exists():
            ok = False
        else:
            output = run.output_for(source)
            if output is None:
                ok = True  # not released: nothing of it left the lab
            else:
                ds = pydicom.dcmread(output)
                problem = _row_satisfied(row, ds, output.read_bytes(), uids)
                ok = problem is None
                if problem:
                    failures[f"{check} | {row['file'].split('/')[-1]} {row['tag_path']}: {problem}"] += 1
        (satisfied if ok else failures)[check] += 1
    print("satisfied by check:", dict(satisfied))
    assert not failures, f"{sum(failures.values())} rows not satisfied: {dict(failures)}"
    assert sum(satisfied.values()) == len(ROWS)


@pytest.mark.parametrize("name", sorted({r["file"] for r in ROWS if not r["file"].endswith(("_19230405", "_JUERGEN"))}))
def test_engine_removes_what_the_rows_ask_even_for_held_back_files(run: Run, name: str) -> None:
    source = run.corpus / name
    try:
        ds = pydicom.dcmread(source, force=True)
    except Exception:
        assert run.output_for(source) is None
        return
    if "SOPInstanceUID" not in ds:
        assert run.output_for(source) is None
        return
    identifiers = identifiers_from_datasets([ds], frozenset(OPTIONS))
    ctx = DeidContext(frozenset(OPTIONS), "subtest", identifiers, run.secret, -1000, -3600)
    deidentify_dataset(ds, ctx)
    uids = UidMap(run.secret)
    problems = []
    for row in (r for r in ROWS if r["file"] == name):
        if row["tag_path"].startswith(("(7FE0,0010)", "(file", "(path")):
            continue
        problem = _row_satisfied(row, ds, None, uids)
        if problem:
            problems.append(f"{row['tag_path']} {row['check']}: {problem}")
    assert not problems, problems


def test_no_canary_in_released_bytes_or_paths(run: Run) -> None:
    canaries = _canaries(run.corpus)
    hits = []
    for path in run.out.rglob("*"):
        rel = str(path.relative_to(run.out))
        data = path.read_bytes() if path.is_file() else b""
        for canary in canaries:
            if canary.lower() in rel.lower():
                hits.append(f"{rel}: path")
            for encoding in ("utf-8", "latin-1"):
                with contextlib.suppress(UnicodeEncodeError):
                    if canary.encode(encoding) in data:
                        hits.append(f"{rel}: {encoding}")
    assert not hits, hits


def test_nothing_identifying_was_printed_or_logged(run: Run) -> None:
    text = run.printed.lower()
    found = [c for c in _canaries(run.corpus) if c.lower() in text]
    assert not found, found


def test_review_rows_are_scrubbed_or_held_back_and_the_reason_is_recorded(run: Run) -> None:
    for row in (r for r in ROWS if r["check"] == "review_not_in_E11"):
        output = run.output_for(run.corpus / row["file"])
        if output is None:
            reasons = [p.read_text() for p in (run.home / "data" / "quarantine").rglob("*.reason.txt")]
            assert reasons and all(r.strip() for r in reasons)
        else:
            element = _element(pydicom.dcmread(output), row["tag_path"])
            assert element is None or "Kanarienvogel" not in _text(element.value)
            records = [json.loads(line) for audit in (run.home / "data" / "audit").glob("*.jsonl")
                       for line in audit.read_text(encoding="utf-8").splitlines()]
            changes = {tuple(c) for r in records if r.get("output") == str(output.relative_to(run.out))
                       for c in r["changes"]}
            assert (row["tag_path"], "X") in changes, "the audit says what happened to the element"


def test_references_resolve_and_pixels_are_byte_identical(run: Run) -> None:
    folder = run.corpus / "files/synthetic/KANARIENVOGEL_ADELHEID_19230405"
    first = pydicom.dcmread(run.output_for(folder / "01_t1_mprage_sag/IM0001"))
    second = pydicom.dcmread(run.output_for(folder / "01_t1_mprage_sag/IM0002"))
    enhanced = pydicom.dcmread(run.output_for(folder / "02_ep2d_diff_enhanced/MR_enhanced_10frames.dcm"))
    new_uid = first.SOPInstanceUID
    assert new_uid.startswith("2.25.") and first.file_meta.MediaStorageSOPInstanceUID == new_uid
    assert second.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_uid
    shared = enhanced.SharedFunctionalGroupsSequence[0]
    assert shared.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_uid
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID
    for name in ("01_t1_mprage_sag/IM0001", "02_ep2d_diff_enhanced/MR_enhanced_10frames.dcm",
                 "08_odd_files/deflated_explicit_le.dcm", "08_odd_files/RAW_IMPLICIT_NO_META"):
        source = pydicom.dcmread(folder / name, force=True)
        assert pydicom.dcmread(run.output_for(folder / name)).PixelData == source.PixelData


def test_marking_and_shifted_intervals(run: Run) -> None:
    b = run.corpus / "files/synthetic/MUESSIGGAENGER_JUERGEN/PT000000"
    first = pydicom.dcmread(run.output_for(b / "ST000000/SE000000/IM000000"))
    second = pydicom.dcmread(run.output_for(b / "ST000001/SE000000/IM000000"))
    from datetime import date

    def day(text: str) -> date:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))

    assert abs((day(second.StudyDate) - day(first.StudyDate)).days) == 401
    assert first.StudyDate != "20230110"
    assert first.PatientIdentityRemoved == "YES"
    assert first.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = {item.CodeValue for item in first.DeidentificationMethodCodeSequence}
    safe_private = {"113111"} if "rtn_safe_priv" in run.options else set()
    assert codes == {"113100", "113107"} | safe_private
    assert first.PatientID == first.PatientName == second.PatientID
