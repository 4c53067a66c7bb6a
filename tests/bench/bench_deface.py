"""Defacing budget: <= 30 s and <= 2 GB RAM per 1 mm T1 on 2 cores (issue 4).

Run: python tests/bench/bench_deface.py [NIFTI ...] [--threads 2]
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
DEFAULT = REPO.parent / "shared/data/head-mri/philips_ingenia_elitionx_adni_mprage_1mm/nifti/adni_sag3d_mprage_dicom2nifti.nii.gz"
JOBS = ("copy", "reface", "deface", "facecheck-deface", "facecheck-reface")


def run_one(job: str, nifti: Path, work: Path, threads: int) -> dict:
    """Run one job in this process; return wall/CPU seconds and peak RSS."""
    import nibabel as nib
    import SimpleITK as sitk

    from tui.core.deface import deface
    from tui.core.events import drain
    from tui.core.facecheck import face_check

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


def main() -> None:
    """Measure every job on every NIfTI and print a table with the ratio to the I/O floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nifti", nargs="*", type=Path, default=[DEFAULT])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("JOB", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
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
