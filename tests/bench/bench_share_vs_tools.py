"""The whole `mrishare share` of one real head against the same work chained by hand (issue 20, point 3).

By hand: dicognito (de-identify into a new folder) -> dcm2niix (gzipped NIfTI) -> `7z a` AES-256 zip -> `7z t`.
mrishare does more (leak gate, previews, viewer, README, manifest, passphrase page, ledger, journal), so the
question is only whether it is slower in wall-clock time. Runs alternate (tools, share, tools, share, ...) so a
busy machine weighs on both; the median is printed. Defacing is off on both sides (the tools have none).

Run:  python tests/bench/bench_share_vs_tools.py [--head siemens_prisma_xa30_mprage_2mm] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "head-mri"
BIN = Path(sys.executable).parent
PHRASE = "apple-river-stone-cloud-seven"


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(a) for a in args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env)


def by_hand(dicom: Path, work: Path) -> float:
    """Seconds for dicognito + dcm2niix + 7z a (AES-256) + 7z t on a fresh copy of `dicom`."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "nifti").mkdir(parents=True)
    shutil.copytree(dicom, work / "dicom")
    started = time.perf_counter()
    # `python -m`: the dicognito 0.19 console script is broken (its main() wants an argument)
    run(sys.executable, "-m", "dicognito", "--output-directory", work / "anon", work / "dicom")
    run(BIN / "dcm2niix", "-z", "y", "-o", work / "nifti", work / "anon")
    run("7z", "a", "-tzip", "-mem=AES256", f"-p{PHRASE}", work / "out.zip", work / "nifti")
    run("7z", "t", f"-p{PHRASE}", work / "out.zip")
    return time.perf_counter() - started


def share(dicom: Path, work: Path) -> float:
    """Seconds for `mrishare share` (the CLI, start-up included) into a local folder, defacing off."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "outbox").mkdir(parents=True)
    env = {**os.environ, "MRISHARE_HOME": str(work / "home"), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    run(BIN / "mrishare", "share", dicom, "--deface", "off", "--dest", f"folder:{work / 'outbox'}",
        "--ledger", work / "share-list.xlsx", env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", default="siemens_prisma_xa30_mprage_2mm")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dicom = DATA / args.head / "dicom"
    tools, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            tools.append(by_hand(dicom, Path(tmp) / "tools"))
            ours.append(share(dicom, Path(tmp) / "share"))
    print(f"{args.head}: by hand {statistics.median(tools):.2f} s {[round(t, 2) for t in tools]} | mrishare share "
          f"{statistics.median(ours):.2f} s {[round(t, 2) for t in ours]} | ratio "
          f"{statistics.median(ours) / statistics.median(tools):.2f}")


if __name__ == "__main__":
    main()
