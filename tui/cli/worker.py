"""`mrishare worker --pipeline NAME='COMMAND {inputs} {outdir}'`: the processing side of cloud jobs (issue 14)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType

from tui.cli.output import stderr, stdout


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `worker`."""
    worker = subparsers.add_parser(
        "worker", help="run submitted processing jobs: poll the inbox on Nextcloud, run, send results back",
        description="Poll <processing_path>/inbox on Nextcloud, claim each job of a named pipeline, check its "
                    "inputs' SHA-256, run the command and upload what it wrote to outbox/<job-id>/ with "
                    "result.json. Stop with Ctrl-C or SIGTERM.")
    worker.add_argument("--pipeline", action="append", required=True, metavar="NAME='COMMAND {inputs} {outdir}'",
                        help="a pipeline this worker runs; {inputs} becomes the input images, {outdir} the folder "
                             "whose files are sent back (repeat for several pipelines)")
    worker.add_argument("--credentials", type=Path, default=None, help="credentials.json of the processing account")
    worker.add_argument("--state", type=Path, default=None,
                        help="the worker's own folder: its id, claims and scratch space (default: data folder/worker)")
    worker.add_argument("--time-limit", type=float, default=3600.0, metavar="SECONDS",
                        help="stop a command after this long; the job fails (default 3600)")
    worker.add_argument("--poll", type=float, default=5.0, metavar="SECONDS", help="seconds between inbox looks")
    worker.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    """Run until Ctrl-C or SIGTERM; every claim and answer is one line on stdout."""
    from tui.core.config import data_dir
    from tui.core.credentials import load_credentials
    from tui.core.delivery.processing import job_folder
    from tui.core.delivery.worker import Worker, parse_pipeline
    from tui.core.errors import MrishareError

    pipelines = dict(parse_pipeline(spec) for spec in args.pipeline)
    if args.time_limit <= 0 or args.poll <= 0:
        raise MrishareError("--time-limit and --poll must be positive")
    folder = job_folder(load_credentials(args.credentials))
    worker = Worker(folder, pipelines, args.state or data_dir() / "worker", args.time_limit, args.poll)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        stderr.print("mrishare worker: stopping (a running command is stopped and its job failed)", markup=False,
                     soft_wrap=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stdout.print(f"worker {worker.id}: pipelines {', '.join(pipelines)}; watching "
                 f"{folder.store.root or '/'}/inbox every {args.poll:g} s", markup=False, soft_wrap=True)
    try:
        for note in worker.run(stop):
            stdout.print(f"job {note.job_id}: {note.text}" if note.job_id else note.text, markup=False,
                         soft_wrap=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        folder.store.close()
    stdout.print(f"worker {worker.id}: stopped", markup=False, soft_wrap=True)
    return 0
