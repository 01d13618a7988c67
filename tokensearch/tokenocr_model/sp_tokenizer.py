"""The InternLM2 tokenizer of TokenOCR, read with the ``sentencepiece`` library only.

A checkpoint ships ``tokenizer.model`` (SentencePiece) plus Python code for ``transformers``
(``trust_remote_code=True``); we never run that code. The vocabulary is the SentencePiece model's pieces
followed by InternVL's 9 special tokens (``<img>`` … ``</box>``, ids ``n_pieces .. n_pieces+8``; read from
``added_tokens.json`` when the checkpoint has one), matching the rows of ``tok_embeddings.weight``.

Query rule (official ``quick_start.py``): drop BOS; prepend a space unless the query starts with a digit
or one of ``!"#$%&'()*+,-./:;<=>?@^_{|}~`` (the official list; brackets, backslash and backtick are
not in it) — so ``"total"`` is cut as ``" total"`` -> ``▁total`` while ``"11/12/2020"`` keeps its bare
digits.

Page text (:meth:`InternLM2Tokenizer.tokenize`) is cut like a text-layer page is painted
(``tokensearch.textcut``: at whitespace, edge punctuation alone, every CJK character alone) and each
piece is tokenised exactly like a one-word query, so the tokens painted onto a page's glyphs are the
tokens a query for that word (or for a run of CJK characters) looks for. Each token carries the
character span of the original text it covers (a space the rule added is not part of any span).

Where the query rule differs from the reference on purpose (surrounding whitespace, spellings of special
tokens), see :meth:`InternLM2Tokenizer.encode_query`.
"""

from __future__ import annotations

import json
from pathlib import Path

import sentencepiece as spm

from ..textcut import cut
from .interface import Token

# InternVL's special tokens, in the order the chat model adds them after the base vocabulary.
INTERNVL_SPECIAL_TOKENS = (
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
)
# first characters for which the official rule adds no leading space (its exact list)
NO_SPACE_FIRST_CHARS = frozenset("!\"#$%&'()*+,-./0123456789:;<=>?@^_{|}~")
SPACE_PIECE = "\u2581"  # '▁', SentencePiece's visible space


class InternLM2Tokenizer:
    """SentencePiece tokenizer + InternVL special tokens, with character spans."""

    def __init__(self, model_file: str | Path, added_tokens: dict[str, int] | None = None):
        model_file = Path(model_file)
        if not model_file.is_file():
            raise FileNotFoundError(
                f"tokenizer model not found: {model_file} (a TokenOCR checkpoint folder "
                "must contain the InternLM2 'tokenizer.model')"
            )
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.n_pieces = self.sp.get_piece_size()
        if added_tokens is None:
            added_tokens = {t: self.n_pieces + i for i, t in enumerate(INTERNVL_SPECIAL_TOKENS)}
        self.added_tokens = dict(added_tokens)
        self._added_by_id = {i: t for t, i in self.added_tokens.items()}
        self.vocab_size = max([self.n_pieces - 1, *self.added_tokens.values()]) + 1
        self.bos_id = self.sp.bos_id()
        self.space_id = self._space_id()

    @classmethod
    def from_checkpoint(cls, folder: str | Path) -> InternLM2Tokenizer:
        """Read ``tokenizer.model`` (+ ``added_tokens.json`` if present) from a checkpoint folder."""
        folder = Path(folder)
        added = None
        added_file = folder / "added_tokens.json"
        if added_file.is_file():
            added = {str(k): int(v) for k, v in json.loads(added_file.read_text(encoding="utf-8")).items()}
        return cls(folder / "tokenizer.model", added)

    def _space_id(self) -> int:
        """Id of the space token ``' '`` (``▁``): the background reference of ``-seg`` checkpoints."""
        pid = self.sp.piece_to_id(SPACE_PIECE)
        if pid != self.sp.unk_id():
            return pid
        ids = [i for i in self.sp.encode(" ") if i != self.bos_id]
        if len(ids) != 1:
            raise ValueError("the tokenizer has no single token for ' ' (needed as the background reference)")
        return ids[0]

    # -- pieces and ids ---------------------------------------------------------------------------
    def id_to_piece(self, i: int) -> str:
        if i in self._added_by_id:
            return self._added_by_id[i]
        if not 0 <= i < self.n_pieces:
            raise ValueError(f"token id {i} out of range (vocabulary size {self.vocab_size})")
        return self.sp.id_to_piece(i)

    def decode_piece(self, i: int) -> str:
        """Human-readable text of one token (``▁`` shown as a space; byte pieces as ``<0x..>``)."""
        return self.id_to_piece(i).replace(SPACE_PIECE, " ")

    # -- cutting text -----------------------------------------------------------------------------
    @staticmethod
    def needs_space(text: str) -> bool:
        """The official rule: a leading space unless the text starts with a digit or punctuation."""
        return bool(text) and text[0] not in NO_SPACE_FIRST_CHARS

    def _encode_spans(self, text: str, offset: int, add_space: bool) -> list[Token]:
        """SentencePiece pieces of ``text`` with character spans shifted by ``offset`` into the caller's text."""
        prefix = " " if add_space else ""
        src = prefix + text
        proto = self.sp.encode(src, return_type="proto", add_bos=False, add_eos=False)  # BOS is dropped anyway
        # SentencePiece reports UTF-8 byte offsets into src; map every byte position to a char index
        byte_to_char: list[int] = []
        for ci, ch in enumerate(src):
            byte_to_char.extend([ci] * len(ch.encode("utf-8")))
        byte_to_char.append(len(src))
        tokens = []
        for p in proto.pieces:
            if p.id == self.bos_id:
                continue
            start, end = byte_to_char[p.begin], byte_to_char[p.end]
            if end <= start:  # a byte-fallback piece before the one carrying the surface: same char
                end = min(start + 1, len(src))
            # drop the added space from spans; a piece made only of it gets an empty span
            start = max(start - len(prefix), 0)
            end = max(end - len(prefix), start)
            tokens.append(Token(id=int(p.id), piece=p.piece, start=start + offset, end=end + offset))
        return tokens

    def encode_query(self, query: str) -> list[Token]:
        """Query rule on the stripped query: maybe prepend a space, cut, drop BOS. Spans index ``query``.

        The ids are the reference's — ``AutoTokenizer(ckpt, trust_remote_code=True)`` (InternVL's slow
        ``InternLM2Tokenizer``) called as the official quick start calls it, ``input_ids[1:]`` — for words,
        numbers, dates, punctuation, inner whitespace and CJK text, except on purpose for:

        * surrounding whitespace, which is dropped: the reference keeps it (``" total"`` gets a second
          ``▁`` token, ``"total "`` a trailing ``▁``, a tab a byte token), and no glyph on a page shows it;
        * spellings of special tokens (``<s>``, ``</s>``, ``<unk>``, ``<img>`` ... ``</box>``), which are
          searched as the characters typed: the reference splits them out before SentencePiece and maps
          them to control ids, rows of the token table that were never trained against glyphs.
        """
        q = query.strip()
        if not q:
            return []
        return self._encode_spans(q, len(query) - len(query.lstrip()), self.needs_space(q))

    def tokenize(self, text: str) -> list[Token]:
        """Page text: every piece of ``textcut.cut`` cut like a one-word query; spans index ``text``.

        Bare-space tokens (``▁`` alone, which cover no character of the text) are left out.
        """
        tokens: list[Token] = []
        for offset, piece in cut(text):
            tokens.extend(
                t for t in self._encode_spans(piece, offset, self.needs_space(piece)) if t.id != self.space_id
            )
        return tokens
