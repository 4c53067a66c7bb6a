"""A word drawn in block letters (6 rows) so it can be read out on the phone without squinting."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

_FONT = """
A  ###  |#   #|#####|#   #|#   #
B ####  |#   #|#### |#   #|####
C  #### |#    |#    |#    | ####
D ####  |#   #|#   #|#   #|####
E ##### |#    |#### |#    |#####
F ##### |#    |#### |#    |#
G  #### |#    |#  ##|#   #| ####
H #   # |#   #|#####|#   #|#   #
I ###   | # | # | # |###
J   ### |   # |   # |#  # | ##
K #   # |#  # |###  |#  # |#   #
L #     |#    |#    |#    |#####
M #   # |## ##|# # #|#   #|#   #
N #   # |##  #|# # #|#  ##|#   #
O  ###  |#   #|#   #|#   #| ###
P ####  |#   #|#### |#    |#
Q  ###  |#   #|# # #|#  # | ## #
R ####  |#   #|#### |#  # |#   #
S  #### |#    | ### |    #|####
T ##### |  #  |  #  |  #  |  #
U #   # |#   #|#   #|#   #| ###
V #   # |#   #|#   #| # # |  #
W #   # |#   #|# # #|## ##|#   #
X #   # | # # |  #  | # # |#   #
Y #   # | # # |  #  |  #  |  #
Z ##### |   # |  #  | #   |#####
0  ###  |#  ##|# # #|##  #| ###
1  #    |##  | #  | #  |###
2 ####  |    #| ### |#    |#####
3 ####  |    #| ### |    #|####
4 #   # |#   #|#####|    #|    #
5 ##### |#    |#### |    #|####
6  ###  |#    |#### |#   #| ###
7 ##### |    #|   # |  #  |  #
8  ###  |#   #| ### |#   #| ###
9  ###  |#   #| ####|    #| ###
- ;     |     |#### |     |
ß  ###  |#   #|# ## |#   #|# ##
"""

ROWS = 6
"""One row for umlaut dots above five rows of letter."""

_UMLAUTS = {"Ä": "A", "Ö": "O", "Ü": "U"}


def _load_font() -> dict[str, list[str]]:
    font: dict[str, list[str]] = {}
    for line in _FONT.strip("\n").splitlines():
        char, shape = line[0], line[2:]
        rows = [r.rstrip() for r in shape.split("|")]
        width = max(len(r) for r in rows) if char != "-" else 4
        font[char] = [r.replace(";", " ").ljust(width).replace("#", "█") for r in rows]
    return font


FONT = _load_font()


def glyph(char: str) -> list[str]:
    """The six rows of one character (unknown ones are drawn small in a box)."""
    upper = "ß" if char == "ß" else char.upper()
    base = _UMLAUTS.get(upper, upper)
    shape = FONT.get(base)
    if shape is None:
        return ["   ", "┌─┐", f"│{char}│", "└─┘", "   ", "   "]
    width = len(shape[0])
    dots = "█ █".center(width) if upper in _UMLAUTS else " " * width
    return [dots, *shape]


def big_lines(word: str, gap: int = 1) -> list[str]:
    """`word` as six lines of block letters."""
    glyphs = [glyph(c) for c in word]
    return [(" " * gap).join(g[row] for g in glyphs) for row in range(ROWS)]


class BigWord(Widget):
    """Shows one word in block letters; falls back to plain bold text if it does not fit."""

    DEFAULT_CSS = "BigWord { height: 6; width: 1fr; content-align: center middle; }"

    def __init__(self, word: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self._word = word

    def show(self, word: str) -> None:
        """Change the word."""
        self._word = word
        self.refresh()

    def render(self) -> Text:
        lines = big_lines(self._word)
        if lines and max(len(line) for line in lines) > self.size.width:
            return Text(f"\n\n{self._word}", style="bold", justify="center")
        return Text("\n".join(lines), justify="center")
