"""Command palette provider: jump to a participant by its key (actions come from the screen's keys)."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ParticipantCommands(Provider):
    """`P0042` -> highlight that participant in the ledger (and open it if scanned)."""

    def _entries(self) -> list[tuple[str, str]]:
        screen = self.app.ledger_screen  # type: ignore[attr-defined]
        return [(e.participant, e.status) for e in screen.entries]

    async def discover(self) -> Hits:
        for key, status in self._entries()[:20]:
            yield DiscoveryHit(f"Go to {key}", partial(self._go, key), help=status)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for key, status in self._entries():
            score = matcher.match(f"Go to {key}")
            if score > 0:
                yield Hit(score, matcher.highlight(f"Go to {key}"), partial(self._go, key), help=status)

    def _go(self, key: str) -> None:
        self.app.ledger_screen.go_to(key)  # type: ignore[attr-defined]
