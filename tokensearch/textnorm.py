"""One text normalisation for page text and queries, so both sides spell things alike: NFKC (ligatures
split into letters, superscripts to digits) and typographic quotes/dashes to ASCII."""

from __future__ import annotations

import unicodedata

_PUNCT = str.maketrans(
    {
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
    }
)


def normalise(text: str) -> str:
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_PUNCT)
