"""Word passphrases from `secrets`, their entropy, and a spelled-out form for reading them aloud.

A passphrase never appears in a repr, a str, a log line, an exception or a file name: only
`Passphrase.text()` gives the words, and callers use it where the words must go (the zip key,
the ledger cell, the reveal screen).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from tui.core.errors import MrishareError
from tui.core.wordlists import WORD, word_list

SEPARATOR = "-"
DEFAULT_BITS = 75.0

# ICAO/NATO spelling alphabet ("Alfa" and "Juliett" are the official spellings).
NATO = dict(zip("abcdefghijklmnopqrstuvwxyz", (
    "Alfa", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliett",
    "Kilo", "Lima", "Mike", "November", "Oscar", "Papa", "Quebec", "Romeo", "Sierra", "Tango",
    "Uniform", "Victor", "Whiskey", "X-ray", "Yankee", "Zulu",
), strict=True))
# DIN 5009:2022, the German spelling table (city names).
DIN_5009 = dict(zip("abcdefghijklmnopqrstuvwxyz", (
    "Aachen", "Berlin", "Chemnitz", "Düsseldorf", "Essen", "Frankfurt", "Goslar", "Hamburg",
    "Ingelheim", "Jena", "Köln", "Leipzig", "München", "Nürnberg", "Offenbach", "Potsdam",
    "Quickborn", "Rostock", "Salzwedel", "Tübingen", "Unna", "Völklingen", "Wuppertal", "Xanten",
    "Ypsilon", "Zwickau",
), strict=True))
ALPHABETS = {"nato": NATO, "din5009": DIN_5009}


@dataclass(frozen=True, repr=False)
class Passphrase:
    """Words drawn at random from one language's list; shown only through `text()`."""

    words: tuple[str, ...]
    language: str

    def __repr__(self) -> str:
        return f"Passphrase(<hidden>, {len(self.words)} words)"

    __str__ = __repr__

    def text(self) -> str:
        """The passphrase itself, words joined by '-' (the zip key; the one way to see the words)."""
        return SEPARATOR.join(self.words)

    @classmethod
    def from_text(cls, text: str, language: str) -> Passphrase:
        """Rebuild a passphrase from its `text()` (e.g. a ledger cell); words must be a-z."""
        words = tuple(text.strip().lower().split(SEPARATOR))
        if not all(WORD.fullmatch(w) for w in words):
            raise MrishareError("passphrase must be lower-case words joined by '-'")
        return cls(words, language)


def words_needed(language: str, bits: float = DEFAULT_BITS) -> int:
    """How many words reach `bits` of entropy with `language`'s list."""
    if not 0 < bits <= 512:
        raise MrishareError(f"passphrase strength must be between 1 and 512 bits, not {bits}")
    return math.ceil(bits / math.log2(len(word_list(language))))


def generate(language: str = "en", bits: float = DEFAULT_BITS) -> Passphrase:
    """A new passphrase of at least `bits` bits, each word drawn with `secrets.choice`."""
    words = word_list(language)
    return Passphrase(tuple(secrets.choice(words) for _ in range(words_needed(language, bits))), language)


def entropy_bits(passphrase: Passphrase) -> float:
    """Bits of entropy of a generated passphrase: words x log2(list size)."""
    return len(passphrase.words) * math.log2(len(word_list(passphrase.language)))


def spelled(word: str, alphabet: str = "nato") -> list[str]:
    """The word letter by letter in a spelling alphabet ('nato' or 'din5009'), for reading aloud."""
    table = ALPHABETS.get(alphabet)
    if table is None:
        raise MrishareError(f"unknown spelling alphabet {alphabet!r}; choose one of {', '.join(ALPHABETS)}")
    if not WORD.fullmatch(word):
        raise MrishareError("only lower-case a-z words can be spelled")
    return [table[letter] for letter in word]
