"""The committed common-word lists (en, de; derived from wordfreq by scripts/build_wordlists.py): passphrases draw
from them, and the leak gate treats their words as weak (a dictionary word alone identifies nobody)."""

from __future__ import annotations

import re
from functools import cache

from tui.assets import ASSETS
from tui.core.errors import MrishareError

LANGUAGES = ("en", "de")
WORD = re.compile(r"[a-z]+")


@cache
def word_list(language: str) -> tuple[str, ...]:
    """The committed word list for `language` ('en' or 'de'), checked on first use."""
    if language not in LANGUAGES:
        raise MrishareError(f"no word list for language {language!r}; choose one of {', '.join(LANGUAGES)}")
    path = ASSETS / "wordlists" / f"{language}.txt"
    words = tuple(path.read_text(encoding="utf-8").split())
    if len(set(words)) != len(words) or len(words) < 1024 or not all(WORD.fullmatch(w) for w in words):
        raise MrishareError("word list is damaged (duplicates, too short or not a-z)", path)
    return words
