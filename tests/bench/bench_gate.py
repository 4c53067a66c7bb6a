"""Benchmark: the leak gate's precision as well as its recall, on every real input this project has.

    PYTHONPATH=$PWD python tests/bench/bench_gate.py [--only NAME]

For every real series in ../shared/data (head-mri, multivendor incl. d2n_tiny, realworld), every
participant of the phi-corpus and every pydicom charset file it runs the de-identification stage
(default options, the gate on every file) and prints one row: files in, files releasable (by the
answer key where there is one: phi-corpus MANIFEST.csv), released, blocked by the gate, held back
for other reasons, and the gate's findings by class (blocking / not blocking). A participant that
fails as a whole counts all its files as held back, with the reason.

The charset files are secondary captures and CR: the quarantine rules for those are relaxed here
(as in their test) so that the gate itself is measured; the defaults stay everywhere else.
The pipeline-level figure (conversion, package gate) comes from ../shared/tools/share-real-series.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("MRISHARE_SHARED", REPO.parent / "shared")) / "data"
CORPUS = SHARED / "phi-corpus"
# Rows of the answer key that mark a file as not releasable, and files that need an option or are an index.
_UNRELEASABLE_CHECKS = ("not_released", "pixels_hidden_or_file_quarantined")
_NEEDS_OPTION = ("1.2.840.10008.5.1.4.1.1.88.", "1.2.840.10008.5.1.4.1.1.104.")  # SR (clean_struct_cont), documents


def real_series() -> list[tuple[str, Path]]:
    """(name, folder) of every real series, in the order share-real-series uses."""
    found = []
    for pattern in ("head-mri/*/dicom", "multivendor/*/dicom", "multivendor/d2n_tiny/*", "realworld/*"):
        found += sorted(p for p in SHARED.glob(pattern) if p.is_dir())
    return [(str(p.relative_to(SHARED)).removesuffix("/dicom"), p) for p in found]


def releasable_by_key() -> set[str]:
    """Corpus files (relative to phi-corpus) that the answer key lets the default run release."""
    rows = list(csv.DictReader((CORPUS / "MANIFEST.csv").open(encoding="utf-8")))
    blocked = {r["file"] for r in rows if r["check"].startswith(_UNRELEASABLE_CHECKS)}
    blocked |= {r["file"] for r in rows if r["sop_class"].startswith(_NEEDS_OPTION)}
    # The default allow-list is MR: other modalities need --modality (not counted as releasable).
    blocked |= {r["file"] for r in rows if r["modality"] and r["modality"] != "MR"}
    files = {str(p.relative_to(CORPUS)) for p in (CORPUS / "files").rglob("*") if p.is_file()}
    return {f for f in files - blocked if f in {r["file"] for r in rows} and not f.endswith("DICOMDIR")}


def run_folder(folder: Path, out: Path, as_participant: bool, options: frozenset[str]) -> list[dict]:
    """De-identify every participant under `folder` under `options`; one row of counts per participant."""
    from tui.core.deid.deidentify import DeidSettings, deidentify_participant
    from tui.core.dicom.scan import scan
    from tui.core.errors import MrishareError
    from tui.core.events import drain

    rows = []
    for participant in scan(folder, as_participant=as_participant).participants:
        files = participant.files + len(participant.misfiled)
        row = {"files": files, "released": [], "blocked": 0, "held": 0, "findings": Counter(), "failed": ""}
        try:
            result = drain(deidentify_participant(participant, out, DeidSettings(options, quarantine_dir=out / "q")))
        except MrishareError as error:
            row["held"], row["failed"] = files, error.reason
            rows.append(row)
            continue
        row["released"] = [str(p) for p in result.released]
        row["blocked"] = sum(1 for _, reason in result.quarantined if reason.startswith("leak gate"))
        row["held"] = files - len(result.released) - row["blocked"]
        for leak in result.leaks:
            row["findings"][f"{'block' if getattr(leak, 'blocks', True) else 'note'}:{leak.kind}"] += 1
        for note in getattr(result, "notes", ()):
            row["findings"][f"note:{note.split(' equals')[0].split(':')[0]}"] += 1
        rows.append(row)
    return rows


def sources_of(rows: list[dict], corpus_files: Path) -> set[str]:
    """Corpus files that were released, found by their remapped SOPInstanceUID."""
    import pydicom

    from tui.core.config import site_secret
    from tui.core.dicom.uidmap import UidMap

    released = set()
    for row in rows:
        for path in row["released"]:
            released.add(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID))
    uid_map, names = UidMap(site_secret()), set()
    for path in corpus_files.rglob("*"):
        try:
            uid = str(pydicom.dcmread(path, stop_before_pixels=True, force=True).get("SOPInstanceUID", ""))
        except Exception:
            continue
        if uid and uid_map.remap(uid) in released:
            names.add(str(path.relative_to(CORPUS)))
    return names


def summary(name: str, rows: list[dict], releasable: int | str, files: int | None = None) -> str:
    """One table row for a series or corpus."""
    findings: Counter = Counter()
    for row in rows:
        findings.update(row["findings"])
    failed = "; ".join(sorted({r["failed"] for r in rows if r["failed"]}))
    shown = ", ".join(f"{k} {v}" for k, v in sorted(findings.items())) or "-"
    released = sum(len(r["released"]) for r in rows)
    blocked = sum(r["blocked"] for r in rows)
    held = sum(r["held"] for r in rows) if files is None else files - released - blocked
    total = files if files is not None else sum(r["files"] for r in rows)
    return (f"| {name} | {total} | {releasable} | {released} | {blocked} | {held} | {shown}"
            + (f" (failed: {failed})" if failed else "") + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only inputs whose name contains this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        os.environ["MRISHARE_HOME"] = str(Path(tmp) / "home")
        from tui.core.deid import deidentify
        from tui.core.deid.deidentify import quiet_pydicom
        from tui.core.presets import DEID_OPTIONS, PRESETS

        share = PRESETS["participant-copy"].options  # what `mrishare share` uses by default
        print(f"real series and charset files: options {sorted(share)}; phi-corpus: {sorted(DEID_OPTIONS)} "
              "(as `mrishare deid`)\n")

        print("| input | files in | releasable | released | blocked by gate | held (other) | findings |")
        print("|---|---|---|---|---|---|---|")
        with quiet_pydicom():
            for index, (name, folder) in enumerate(real_series()):
                if args.only in name:
                    print(summary(name, run_folder(folder, Path(tmp) / f"s{index}", True, share), "all"), flush=True)
            if args.only in "phi-corpus":
                rows = run_folder(CORPUS / "files", Path(tmp) / "corpus", False, DEID_OPTIONS)
                key = releasable_by_key()
                released = sources_of(rows, CORPUS / "files")
                total = sum(1 for p in (CORPUS / "files").rglob("*") if p.is_file())
                print(summary("phi-corpus", rows, len(key), total), flush=True)
                print(f"\nphi-corpus: {len(released & key)} of {len(key)} releasable files released; "
                      f"{len(released - key)} released that the key does not count as releasable: "
                      f"{sorted(released - key)}; not released: {sorted(key - released)}\n")
            if args.only in "charset":
                import pydicom.data

                rules, deidentify.quarantine_reason = deidentify.quarantine_reason, lambda *a: None
                try:
                    rows = []
                    for index, name in enumerate(sorted(pydicom.data.get_charset_files())):
                        one = Path(tmp) / f"cs{index}"
                        one.mkdir()
                        (one / Path(name).name).write_bytes(Path(name).read_bytes())
                        rows += run_folder(one, Path(tmp) / f"cso{index}", True, share)
                    print(summary("pydicom charset files (quarantine rules relaxed)", rows, len(rows)), flush=True)
                finally:
                    deidentify.quarantine_reason = rules
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
