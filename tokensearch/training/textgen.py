"""Offline text for the mini model: a word list, English prose found on the machine, and generated entities.

Used twice: to train the BPE tokenizer (:func:`tokenizer_corpus`) and to fill synthetic documents
(:class:`TextSource`). Everything is local (no network) and seeded.

Sources, in order of preference:
- ``/usr/share/dict/words`` (Debian ``wamerican``) for vocabulary breadth,
- licence and copyright texts under ``/usr/share/common-licenses`` and ``/usr/share/doc/*/copyright``
  for real word frequencies and sentence shapes,
- generated numbers, dates, amounts, codes, names, e-mails, phone numbers, URLs.

On a machine without them (a lent GPU with a carried data pack, :mod:`.datapack`), two environment
variables point elsewhere: ``TOKENSEARCH_DICT`` (a word list, one word a line) and ``TOKENSEARCH_PROSE``
(a text file, or a folder whose files are all read, of prose lines).
"""

from __future__ import annotations

import os
import random
import re
from functools import lru_cache
from pathlib import Path

DICT_PATHS = (Path("/usr/share/dict/words"), Path("/usr/share/dict/american-english"))
PROSE_DIRS = (Path("/usr/share/common-licenses"), Path("/usr/share/doc"))

FIRST_NAMES = (
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard "
    "Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark "
    "Sandra Donald Ashley Steven Emily Paul Donna Andrew Michelle Joshua Carol Kenneth Amanda Kevin "
    "Melissa Brian Deborah George Stephanie Timothy Rebecca Ronald Laura Jason Helen Edward Anna "
    "Olga Pierre Hans Yuki Ahmed Priya Chen Mateo Sofia Lars Ingrid Kofi Amara Dmitri Elena"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Thompson White Harris Clark Lewis Robinson Walker "
    "Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera "
    "Campbell Mitchell Carter Roberts Schmidt Muller Rossi Dubois Tanaka Kowalski Novak Petrov Okafor "
    "Haddad Larsen Fischer Weber Moreau Silva Costa Ivanova"
).split()
MONTHS = ("January February March April May June July August September October November December").split()
CODE_PREFIXES = ("INV PO REF ID SKU ORD CASE ACC TKT DOC CN PRJ REQ LOT SN BL").split()
DOMAINS = ("example.com mail.org corp.net acme.io uni.edu gov.uk post.de web.fr").split()
COMMON_WORDS = (
    "the of and to a in is for on that by this with from at as be are or an it not was have has "
    "invoice total date amount page number name address phone email account payment due balance "
    "order customer description quantity price unit tax subtotal report summary table figure "
    "section chapter introduction results method data analysis conclusion references appendix "
    "contract agreement party signature terms conditions company department office manager "
    "project budget schedule meeting minutes approved received paid status notes item code "
    "reference period year month day week time city state country street postal form yes no "
    "please see above below following shall may must will should would could all any each "
    "new first last other more most such only also into than then there their which when where "
    "who what how use used using user system file version license software source program "
    "free copyright public general permission without warranty"
).split()
UNITS = ("kg km mm cm ml MB GB kWh USD EUR % pcs h min").split()


def dict_paths() -> tuple[Path, ...]:
    """Word lists to try, in order: ``$TOKENSEARCH_DICT`` alone when set, else the system dictionary."""
    env = os.environ.get("TOKENSEARCH_DICT")
    return (Path(env),) if env else DICT_PATHS


@lru_cache(maxsize=1)
def dictionary_words() -> tuple[str, ...]:
    """Words of the system dictionary (no possessives), or a tiny built-in list if it is missing."""
    for p in dict_paths():
        if p.exists():
            words = [w.strip() for w in p.read_text(encoding="utf-8", errors="ignore").splitlines()]
            return tuple(w for w in words if w and "'" not in w)
    return tuple("the of and to in is for on that by this with from invoice total date page number".split())


@lru_cache(maxsize=1)
def prose_lines(max_chars: int = 6_000_000) -> tuple[str, ...]:
    """Lines of English prose from licence/copyright files on this machine (deduplicated)."""
    files: list[Path] = []
    env = os.environ.get("TOKENSEARCH_PROSE")  # a carried prose file or folder: every file in it
    if env:
        d = Path(env)
        files = sorted(p for p in d.rglob("*") if p.is_file()) if d.is_dir() else [d]
    for d in () if env else PROSE_DIRS:
        if d.is_dir():
            files += sorted(
                p for p in d.rglob("*") if p.is_file() and (d.name == "common-licenses" or p.name == "copyright")
            )
    seen: set[str] = set()
    lines: list[str] = []
    total = 0
    for p in files:
        try:
            text = p.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        for line in text.splitlines():
            line = " ".join(line.split())
            if (
                len(line) < 20
                or line in seen
                or sum(c.isalpha() for c in line) < 0.7 * len(line)
                or line.count("/") > 1
                or "_" in line
                or "*" in line
            ):  # file lists, not prose
                continue
            seen.add(line)
            lines.append(line)
            total += len(line)
            if total > max_chars:
                return tuple(lines)
    return tuple(lines)


