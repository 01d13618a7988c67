"""Strings a reader confuses with a word: one letter changed to a look-alike or a typo (the near-miss
queries calibration holds out), and, for training, a token's hard negatives: its pieces, its other case,
one letter or digit changed — what the search's vocabulary check and near-miss queries must tell apart."""

from __future__ import annotations

import random

LOOKALIKE = {
    "e": "c",
    "c": "e",
    "n": "u",
    "u": "n",
    "r": "v",
    "i": "l",
    "l": "i",
    "a": "o",
    "o": "a",
    "m": "n",
    "h": "b",
    "b": "h",
    "t": "f",
    "f": "t",
    "s": "a",
    "d": "cl",
    "0": "8",
    "8": "0",
    "1": "7",
    "7": "1",
    "3": "8",
    "5": "6",
    "6": "5",
}
TYPO_LETTERS = "aeioutnrsl"  # a typo's letter: the most frequent ones


def near_miss(word: str, rng: random.Random) -> str | None:
    """``word`` with one interior character changed (None if it has none to change): half the time to
    a look-alike ("differences" -> "diffcrences", the classic OCR confusion), otherwise to another
    frequent letter ("variuus"), the typo a user makes."""
    look = [i for i in range(1, len(word) - 1) if word[i] in LOOKALIKE]
    typo = [i for i in range(1, len(word) - 1) if word[i].isalpha()]
    if look and (not typo or rng.random() < 0.5):
        i = rng.choice(look)
        return word[:i] + LOOKALIKE[word[i]] + word[i + 1 :]
    if not typo:
        return None
    i = rng.choice(typo)
    c = rng.choice([ch for ch in TYPO_LETTERS if ch != word[i].lower()])
    return word[:i] + c + word[i + 1 :]


def hard_negatives(text: str, rng: random.Random, n: int) -> list[str]:
    """Up to ``n`` distinct strings unlike ``text`` (a token's text, leading space kept) that its cells must
    read worse than it: a prefix (" Sign" of " Signature"), a suffix ("ice" of "price"), another case
    (" SIGNATURE"), an interior letter changed (``near_miss``), a digit changed ("27/05" for "27/03")."""
    lead = text[: len(text) - len(text.lstrip(" "))]
    body = text[len(lead) :]
    cands: list[str] = []
    if len(body) >= 2:
        cands.append(lead + body[: rng.randint(max(1, len(body) // 2), len(body) - 1)])
    if len(body) >= 3:
        cands.append(body[rng.randint(1, len(body) // 2) :])
    if any(c.isalpha() for c in body):
        cases = {body.lower(), body.upper(), body.capitalize()} - {body}
        if cases:
            cands.append(lead + rng.choice(sorted(cases)))
    if len(body) >= 3:
        miss = near_miss(body, rng)
        if miss is not None:
            cands.append(lead + (miss.upper() if body.isupper() else miss))
    digits = [i for i, c in enumerate(body) if c.isdigit()]
    if digits:
        i = rng.choice(digits)
        cands.append(lead + body[:i] + rng.choice([d for d in "0123456789" if d != body[i]]) + body[i + 1 :])
    out = list(dict.fromkeys(c for c in cands if c.strip() and c != text))
    rng.shuffle(out)
    return out[:n]
