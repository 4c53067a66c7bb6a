"""Packing speed on .nii.gz: mrishare's AES-256 package vs 7-Zip AES-256 and Info-ZIP ZipCrypto.

Copies the head-mri NIfTI files ~10x (about 150 MB) into a temp folder, then times, in one run:
  ours      build_package(mode="aes"): pack (SHA-256 of each member) + the check after writing (one read of
            the zip: each member's HMAC, the manifest, the SHA-256 of the zip)
  ours-pack the same run up to the end of the 'pack' step (writing only)
  7z        7z a -tzip -mem=AES256 -mx=0 -p... (stored, AES-256; no verify)
  zip       zip -0 -r -P ... (stored, ZipCrypto; no verify)
  pyzipper  bare pyzipper.AESZipFile, the same files stored with AES-256 (no verify, no hash): the library floor
Run:  python tests/bench/bench_pack.py [--copies 10] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tui.core.delivery.package import build_package
from tui.core.delivery.passphrase import generate
from tui.core.events import StepFinished, drain

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "head-mri"


def make_input(root: Path, copies: int) -> tuple[Path, int]:
    """A sub-bench folder with `copies` copies of every head-mri NIfTI."""
    src = root / "sub-bench" / "anat"
    src.mkdir(parents=True)
    for i in range(copies):
        for nii in sorted(DATA.glob("*/nifti/*.nii.gz")):
            shutil.copyfile(nii, src / f"run-{i:02d}_{nii.name}")
    return src.parent, sum(p.stat().st_size for p in src.iterdir())


def time_ours(src: Path, out: Path) -> tuple[float, float]:
    """Seconds for the pack step alone and for the whole build (pack + verify + hash)."""
    phrase = generate("en")
    start = time.perf_counter()
    marks: dict[str, float] = {}

    def note(event: object) -> None:
        if isinstance(event, StepFinished):
            marks[event.step] = time.perf_counter() - start

    drain(build_package(src, out, phrase), note)
    return marks["pack"], time.perf_counter() - start


def time_pyzipper(src: Path, out: Path) -> float:
    """Seconds for bare pyzipper writing the same files, stored, AES-256."""
    import pyzipper

    start = time.perf_counter()
    with pyzipper.AESZipFile(out, "w", compression=pyzipper.ZIP_STORED, encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"bench-pass-word")
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(src.parent).as_posix())
    return time.perf_counter() - start


def time_cmd(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs per tool")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pack-") as tmp:
        root = Path(tmp)
        src, total = make_input(root, args.copies)
        mb = total / 1e6
        best: dict[str, float] = {}
        for run in range(args.repeat):
            pack, whole = time_ours(src, root / f"ours{run}.zip")
            best["ours (pack+verify)"] = min(best.get("ours (pack+verify)", 1e9), whole)
            best["ours (pack only)"] = min(best.get("ours (pack only)", 1e9), pack)
            t = time_cmd(["7z", "a", "-tzip", "-mem=AES256", "-mx=0", "-pbench-pass-word", str(root / f"7z{run}.zip"),
                          src.name], root)
            best["7z AES-256 -mx=0"] = min(best.get("7z AES-256 -mx=0", 1e9), t)
            t = time_cmd(["zip", "-q", "-0", "-r", "-P", "bench-pass-word", str(root / f"zip{run}.zip"), src.name],
                         root)
            best["zip -0 ZipCrypto"] = min(best.get("zip -0 ZipCrypto", 1e9), t)
            best["bare pyzipper"] = min(best.get("bare pyzipper", 1e9), time_pyzipper(src, root / f"pz{run}.zip"))
            for f in root.glob("*.zip"):
                f.unlink()
        ref = best["7z AES-256 -mx=0"]
        print(f"input: {mb:.1f} MB of .nii.gz in {len(list(src.rglob('*.nii.gz')))} files; best of {args.repeat}")
        for name, secs in best.items():
            print(f"{name:20s} {secs:6.2f} s  {mb / secs:7.1f} MB/s  ratio vs 7z {ref / secs:5.2f}")
        print(f"ours (pack+verify) vs bare pyzipper: {best['bare pyzipper'] / best['ours (pack+verify)']:.1%}")


if __name__ == "__main__":
    main()