class TextSource:
    """Seeded generator of document text: prose sentences, words, and entity strings."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.words = dictionary_words()
        self.prose = prose_lines()
        self._prose_words = [w for line in self.prose[:20000] for w in line.split()] or list(self.words)

    # --- entities ---------------------------------------------------------------------------------
    def date(self) -> str:
        r = self.rng
        d, m, y = r.randint(1, 28), r.randint(1, 12), r.randint(1950, 2035)
        fmt = r.randrange(6)
        if fmt == 0:
            return f"{m:02d}/{d:02d}/{y}"
        if fmt == 1:
            return f"{d}.{m}.{y}"
        if fmt == 2:
            return f"{y}-{m:02d}-{d:02d}"
        if fmt == 3:
            return f"{MONTHS[m - 1]} {d}, {y}"
        if fmt == 4:
            return f"{d} {MONTHS[m - 1][:3]} {y}"
        return f"{m}/{d}/{y % 100:02d}"

    def number(self) -> str:
        r = self.rng
        k = r.randrange(7)
        if k == 0:
            return str(r.randint(0, 99))
        if k == 1:
            return str(r.randint(100, 99999))
        if k == 2:
            return f"{r.randint(0, 99999):,}.{r.randint(0, 99):02d}"
        if k == 3:
            return f"{r.choice(['$', '€', '£', ''])}{r.randint(1, 9999):,}.{r.randint(0, 99):02d}"
        if k == 4:
            return f"{r.uniform(0, 100):.{r.randint(1, 3)}f}{r.choice(['', '%'])}"
        if k == 5:
            return f"{r.randint(1, 999)} {r.choice(UNITS)}"
        return f"+{r.randint(1, 99)} {r.randint(100, 999)} {r.randint(1000, 9999)}"

    def code(self) -> str:
        r = self.rng
        k = r.randrange(4)
        if k == 0:
            return f"{r.choice(CODE_PREFIXES)}-{r.randint(1990, 2035)}-{r.randint(0, 9999):04d}"
        if k == 1:
            return f"{r.choice(CODE_PREFIXES)}{r.randint(10000, 999999)}"
        if k == 2:
            return "".join(r.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(r.randint(5, 10)))
        return f"{r.randint(100, 999)}-{r.randint(10, 99)}-{r.randint(1000, 9999)}"

    def name(self) -> str:
        r = self.rng
        first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
        return r.choice([f"{first} {last}", f"{first[0]}. {last}", f"{last}, {first}", f"Dr. {first} {last}"])

    def email(self) -> str:
        r = self.rng
        return f"{r.choice(FIRST_NAMES).lower()}.{r.choice(LAST_NAMES).lower()}@{r.choice(DOMAINS)}"

    def url(self) -> str:
        r = self.rng
        return f"https://www.{r.choice(DOMAINS)}/{r.choice(self.words).lower()}"

    def entity(self) -> str:
        return self.rng.choice([self.date, self.number, self.number, self.code, self.name, self.email, self.url])()

    # --- words and prose --------------------------------------------------------------------------
    def word(self) -> str:
        r = self.rng
        k = r.random()
        w = r.choice(self.words) if k < 0.4 else r.choice(COMMON_WORDS) if k < 0.6 else r.choice(self._prose_words)
        k = r.random()
        if k < 0.08:
            return w.upper()
        if k < 0.2:
            return w.capitalize()
        return w

    def sentence(self, min_words: int = 4, max_words: int = 18) -> str:
        """A prose line (real text) or a mix of random words and entities."""
        r = self.rng
        if self.prose and r.random() < 0.55:
            line = r.choice(self.prose)
            words = line.split()
            n = r.randint(min_words, max_words)
            i = r.randint(0, max(0, len(words) - n))
            return " ".join(words[i : i + n])
        out = []
        for _ in range(r.randint(min_words, max_words)):
            out.append(self.entity() if r.random() < 0.15 else self.word())
        s = " ".join(out)
        if r.random() < 0.6:
            s = s[:1].upper() + s[1:] + r.choice([".", ".", ",", ";", ":", "?", "!"])
        return s

    def short(self) -> str:
        """A label, heading or table cell: 1-4 words or an entity."""
        r = self.rng
        if r.random() < 0.45:
            return self.entity()
        return " ".join(self.word() for _ in range(r.randint(1, 4)))


def tokenizer_corpus(seed: int = 0, n_generated: int = 150_000) -> list[str]:
    """Training text for the BPE tokenizer: dictionary words, prose lines and generated lines."""
    rng = random.Random(seed)
    src = TextSource(rng)
    lines = list(prose_lines())
    words = list(dictionary_words())
    rng.shuffle(words)
    lines += [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    lines += [src.sentence() for _ in range(n_generated)]
    return lines


WORD_RE = re.compile(r"\S+")
