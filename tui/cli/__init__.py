"""Command line: `mrishare` with no arguments opens the app; subcommands run headless.

Each module in this package that defines `register(subparsers)` adds its own
subcommands, so commands live next to nothing but their argument parsing.
Building the parser imports every command module, so they import heavy core modules
(pydicom, NIfTI, defacing, ledger, networking) inside their handlers, and take argument
choices from light modules (`tui.core.presets`, `tui.core.dicom.annex_e.OPTIONS`);
tests/test_startup.py guards this.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

from tui import __version__
from tui.core.errors import MrishareError


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command module's subcommands registered."""
    parser = argparse.ArgumentParser(
        prog="mrishare",
        description="Hand participants their own MRI data, de-identified, encrypted and shared.",
    )
    parser.add_argument("--version", action="version", version=f"mrishare {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def quiet_library_warnings() -> None:
    """Keep pydicom's UserWarnings (a value longer than its VR allows, an odd character set) off the terminal.

    pydicom copes with such values and the scan, inspection and de-identification report what
    matters as one line; a raw `valuerep.py:440: UserWarning` breaks the app's screen and the CLI's log.
    """
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the chosen command, and turn every error into one line on stderr.

    Known errors (MrishareError, OS errors) are the line; anything else is a bug: the line names
    only its type and the report file (traceback, in the data folder, mode 0600), never a value.
    """
    from tui.core.safetext import ESCAPE_ERRORS, crash_report, disk_error

    for stream in (sys.stdout, sys.stderr):  # a file name with undecodable bytes prints as \xNN
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=ESCAPE_ERRORS)
    quiet_library_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        from tui.cli.app import run_app  # no command: open the app

        handler = run_app
    try:
        return int(handler(args) or 0)
    except MrishareError as error:
        print(f"mrishare: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("mrishare: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        print(f"mrishare: {disk_error(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        print(f"mrishare: internal error ({type(error).__name__}); {crash_report(error)}", file=sys.stderr)
        return 3

