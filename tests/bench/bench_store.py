"""C-STORE throughput: `dicom_net.store` vs dcmtk's `storescu` sending the same files to the same Orthanc.

Run: python tests/bench/bench_store.py [--repeat 3] [--folder DIR]
Default files: the Philips head series (170 slices, 24 MB) from ../shared/data. Orthanc keeps its
database in /dev/shm when available and is emptied before every run; runs alternate between the
two senders. Prints the median MB/s and files/s of both and the ratio (ours / storescu).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import DATA
from orthanc import Orthanc

from tui.core.events import drain
from tui.core.net import dicom_net
from tui.core.net.nodes import DicomNode

HEAD = DATA / "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/dicom"
OUR_AE = "MRISHARE"


def storescu(pacs: Orthanc, files: list[Path]) -> float:
    """Seconds for one `storescu` run over all files (one association)."""
    start = time.perf_counter()
    subprocess.run(["storescu", "-aet", OUR_AE, "-aec", pacs.aet, "127.0.0.1", str(pacs.dicom_port),
                    *map(str, files)], check=True, capture_output=True)
    return time.perf_counter() - start


def ours(node: DicomNode, files: list[Path]) -> float:
    """Seconds for `dicom_net.store` over all files (one association)."""
    start = time.perf_counter()
    result = drain(dicom_net.store(node, files))
    elapsed = time.perf_counter() - start
    assert result.ok, result.failed[:3]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=HEAD, help="folder of DICOM files to send")
    args = parser.parse_args()
    if shutil.which("storescu") is None:
        print("storescu not found (Debian package dcmtk)", file=sys.stderr)
        return 2
    files = dicom_net.dicom_files(args.folder)
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    storage = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    print(f"{len(files)} files, {size_mb:.1f} MB to Orthanc on 127.0.0.1, median of {args.repeat}")
    # dcmtk (inside Orthanc) leaves Nagle on unless TCP_NODELAY=1; then each C-STORE response waits
    # for a delayed ACK (~40 ms a file) and both senders measure mostly that wait. Both setups are shown.
    for label, env in (("Orthanc as installed", None), ("Orthanc with TCP_NODELAY=1", {"TCP_NODELAY": "1"})):
        with Orthanc("BENCH", storage=storage, env=env) as pacs:
            node = DicomNode("bench", pacs.aet, "127.0.0.1", pacs.dicom_port, our_ae_title=OUR_AE)
            times: dict[str, list[float]] = {"storescu": [], "ours": []}
            for _ in range(args.repeat):  # alternating, so both see the same machine load
                for name, values in times.items():
                    pacs.clear()
                    values.append(storescu(pacs, files) if name == "storescu" else ours(node, files))
                    assert len(pacs.rest("/instances")) == len(files)
        print(label)
        medians = {}
        for name, values in times.items():
            medians[name] = statistics.median(values)
            print(f"  {name:9}: {size_mb / medians[name]:7.1f} MB/s  {len(files) / medians[name]:7.1f} files/s  "
                  f"({', '.join(f'{t:.2f}' for t in values)} s)")
        print(f"  ratio ours/storescu (throughput): {medians['storescu'] / medians['ours']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
