"""Defacing budget: <= 30 s and <= 2 GB RAM per 1 mm T1 on 2 cores (issue 4); reface distances (issue 13).

Run: python tests/bench/bench_deface.py [NIFTI ...] [--threads 2]
     python tests/bench/bench_deface.py --distances [--cache DIR]
The second prints, for both shared heads, the face-recogniser distance between the original and the
refaced head in each of the 9 front views, and the distance between the two different people's
heads (per view and median): reface must reach >= 0.6 in every view and a median >= the people's.
Refaced heads are kept in --cache (default /tmp/mrishare-bench-deface) and reused: delete to remeasure.
Each measurement runs in a fresh child process (peak RSS is per run). The reference tool, pydeface,
needs FSL's flirt and cannot be installed from PyPI, so the baseline printed beside each run is the
I/O floor: loading the NIfTI and writing it back with nibabel. Times are wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DEFAULT = (REPO.parent / "shared/data/head-mri/philips_ingenia_elitionx_adni_mprage_1mm/nifti"
           / "adni_sag3d_mprage_dicom2nifti.nii.gz")
JOBS = ("copy", "reface", "deface", "facecheck-deface", "facecheck-reface")


def run_one(job: str, nifti: Path, work: Path, threads: int) -> dict:
    """Run one job in this process; return wall/CPU seconds and peak RSS."""
    import nibabel as nib
    import SimpleITK as sitk

    from tui.core.events import drain
    from tui.core.nifti.deface import deface
    from tui.core.nifti.facecheck import face_check

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    start, cpu = time.perf_counter(), time.process_time()
    extra = ""
    if job == "copy":
        img = nib.load(nifti)
        nib.save(nib.Nifti1Image(img.get_fdata(dtype="float32").astype(img.get_data_dtype()), img.affine, img.header),
                 work / "copy.nii.gz")
    elif job in ("reface", "deface"):
        result = drain(deface(nifti, work / f"{job}.nii.gz", job))
        extra = f"head Dice {result.metric:.3f}, {result.brain_voxels_changed} brain voxels changed"
    else:
        mode = job.split("-")[1]
        check = face_check(work / f"{mode}.nii.gz", mode, original=nifti)
        extra = f"faces in {sum(1 for v in check.per_view if v.faces)}/9 views, passed={check.passed}"
    return {"job": job, "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "extra": extra}


def distances(cache: Path) -> None:
    """Print the per-view distances original vs refaced for each shared head, and between the heads."""
    import numpy as np

    from tests.core.heads import HEADS
    from tui.core.events import drain
    from tui.core.nifti.deface import deface
    from tui.core.nifti.facecheck import SAME_PERSON, face_check, view_descriptors

    shared = REPO.parent / "shared" / "data"
    cache.mkdir(parents=True, exist_ok=True)
    people = [None if a is None or b is None else float(np.linalg.norm(a - b))
              for a, b in zip(*(view_descriptors(shared / HEADS[h]) for h in sorted(HEADS)), strict=True)]
    found = [d for d in people if d is not None]
    bar = float(np.median(found))
    print(f"between the two people ({' vs '.join(sorted(HEADS))}): {_row(people)}  median {bar:.3f}")
    for head in sorted(HEADS):
        refaced = cache / f"{head}_reface.nii.gz"
        if not refaced.exists():
            drain(deface(shared / HEADS[head], refaced, "reface"))
        check = face_check(refaced, "reface", original=shared / HEADS[head])
        per_view = [v.to_original for v in check.per_view]
        measured = check.distances()
        median = float(np.median(measured)) if measured else float("nan")
        verdict = "OK" if measured and min(measured) >= SAME_PERSON and median >= bar else "NOT A STRANGER"
        print(f"{head:8} original vs refaced: {_row(per_view)}  median {median:.3f}  "
              f"views < {SAME_PERSON}: {sum(d < SAME_PERSON for d in measured)}  {verdict}")


def _row(values: list) -> str:
    """Nine distances (- where a view had no face)."""
    return " ".join("  -  " if v is None else f"{v:.3f}" for v in values)


def main() -> None:
    """Measure every job on every NIfTI and print a table with the ratio to the I/O floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nifti", nargs="*", type=Path, default=[DEFAULT])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("JOB", "WORK"), help=argparse.SUPPRESS)
    parser.add_argument("--distances", action="store_true", help="reface face-recogniser distances (issue 13)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mrishare-bench-deface")
    args = parser.parse_args()
    if args.distances:
        distances(args.cache)
        return
    if args.one:
        print(json.dumps(run_one(args.one[0], args.nifti[0], Path(args.one[1]), args.threads)))
        return
    for nifti in args.nifti:
        print(f"\n{nifti.name} ({args.threads} threads)")
        print(f"{'job':18} {'wall s':>7} {'cpu s':>7} {'peak MB':>8} {'x floor':>8}  notes")
        with tempfile.TemporaryDirectory() as work:
            floor = None
            for job in JOBS:
                out = subprocess.run([sys.executable, __file__, str(nifti), "--threads", str(args.threads),
                                      "--one", job, work], capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                floor = floor or row["wall"]
                print(f"{job:18} {row['wall']:7.1f} {row['cpu']:7.1f} {row['rss_mb']:8.0f} "
                      f"{row['wall'] / floor:8.1f}  {row['extra']}")
    print("\nbudget: reface/deface <= 30 s wall and <= 2048 MB peak per 1 mm T1 on 2 cores")


if __name__ == "__main__":
    main()
