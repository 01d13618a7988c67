"""The InternLM2 SentencePiece tokenizer read without transformers: query rule, special tokens, spans."""

import json

import pytest
import sentencepiece as spm

from tests.tokenocr_factory import SPECIAL, train_tiny_sentencepiece
from tokensearch.tokenocr_model.sp_tokenizer import SPACE_PIECE, InternLM2Tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    train_tiny_sentencepiece(d / "tokenizer.model")
    return InternLM2Tokenizer.from_checkpoint(d)


def test_vocab_is_pieces_plus_9_internvl_tokens(tok):
    assert tok.vocab_size == tok.n_pieces + 9
    assert [tok.id_to_piece(tok.n_pieces + i) for i in range(9)] == SPECIAL
    assert tok.added_tokens["<IMG_CONTEXT>"] == tok.n_pieces + 2
    with pytest.raises(ValueError):
        tok.id_to_piece(tok.vocab_size)


def test_added_tokens_json_wins(tmp_path):
    train_tiny_sentencepiece(tmp_path / "tokenizer.model")
    n = spm.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model")).get_piece_size()
    order = list(reversed(SPECIAL))
    (tmp_path / "added_tokens.json").write_text(json.dumps({t: n + i for i, t in enumerate(order)}))
    t = InternLM2Tokenizer.from_checkpoint(tmp_path)
    assert t.id_to_piece(n) == "</box>" and t.vocab_size == n + 9


def test_space_token_is_the_visible_space(tok):
    assert tok.id_to_piece(tok.space_id) == SPACE_PIECE


@pytest.mark.parametrize(
    "query, spaced",
    [
        ("total", True),
        ("Invoice total", True),
        ("résumé", True),
        ("11/12/2020", False),
        ("2020", False),
        ("(total)", False),
        ("-42", False),
        ("#tag", False),
        (".5", False),
    ],
)
def test_query_rule_prepends_a_space_unless_digit_or_punctuation(tok, query, spaced):
    tokens = tok.encode_query(query)
    expect = tok.sp.encode((" " if spaced else "") + query)  # what tokenizer(...)["input_ids"][1:] gives
    assert [t.id for t in tokens] == expect
    assert tokens[0].piece.startswith(SPACE_PIECE) == spaced
    assert tok.bos_id not in [t.id for t in tokens]


def test_bos_is_dropped_even_if_the_model_adds_one(tmp_path):
    path = tmp_path / "tokenizer.model"
    train_tiny_sentencepiece(path)
    t = InternLM2Tokenizer(path)
    t.sp = spm.SentencePieceProcessor(model_file=str(path), add_bos=True)  # like HF's tokenizer(...) with BOS
    assert t.sp.encode(" total")[0] == t.bos_id
    ids = [x.id for x in t.encode_query("total")]
    assert t.bos_id not in ids and ids == t.sp.encode(" total")[1:]


def test_query_spans_index_the_original_query(tok):
    q = "  total 11"
    tokens = tok.encode_query(q)
    assert "".join(q[t.start : t.end] for t in tokens) == "total 11"  # the space before 11 is its own token
    assert all(0 <= t.start <= t.end <= len(q) for t in tokens)
    assert tok.encode_query("   ") == []


def test_page_tokens_have_char_spans_and_word_rule(tok):
    text = "Invoice  total\n11/12/2020 café 中"
    tokens = tok.tokenize(text)
    assert all(t.id != tok.space_id for t in tokens)
    # every token's span lies inside one word, and each word is covered exactly by its tokens
    for word_start, word in [(0, "Invoice"), (9, "total"), (15, "11/12/2020"), (26, "café"), (31, "中")]:
        inside = [t for t in tokens if word_start <= t.start < word_start + len(word)]
        spans = sorted({(t.start, t.end) for t in inside})  # byte pieces of one char share its span
        assert "".join(text[a:b] for a, b in spans) == word
        assert all(t.end <= word_start + len(word) for t in inside)
        # same ids as the one-word query would get (minus the bare space token)
        assert [t.id for t in inside] == [t.id for t in tok.encode_query(word) if t.id != tok.space_id]


def test_multibyte_byte_fallback_pieces_share_the_character(tok):
    tokens = tok.tokenize("中")
    assert len(tokens) >= 2 and all(t.piece.startswith("<0x") for t in tokens)
    assert all((t.start, t.end) == (0, 1) for t in tokens)


def test_missing_tokenizer_model_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        InternLM2Tokenizer.from_checkpoint(tmp_path)


@pytest.mark.parametrize("query", [" total", "total ", "\ttotal\n", "  11/12/2020  "])
def test_surrounding_whitespace_is_not_part_of_the_query(tok, query):
    # the reference tokenizer keeps it (an extra ▁, a byte token for a tab): docs/tokenocr.md
    assert [t.id for t in tok.encode_query(query)] == [t.id for t in tok.encode_query(query.strip())]


@pytest.mark.parametrize("query", ["</s>", "<s>", "<unk>", "<img>", "</box>", "a</s>b"])
def test_special_token_spellings_are_searched_as_their_characters(tok, query):
    # the reference maps them to control ids whose rows never saw a glyph: docs/tokenocr.md
    ids = [t.id for t in tok.encode_query(query)]
    assert not {tok.bos_id, tok.sp.eos_id(), tok.sp.unk_id(), *tok.added_tokens.values()} & set(ids)
    assert tok.sp.decode(ids) == (" " if tok.needs_space(query) else "") + query
