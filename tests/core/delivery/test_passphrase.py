"""Passphrases: entropy, word lists, hiding, spelling."""

from __future__ import annotations

import logging
import math
import re

import pytest

from tui.assets import ASSETS
from tui.core.delivery import passphrase as pp
from tui.core.errors import MrishareError
from tui.core.wordlists import LANGUAGES


@pytest.mark.parametrize("language", LANGUAGES)
def test_word_list_meets_the_rules(language: str) -> None:
    words = pp.word_list(language)
    assert len(words) >= 2048
    assert all(re.fullmatch(r"[a-z]{4,8}", w) for w in words)
    assert len(set(words)) == len(words)
    blocked = set()
    for line in (ASSETS / "wordlists" / f"blocklist-{language}.txt").read_text(encoding="utf-8").splitlines():
        blocked.update(line.split("#", 1)[0].split())
    assert blocked and not blocked & set(words)


BAD = ["steve", "trier", "folter", "aids", "krebs", "cancer", "tumor", "hitler", "brain", "blut", "nazi", "fick",
       "anal", "isis", "attacks", "diseases", "kranke"]


@pytest.mark.parametrize("word", BAD)
def test_known_bad_words_are_absent(word: str) -> None:
    assert word not in pp.word_list("en") and word not in pp.word_list("de")


@pytest.mark.parametrize("language", LANGUAGES)
def test_default_reaches_75_bits(language: str) -> None:
    p = pp.generate(language)
    bits = pp.entropy_bits(p)
    assert bits >= 75
    assert len(p.words) == math.ceil(75 / math.log2(len(pp.word_list(language))))
    assert all(w in pp.word_list(language) for w in p.words)
    print(f"{language}: {len(pp.word_list(language))} words, {len(p.words)} words -> {bits:.1f} bits")


def test_more_bits_means_more_words() -> None:
    assert len(pp.generate("en", 120).words) > len(pp.generate("en", 75).words)
    with pytest.raises(MrishareError):
        pp.generate("en", 0)


def test_draws_are_random() -> None:
    phrases = {pp.generate("de").text() for _ in range(200)}
    assert len(phrases) == 200
    first_words = [pp.generate("en").words[0] for _ in range(400)]
    assert len(set(first_words)) > 300  # 400 draws from 2048 words: ~3.6% collide


def test_words_never_show_in_repr_str_format_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    p = pp.Passphrase(("correct", "horse", "battery", "staple"), "en")
    logging.getLogger("mrishare").warning("made %s / %r / %s", p, p, f"{p}")
    for shown in (repr(p), str(p), f"{p}", f"{p!r}", repr([p]), caplog.text):
        assert "horse" not in shown
    assert repr(p) == "Passphrase(<hidden>, 4 words)"
    assert p.text() == "correct-horse-battery-staple"


def test_from_text_round_trips_and_rejects_without_echo() -> None:
    p = pp.generate("en")
    assert pp.Passphrase.from_text(p.text(), "en") == p
    with pytest.raises(MrishareError) as info:
        pp.Passphrase.from_text("secret-Wörd", "de")
    assert "secret" not in str(info.value)


def test_unknown_language() -> None:
    with pytest.raises(MrishareError, match="fr"):
        pp.word_list("fr")


def test_spelled() -> None:
    assert pp.spelled("jazz") == ["Juliett", "Alfa", "Zulu", "Zulu"]
    assert pp.spelled("koch", "din5009") == ["Köln", "Offenbach", "Chemnitz", "Hamburg"]
    with pytest.raises(MrishareError):
        pp.spelled("abc", "klingon")
    with pytest.raises(MrishareError):
        pp.spelled("Abc")
