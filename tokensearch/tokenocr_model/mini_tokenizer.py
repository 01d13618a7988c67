"""The mini model's tokenizer: byte-level BPE (HF ``tokenizers``) with TokenOCR's leading-space rule.

Rule (the same for page text and queries, so a query is cut exactly like the words it should find):
text is split on whitespace into words; a word gets a leading space (GPT-2 style ``Ġ``) unless it
starts with a digit or punctuation/symbol, then it is cut by byte-level BPE. For the first word of a
query this is TokenOCR's query rule ("prepend a space unless the query starts with a digit or
punctuation"); inside a query the same rule is applied to every word, because page text is tokenised
word by word too.

Offsets are exact character spans into the original text; the added leading space is never part of a
span. A character cut across two byte-level tokens (non-ASCII) gives both tokens the same span.

The vocabulary is trained by :func:`train_tokenizer` (``python -m tokensearch.training.tokenizer``)
and shipped as ``weights/tokenizer.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .interface import Token

WORD_RE = re.compile(r"\S+")
SPACE_MARK = "Ġ"  # byte-level BPE's picture of a space byte


def wants_space(word: str) -> bool:
    """TokenOCR's rule: a leading space unless the word starts with a digit or punctuation/symbol."""
    return bool(word) and word[0].isalpha()


def prepare_word(word: str) -> str:
    return " " + word if wants_space(word) else word


_BYTE_DECODER: dict[str, int] | None = None


def piece_to_text(piece: str) -> str:
    """Readable text of a byte-level piece (``Ġthe`` -> `` the``); broken UTF-8 becomes U+FFFD."""
    global _BYTE_DECODER
    if _BYTE_DECODER is None:
        # invert GPT-2's bytes->unicode table (the pre-tokenizer's alphabet lists its 256 symbols)
        bs = (
            list(range(ord("!"), ord("~") + 1))
            + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1))
        )
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        _BYTE_DECODER = {chr(c): b for b, c in zip(bs, cs)}
    data = bytes(_BYTE_DECODER.get(ch, ord("?")) for ch in piece)
    return data.decode("utf-8", errors="replace")


class MiniTokenizer:
    """Byte-level BPE with exact character offsets; see the module docstring for the space rule."""

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        vocab = tokenizer.get_vocab()
        self._pieces = [""] * self.vocab_size
        for piece, i in vocab.items():
            self._pieces[i] = piece

    @classmethod
    def from_file(cls, path: str | Path) -> MiniTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"mini tokenizer file not found: {path} (train one with "
                "`python -m tokensearch.training.tokenizer --out DIR`)"
            )
        return cls(Tokenizer.from_file(str(path)))

    def piece(self, i: int) -> str:
        return self._pieces[i]

    def pieces(self) -> list[str]:
        return list(self._pieces)

    def tokenize(self, text: str) -> list[Token]:
        """Cut ``text`` into tokens with spans into ``text`` (whitespace yields no token)."""
        matches = list(WORD_RE.finditer(text))
        if not matches:
            return []
        prepared = [prepare_word(m.group()) for m in matches]
        encs = self._tok.encode_batch(prepared, add_special_tokens=False)
        out: list[Token] = []
        for m, word, enc in zip(matches, prepared, encs):
            shift = m.start() - (len(word) - len(m.group()))  # original index of prepared[0]
            for i, piece, (s, e) in zip(enc.ids, enc.tokens, enc.offsets):
                start = max(m.start(), s + shift)
                end = max(start, min(m.end(), e + shift))
                out.append(Token(id=int(i), piece=piece, start=start, end=end))
        return out

    def encode_words(self, words: list[str]) -> list[list[int]]:
        """Token ids of each word (with the space rule), batched; used by the data engine."""
        return [enc.ids for enc in self._tok.encode_batch([prepare_word(w) for w in words], add_special_tokens=False)]

    def save(self, path: str | Path) -> None:
        self._tok.save(str(path))


def build_bpe(vocab_size: int, texts: Iterable[str], max_token_length: int = 12) -> Tokenizer:
    """Train a byte-level BPE on ``texts`` (lines; words are prepared with the space rule)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=3,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        max_token_length=max_token_length,
        special_tokens=[],
    )

    def words() -> Iterable[str]:
        for line in texts:
            for w in line.split():
                yield prepare_word(w)

    tok.train_from_iterator(words(), trainer=trainer)
    return tok
