"""Per-run audit record: what happened to which tag path in which output file.

One JSON-lines file per run in `<data_dir>/audit/`, mode 0600. It names the tool version and the
Annex E table edition, and per file the output path, status, reason and the (tag path, action)
pairs. Original values and source paths are stored only when the operator opts in; the run
header then says so.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tui.core.config import data_dir


def new_run_id() -> str:
    """A sortable, non-identifying run id: UTC time plus 4 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


class AuditLog:
    """Append-only JSONL audit file for one run (created with mode 0600)."""

    def __init__(self, run_id: str, path: Path | None = None) -> None:
        self.path = path or data_dir() / "audit" / f"{run_id}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line."""
        self._file.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records of an audit file (for tests and the app's history view)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
