"""Helper processes that import only mrishare's own code and the installed packages.

A child Python started with `-c` or by multiprocessing puts the working folder first on
`sys.path`, so a `dl/` folder or a `numpy.py` there would be imported instead of the real module
(python-gdcm's `import dl` did exactly that). Every child gets `PYTHONSAFEPATH=1` (Python 3.11 `-P`),
a PYTHONPATH of absolute folders only, led by the folder that holds the `tui` package, and pool
workers drop the working folder from `sys.path` when they start (a forked worker inherits it).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TypeVar

from tui.core.errors import MrishareError

T = TypeVar("T")

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
"""The folder holding `tui/`, so a child finds mrishare without the working folder."""


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a child Python: safe path on, PYTHONPATH absolute and led by mrishare."""
    env = dict(os.environ if base is None else base)
    entries = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([PACKAGE_ROOT, *entries]))
    env["PYTHONSAFEPATH"] = "1"
    return env


def drop_working_folder() -> None:
    """Remove the working folder ('' or its absolute path) from `sys.path` (pool initializer)."""
    here = os.getcwd()
    sys.path[:] = [p for p in sys.path if (p not in ("", ".") and os.path.abspath(p) != here)
                   or p == PACKAGE_ROOT]


def pool_context(method: str, preload: list[str]) -> BaseContext:
    """A multiprocessing context whose workers start with a clean import path.

    The fork server is started once per process, with the environment of that moment: the
    variables of `child_env` are set here, before it starts (they only affect child Pythons).
    """
    if method == "forkserver":
        os.environ.update({k: v for k, v in child_env().items() if k in ("PYTHONPATH", "PYTHONSAFEPATH")})
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(preload)
    return context


def finished_futures(pool: Executor, futures: Iterable[Future[T]], cancel: threading.Event | None,
                     what: str) -> Iterator[Future[T]]:
    """`futures` as they finish. `cancel` is looked at every 0.25 s: once set, the pool drops its queued work
    and `MrishareError("<what> cancelled")` is raised."""
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
        if cancel is not None and cancel.is_set():
            pool.shutdown(cancel_futures=True)
            raise MrishareError(f"{what} cancelled")
        yield from finished
