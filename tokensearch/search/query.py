"""Query text → units: each unquoted word, and each "quoted phrase", is searched as one unit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import QueryError
from ..textnorm import normalise

_UNIT = re.compile(r'"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class Unit:
    text: str
    phrase: bool  # a quoted phrase: its words must be adjacent, in order


def normalise_query(text: str) -> str:
    """NFKC (splits ligatures), typographic quotes/dashes to ASCII, collapsed white space."""
    return " ".join(normalise(text).split())


def parse_query(text: str, max_chars: int) -> list[Unit]:
    q = normalise_query(text)
    if not q:
        raise QueryError('the query is empty: type a word, a number or a "quoted phrase"')
    if len(q) > max_chars:
        raise QueryError(
            f"the query is {len(q)} characters long; the limit is {max_chars} (TOKENSEARCH_MAX_QUERY_CHARS)"
        )
    units: list[Unit] = []
    for m in _UNIT.finditer(q):
        if m.group(1) is not None:
            phrase = " ".join(m.group(1).split())
            if phrase:
                units.append(Unit(phrase, True))
        else:
            word = m.group(2).strip('"')
            if word:
                units.append(Unit(word, False))
    if not units:
        raise QueryError("the query has no words to search for")
    return units


def case_variants(text: str) -> list[str]:
    """Spellings searched for one unit: as typed, lower, Capitalised, UPPER (search is case-insensitive)."""
    out: list[str] = []
    for v in (text, text.lower(), text[:1].upper() + text[1:].lower(), text.upper()):
        if v not in out:
            out.append(v)
    return out
