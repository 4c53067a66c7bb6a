"""One demo participant from DICOM folder to link: per-stage seconds, folder and stand-in Nextcloud.

Run: python tests/bench/bench_pipeline.py [--preset participant-copy|research] [--repeat 2]
Target (issue 5): <= 60 s per participant on this 2-core machine. For scale, the same run also
times the bare reference tools on the same participant: dcm2niix on the T1 folder and `7z a`
(AES-256, store) on the finished package, so a noisy machine shows in both columns.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from nextcloud_standin import StandinNextcloud

from tui.core.credentials import parse_credentials
from tui.core.delivery.ledger import Ledger
from tui.core.demo import make_demo_study
from tui.core.dicom.scan import scan
from tui.core.events import Event, StepFinished, StepStarted, drain
from tui.core.pipeline import STAGES, PipelineSettings, run_batch

USER, PASSWORD = "bench", "bench-app-password-0123456789"


def timed_run(study: Path, work: Path, dest: str, preset: str, credentials=None) -> dict[str, float]:
    """Seconds per stage and in total for one pipeline run into a fresh ledger."""
    started: dict[str, float] = {}
    spent: dict[str, float] = defaultdict(float)

    def on_event(event: Event) -> None:
        if isinstance(event, StepStarted):
            started[event.step] = time.perf_counter()
        elif isinstance(event, StepFinished) and event.step in started:
            spent[event.step] += time.perf_counter() - started.pop(event.step)

    settings = PipelineSettings(destination=dest, work_dir=work / "work", preset=preset, credentials=credentials)
    begin = time.perf_counter()
    participants = scan(study).participants
    spent["scan"] = time.perf_counter() - begin
    with Ledger.open(work / "share-list.xlsx") as ledger:
        result = drain(run_batch(participants, settings, ledger), on_event)
    spent["total"] = time.perf_counter() - begin
    if result.failed:
        raise SystemExit(f"pipeline failed: {result.failed}")
    return dict(spent)


def reference_seconds(study: Path, work: Path) -> dict[str, float]:
    """Bare dcm2niix on the participant's largest series and 7z AES on a package-sized copy."""
    from dcm2niix import bin as dcm2niix_bin  # the PyPI wheel's static binary

    participant = scan(study).participants[0]
    t1 = max(participant.series(), key=lambda s: s.slices)
    src = work / "ref-dicom"
    src.mkdir()
    for f in t1.files:
        os.symlink(f, src / f.name)
    out = work / "ref-nii"
    out.mkdir()
    begin = time.perf_counter()
    subprocess.run([dcm2niix_bin, "-z", "y", "-o", str(out), str(src)], capture_output=True, check=True)
    conv = time.perf_counter() - begin
    begin = time.perf_counter()
    subprocess.run(["7z", "a", "-tzip", "-mem=AES256", "-mx=0", "-pbench-words-here", str(work / "ref.zip"),
                    str(out)], capture_output=True, check=True)
    return {"dcm2niix T1": conv, "7z AES T1": time.perf_counter() - begin}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="participant-copy", choices=("participant-copy", "research"))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        root = Path(tmp)
        os.environ["MRISHARE_HOME"] = str(root / "home")
        drain(make_demo_study(root / "study", participants=1, seed=3))
        rows: list[tuple[str, dict[str, float]]] = []
        with StandinNextcloud(users={USER: PASSWORD}) as server:
            creds = parse_credentials({"destination": "nextcloud", "nextcloud_baseurl": server.base_url,
                                       "username": USER, "password": PASSWORD, "remote_path": "bench"},
                                      root / "c.json")
            for n in range(args.repeat):
                for kind in ("folder", "nextcloud"):
                    work = root / f"{kind}-{n}"
                    (work / "outbox").mkdir(parents=True)
                    dest = f"folder:{work / 'outbox'}" if kind == "folder" else "nextcloud"
                    rows.append((kind, timed_run(root / "study", work, dest, args.preset,
                                                 creds if kind == "nextcloud" else None)))
                    ref = root / f"ref-{kind}-{n}"
                    ref.mkdir()
                    rows[-1][1].update(reference_seconds(root / "study", ref))
                    shutil.rmtree(work / "work", ignore_errors=True)
        columns = ["scan", *STAGES, "total", "dcm2niix T1", "7z AES T1"]
        print(f"preset {args.preset}; seconds per stage (one demo participant, 209 files)")
        print(f"{'destination':<12}" + "".join(f"{c:>12}" for c in columns))
        for kind, spent in rows:
            print(f"{kind:<12}" + "".join(f"{spent.get(c, 0.0):>12.2f}" for c in columns))
        worst = max(spent["total"] for _, spent in rows)
        print(f"worst total {worst:.1f} s (target <= 60 s): {'ok' if worst <= 60 else 'OVER'}")


if __name__ == "__main__":
    main()
