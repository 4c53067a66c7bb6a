"""Per-participant journal that makes the pipeline resumable after a crash or kill -9.

One small JSON file per participant key, rewritten atomically after every step.
It records what was done and where the results are, never a passphrase or a
patient value: the passphrase lives only in the ledger (mode 0600).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tui.core.config import write_private
from tui.core.errors import MrishareError


@dataclass
class Journal:
    """What is known to be finished for one participant's current share attempt."""

    key: str
    share_id: str
    pseudonym: str = ""
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> its facts, JSON values
    path: Path | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        """The journal at `path`, or None if there is none; a broken one is an error naming it."""
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
            journal = cls(key=raw["key"], share_id=raw["share_id"], pseudonym=raw.get("pseudonym", ""),
                          done=dict(raw.get("done", {})))
        except (ValueError, KeyError, TypeError) as error:
            raise MrishareError(f"journal unreadable ({type(error).__name__}); move it away to start over",
                                path) from None
        journal.path = path
        return journal

    def mark(self, step: str, **facts: Any) -> None:
        """Record `step` as finished with its facts and persist at once."""
        self.done[step] = facts
        self.save()

    def forget(self, *steps: str) -> None:
        """Drop steps (and persist), e.g. when their output vanished."""
        for step in steps:
            self.done.pop(step, None)
        self.save()

    def save(self) -> None:
        """Write atomically with mode 0600."""
        if self.path is None:
            raise MrishareError("journal has no path")
        data = asdict(self)
        data.pop("path")
        write_private(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
