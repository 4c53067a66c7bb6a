"""Conversion per series: bare dcm2niix CLI vs our default path vs our dicom2nifti path, same run.

Run: python tests/bench/bench_convert.py [--repeat 3] [--only NAME]
Each measurement is a fresh process. Time: the bare CLI's wall time; for our paths the time of
`convert_series` inside the process: median of 3 after one warm-up (imports and pydicom's lazy
first-call set-up excluded: a batch pays them once), plus the process's total wall time.
Memory: peak RSS of the process tree (wait4 ru_maxrss: the largest of the process and the
children it waited for). Median of --repeat runs.
The bare CLI writes .nii.gz + BIDS .json (`-z y`), as ours do. Target (issue 4): ours <= 1.5x bare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("MRISHARE_SHARED", REPO.parent / "shared")) / "data"
SERIES = {
    "philips-3d-t1-170": DATA / "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/dicom",
    "siemens-enhanced-96": DATA / "head-mri/siemens_prisma_xa30_mprage_2mm/dicom",
    "ge-3d-t1-130": DATA / "multivendor/ge_signa_pioneer_3d_t1_mprage_130sl/dicom",
    "siemens-2d-t1-35": DATA / "multivendor/siemens_prisma_t1_fl2d_sag_35sl/dicom",
    "ge-4": DATA / "multivendor/d2n_tiny/ge_mr750_4sl",
    "hitachi-4": DATA / "multivendor/d2n_tiny/hitachi_echelon_4sl_implicitvr",
    "philips-4": DATA / "multivendor/d2n_tiny/philips_intera_4sl_implicitvr",
    "siemens-4": DATA / "multivendor/d2n_tiny/siemens_triotim_4sl",
}
OURS = """
import json, sys, time
from pathlib import Path
from tui.core.events import drain
from tui.core.nifti.conversion import SeriesInput, convert_series
src, out, engine = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
files = sorted(p for p in src.iterdir() if p.is_file() and p.name != "LICENSE")
drain(convert_series([SeriesInput("s", files)], out / "warm-up", "bench", engine=engine))  # lazy imports
times = []
for run in range(3):
    start = time.perf_counter()
    results = drain(convert_series([SeriesInput("s", files)], out / f"timed-{run}", "bench", engine=engine))
    times.append(time.perf_counter() - start)
    assert results and hasattr(results[0], "nifti"), results
print(json.dumps({"seconds": sorted(times)[1]}))
"""


def measure(command: list[str]) -> tuple[float, float, float | None]:
    """(wall seconds, peak RSS MB of the process tree, seconds the process reported or None)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    output = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}")
    reported = json.loads(output.splitlines()[-1])["seconds"] if command[0] == sys.executable else None
    return wall, usage.ru_maxrss / 1024, reported


def run_once(method: str, source: Path) -> tuple[float, float, float | None]:
    """One conversion of `source` by `method` into a fresh temporary folder."""
    import dcm2niix

    out = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        if method == "bare dcm2niix":
            return measure([dcm2niix.bin, "-z", "y", "-f", "s", "-o", str(out), str(source)])
        engine = "dcm2niix" if method == "ours default" else "dicom2nifti"
        return measure([sys.executable, "-c", OURS, str(source), str(out), engine])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=sorted(SERIES), action="append")
    args = parser.parse_args()
    methods = ("bare dcm2niix", "ours default", "ours dicom2nifti")
    print(f"{'series':22} {'method':17} {'convert s':>9} {'process s':>9} {'peak MB':>8} {'x bare':>7}")
    worst = 0.0
    totals: dict[str, list[float]] = {m: [] for m in methods}
    for name in args.only or SERIES:
        medians = {}
        for method in methods:
            runs = [run_once(method, SERIES[name]) for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in runs)
            inner = statistics.median(r[2] if r[2] is not None else r[0] for r in runs)
            memory = max(r[1] for r in runs)
            medians[method] = inner
            totals[method].append(inner)
            ratio = inner / medians["bare dcm2niix"]
            if method == "ours default":
                worst = max(worst, ratio)
            print(f"{name:22} {method:17} {inner:9.3f} {wall:9.3f} {memory:8.0f} {ratio:7.2f}")
    total = sum(totals["ours default"]) / sum(totals["bare dcm2niix"])
    print(f"all series together, default path / bare dcm2niix: {total:.2f} (target <= 1.5: "
          f"{'OK' if total <= 1.5 else 'OVER'}); worst single series: {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
