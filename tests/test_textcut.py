"""Where page text and queries are cut before the tokenizer (``textcut``), and what a text-layer page paints.

A Chinese line has no spaces: a query for part of it must yield tokens that were painted on that part.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.tokenocr_factory import make_tiny_checkpoint
from tokensearch.indexer.sources import TextChar
from tokensearch.indexer.textlayer import TextLayerPainter
from tokensearch.textcut import cut, cut_word, embed_cut, is_cjk
from tokensearch.tokenocr_model.tokenocr import TokenOCREncoder, load_tokenocr

LINE = "发票总金额为人民币一千二百元整"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> TokenOCREncoder:
    """A tiny official-layout checkpoint whose tokenizer knows Chinese pieces (e.g. one for 发票总)."""
    return load_tokenocr(make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), bilingual=True))


@pytest.mark.parametrize(
    "word, pieces",
    [
        ("发票总金额", ["发", "票", "总", "金", "额"]),
        ("(total),", ["(", "total", "),"]),
        ("total", ["total"]),
        ("11/12/2020", ["11/12/2020"]),
        ("INV-2023-0042号", ["INV-2023-0042", "号"]),
        ("2020年12月11日", ["2020", "年", "12", "月", "11", "日"]),
        ("日期:2020", ["日", "期", ":", "2020"]),
        ("《合同》第三条", ["《", "合", "同", "》", "第", "三", "条"]),
        ("ひらがなカタカナ", list("ひらがなカタカナ")),
        ("𠀀x", ["𠀀", "x"]),  # extension B, outside the BMP
    ],
)
def test_cjk_characters_and_edge_punctuation_are_cut_alone(word, pieces):
    got = cut_word(word)
    assert [p for _, p in got] == pieces
    assert all(word[off : off + len(p)] == p for off, p in got)  # offsets index the word


def test_cut_offsets_index_the_whole_text():
    text = "付款 (total), 发票号\t0042"
    got = cut(text)
    assert [p for _, p in got] == ["付", "款", "(", "total", "),", "发", "票", "号", "0042"]
    assert all(text[off : off + len(p)] == p for off, p in got)


def test_only_scripts_written_without_spaces_count_as_cjk():
    assert all(is_cjk(c) for c in "发票。、「」ひカㄅ")
    assert not any(is_cjk(c) for c in "aé1,-€한")  # Hangul is written with spaces between words


def test_a_query_for_part_of_a_chinese_line_yields_the_tokens_painted_on_that_part(encoder):
    line = embed_cut(encoder, LINE)
    for i in range(len(LINE)):
        for j in range(i + 1, len(LINE) + 1):
            part = embed_cut(encoder, LINE[i:j])
            painted = [t.id for t in line.tokens if i <= t.start and t.end <= j]
            assert [t.id for t in part.tokens] == painted, LINE[i:j]
            np.testing.assert_array_equal(
                part.vectors, line.vectors[[k for k, t in enumerate(line.tokens) if i <= t.start and t.end <= j]]
            )
    # the official rule on the whole line cuts it otherwise: "总金额" is not a run of the line's tokens
    whole = [t.id for t in encoder.embed_query(LINE).tokens]
    query = [t.id for t in encoder.embed_query("总金额").tokens]
    assert not any(whole[k : k + len(query)] == query for k in range(len(whole)))


def test_plain_words_are_cut_as_the_query_rule_cuts_them(encoder):
    for text in ("total", "Invoice total", "11/12/2020", "INV-2023-0042", "total amount due"):
        assert [t.id for t in embed_cut(encoder, text).tokens] == [t.id for t in encoder.embed_query(text).tokens]


def test_page_text_tokens_are_the_painted_cut(encoder):
    text = "发票 (total), 2020年12月11日"
    assert [(t.id, t.start, t.end) for t in encoder.tokenize(text)] == [
        (t.id, t.start, t.end) for t in embed_cut(encoder, text).tokens
    ]


def test_byte_pieces_of_one_character_share_its_glyph_left_to_right(encoder):
    """华 is not in the tiny vocabulary: three UTF-8 byte pieces, each painted on its own third of the
    glyph, in order, so a query's chain (each token right of the one before) finds them."""
    word = [TextChar("中", (0.0, 0.0, 0.3, 0.1)), TextChar("华", (0.3, 0.0, 0.6, 0.1))]
    q = embed_cut(encoder, "中华")
    assert [t.piece for t in q.tokens] == ["中", "<0xE5>", "<0x8D>", "<0x8E>"]
    ys, xs, feats = TextLayerPainter(encoder).paint([word], 10, 10)
    owner = [int(np.argmax(q.vectors @ f)) for f in feats[np.argsort(xs)]]
    assert owner == [0, 0, 0, 1, 2, 3]
