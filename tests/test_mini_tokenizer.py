"""The mini tokenizer: exact character spans and TokenOCR's leading-space rule."""

from __future__ import annotations

import pytest

from tokensearch.tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR
from tokensearch.tokenocr_model.mini_tokenizer import MiniTokenizer, piece_to_text, wants_space


@pytest.fixture(scope="module")
def tok() -> MiniTokenizer:
    return MiniTokenizer.from_file(WEIGHTS_DIR / TOKENIZER_FILE)


TEXTS = [
    "Invoice INV-2023-0042 dated 11/12/2020, total $1,234.56",
    "  leading and trailing   spaces\tand\ttabs\nnew line  ",
    "john.smith@example.com (see https://www.example.com/path?q=1)",
    "Zürich, Müller & Søn — naïve café",
    "UPPER lower MiXeD 3.14159 -42 +1 555 0100",
]


@pytest.mark.parametrize("text", TEXTS)
def test_spans_cover_the_words_exactly(tok: MiniTokenizer, text: str) -> None:
    toks = tok.tokenize(text)
    assert toks, "no tokens"
    for t in toks:
        assert 0 <= t.start < t.end <= len(text)
        assert not text[t.start : t.end].isspace()
    # ASCII tokens: the span is the piece without its leading space mark
    for t in toks:
        piece = piece_to_text(t.piece)
        if piece.isascii() and "\ufffd" not in piece:
            assert text[t.start : t.end] == piece.lstrip(" "), (t, text[t.start : t.end])
    # spans are in order and together cover every non-space character exactly once
    covered = sorted({i for t in toks for i in range(t.start, t.end)})
    assert covered == [i for i, c in enumerate(text) if not c.isspace()]
    starts = [t.start for t in toks]
    assert starts == sorted(starts)


def test_leading_space_rule(tok: MiniTokenizer) -> None:
    assert wants_space("invoice") and wants_space("Éclair")
    assert not wants_space("2020") and not wants_space("$12") and not wants_space("(see") and not wants_space("")
    first = tok.tokenize("invoice")[0]
    assert first.piece.startswith("Ġ") and (first.start, first.end) == (0, first.end)
    assert not tok.tokenize("11/12/2020")[0].piece.startswith("Ġ")
    assert not tok.tokenize("-42")[0].piece.startswith("Ġ")
    # page text and query cut the same word the same way
    page = tok.tokenize("Total amount INV-2023-0042")
    query = tok.tokenize("INV-2023-0042")
    assert [t.id for t in page[-len(query) :]] == [t.id for t in query]


def test_whitespace_only(tok: MiniTokenizer) -> None:
    assert tok.tokenize("") == []
    assert tok.tokenize(" \n\t ") == []


def test_vocab_size(tok: MiniTokenizer) -> None:
    assert 4000 <= tok.vocab_size <= 8000
    assert len(tok.pieces()) == tok.vocab_size and all(tok.pieces())
