"""`python -m tui` runs the command line.

`-m` puts the working folder first on `sys.path`: it is dropped before anything else is imported,
so a `numpy.py` or `dl/` there is never taken for a real module (the `tui` package is already found).
"""

from tui.core.childproc import drop_working_folder

drop_working_folder()

from tui.cli import main  # noqa: E402 - only after the import path is clean

if __name__ == "__main__":
    raise SystemExit(main())
