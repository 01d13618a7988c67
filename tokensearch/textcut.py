"""Where text is cut before a model's tokenizer sees it — one rule for text-layer pages and queries.

A born-digital page is indexed by painting the tokens of its words onto their glyphs, and a query finds
it exactly only if it yields the same tokens. BPE is not substring-stable (the tokens of a word's part
are not a part of the word's tokens), so text is cut at places that a query's own cut reproduces:

* at whitespace, as every tokenizer does;
* edge punctuation on its own: ``"(total),"`` -> ``"("``, ``"total"``, ``"),"``, so the core word gets the
  tokens of the query ``total`` (with the query rule's leading space);
* every CJK character on its own: Chinese and Japanese are written without spaces, so a PDF line is one
  whitespace "word" (``发票总金额为…``); cut whole, a query for part of it (``总金额``) would yield other
  tokens than the line was painted with (``总``, ``金额`` vs ``发票``, ``总金``, ``额``).

Each piece is then tokenised with the model's query rule (:func:`embed_cut`). A query is searched both as
the model's rule cuts it whole (what the official model saw in training, for image pages) and, where that
differs, as :func:`embed_cut` cuts it (what text-layer pages carry).
"""

from __future__ import annotations

import re

import numpy as np

from .tokenocr_model.interface import QueryEmbedder, QueryTokens, Token

_WORD = re.compile(r"\S+")
_EDGES = re.compile(r"^(?P<lead>[^\w]*)(?P<core>.*?)(?P<trail>[^\w]*)$", re.S)
# scripts written without spaces between words, plus their punctuation: CJK radicals, CJK symbols and
# punctuation (。、「」), kana, bopomofo, unified ideographs (+ extension A, compatibility ideographs),
# CJK compatibility forms, full/half-width forms (those NFKC leaves), extensions B-H (planes 2 and 3)
_CJK = re.compile(
    "[\u2e80-\u2fdf\u3000-\u303f\u3040-\u312f\u3190-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003ffff]"
)


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` belongs to a script written without spaces (Chinese, Japanese kana)."""
    return _CJK.fullmatch(ch) is not None


def _edges(text: str, offset: int) -> list[tuple[int, str]]:
    if not text:
        return []
    m = _EDGES.match(text)
    assert m is not None  # the pattern matches any string
    return [(offset + m.start(part), m.group(part)) for part in ("lead", "core", "trail") if m.group(part)]


def cut_word(word: str) -> list[tuple[int, str]]:
    """(offset, piece) of a word without whitespace: each CJK character alone, edge punctuation of the
    runs between them alone. The pieces concatenate back to ``word``."""
    out: list[tuple[int, str]] = []
    pos = 0
    for m in _CJK.finditer(word):
        out.extend(_edges(word[pos : m.start()], pos))
        out.append((m.start(), m.group()))
        pos = m.end()
    out.extend(_edges(word[pos:], pos))
    return out


def cut(text: str) -> list[tuple[int, str]]:
    """(offset, piece) of any text: its whitespace-separated words, each cut by :func:`cut_word`."""
    return [(m.start() + off, piece) for m in _WORD.finditer(text) for off, piece in cut_word(m.group())]


def embed_cut(encoder: QueryEmbedder, text: str) -> QueryTokens:
    """``text`` as a text-layer page carries it: each piece of :func:`cut` through the model's query rule.

    Token spans index ``text``. Equal to ``encoder.embed_query(text)`` for a plain word or phrase; differs
    for CJK text and for words with edge punctuation.
    """
    tokens: list[Token] = []
    vectors: list[np.ndarray] = []
    for offset, piece in cut(text):
        q = encoder.embed_query(piece)
        tokens.extend(Token(t.id, t.piece, offset + t.start, offset + t.end) for t in q.tokens)
        vectors.append(np.asarray(q.vectors, dtype=np.float32).reshape(len(q.tokens), -1))
    dim = encoder.info.dim
    return QueryTokens(
        text=text, tokens=tokens, vectors=np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    )
