"""The error types the CLI and the app show as a single line; each kind has its own exit code."""

from __future__ import annotations

from pathlib import Path


class MrishareError(Exception):
    """A failure with a one-line, non-identifying message for the operator.

    `where` names the file or object concerned (shown before the reason);
    messages must never carry patient values (names, IDs, dates, passphrases).
    """

    exit_code = 2
    """What `mrishare` exits with when this error ends a command."""

    def __init__(self, reason: str, where: str | Path | None = None) -> None:
        self.reason = reason
        self.where = str(where) if where is not None else None
        super().__init__(f"{self.where}: {reason}" if self.where else reason)


class Cancelled(MrishareError):
    """The operator asked to stop (Ctrl-C, the app's cancel): not a failure, and a rerun resumes."""

    exit_code = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
