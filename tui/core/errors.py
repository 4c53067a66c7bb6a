"""The one error type the CLI and the app show as a single line."""

from __future__ import annotations

from pathlib import Path


class MrishareError(Exception):
    """A failure with a one-line, non-identifying message for the operator.

    `where` names the file or object concerned (shown before the reason);
    messages must never carry patient values (names, IDs, dates, passphrases).
    """

    def __init__(self, reason: str, where: str | Path | None = None) -> None:
        self.reason = reason
        self.where = str(where) if where is not None else None
        super().__init__(f"{self.where}: {reason}" if self.where else reason)
