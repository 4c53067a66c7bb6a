"""Small display formatters shared by screens (sizes, dates)."""

from __future__ import annotations

from datetime import date, timedelta


def human_size(size: int | None) -> str:
    """Bytes as a short human number (1.2G, 340M)."""
    if not size:
        return ""
    value = float(size)
    for unit in ("B", "K", "M", "G"):
        if value < 1000:
            return f"{value:.0f}{unit}" if unit == "B" or value >= 10 else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}T"


def works_until(expires: date | None) -> str:
    """The last day a link works (YYYY-MM-DD), from the ledger's expiry (the day it stops: 00:00).

    One convention everywhere (ledger screen, CLI, e-mail): the last working day, inclusive.
    """
    return (expires - timedelta(days=1)).isoformat() if isinstance(expires, date) else ""
