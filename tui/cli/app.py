"""`mrishare app [STUDY_DIR]` / `mrishare open STUDY_DIR`: the interactive app (also plain `mrishare`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_app_parser() -> argparse.ArgumentParser:
    """A parser for the app's options alone."""
    p = argparse.ArgumentParser(prog="mrishare app")
    p.add_argument("study_dir", nargs="?", type=Path, metavar="STUDY_DIR")
    add_app_options(p)
    return p


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `app` and `open` commands."""
    for name, nargs, text in (
        ("app", "?", "open the interactive app (optionally scanning STUDY_DIR)"),
        ("open", None, "open the interactive app on STUDY_DIR"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("study_dir", nargs=nargs, type=Path, metavar="STUDY_DIR")
        add_app_options(p)
        p.set_defaults(handler=run_app)


def add_app_options(p: argparse.ArgumentParser) -> None:
    """--no-mouse plus the pipeline options (--ledger, --dest, --preset, ...) of `mrishare batch`."""
    from tui.cli.batch import add_pipeline_arguments

    p.add_argument("--no-mouse", action="store_true", help="leave the mouse to the terminal (text selection works)")
    add_pipeline_arguments(p)


def run_app(args: argparse.Namespace) -> int:
    """Start the Textual app with the chosen study folder and ledger."""
    from tui.app.app import TuiApp
    from tui.app.services import Services
    from tui.cli.batch import settings_from

    if not hasattr(args, "study_dir"):  # plain `mrishare`: the defaults of `mrishare app`
        args = build_app_parser().parse_args([])
    services = Services(settings=settings_from(args))
    if args.ledger is not None:
        services.ledger_path = args.ledger
    study = args.study_dir
    TuiApp(services, study_dir=study.resolve() if study else None).run(mouse=not getattr(args, "no_mouse", False))
    return 0
