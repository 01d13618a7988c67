"""Our TokenOCR query ids against the reference tokenizer, called as the official quick start calls it.

The reference is what ``AutoTokenizer.from_pretrained(ckpt, trust_remote_code=True, use_fast=False)`` loads
for a TokenOCR checkpoint: InternVL's ``InternLM2Tokenizer`` (OpenGVLab/InternVL,
``internvl_chat/internvl/model/internlm2/tokenization_internlm2.py``), a slow
``transformers.PreTrainedTokenizer`` over the checkpoint's SentencePiece model. Its code is not copied
here; :class:`ReferenceInternLM2Tokenizer` restates what it does that decides the ids, and transformers'
own ``PreTrainedTokenizer`` does the rest for real:

* ``_tokenize`` is SentencePiece's ``encode(text, out_type=str)``; pieces map to ids with ``piece_to_id``;
* ``<unk>``, ``<s>``, ``</s>`` are its special tokens (SentencePiece ids 0, 1, 2) and the checkpoint's
  ``tokenizer_config.json`` adds InternVL's 9 tokens after the pieces as special tokens (no lstrip/rstrip),
  so ``PreTrainedTokenizer.tokenize`` cuts all 12 out of the text before SentencePiece sees it;
* BOS is prepended (``add_bos_token=True``), no EOS.

The official quick start (TongkunGuan/TokenFD ``quick_start.py``) then takes ``input_ids[1:]`` of
``tokenizer(q)`` when ``q`` starts with one of ``!"#$%&'()*+,-./0123456789:;<=>?@^_{|}~``, else of
``tokenizer(' ' + q)``. (The restatement gave the same ids as InternVL's file itself under transformers
4.37.2, the version TokenFD pins, and 5.24.0, for every query below.)

Where we differ on purpose — surrounding whitespace, special-token spellings, bare ``▁`` tokens — the
tests below pin the difference (see ``InternLM2Tokenizer.encode_query``, ``TokenOCREncoder.embed_query``
and docs/tokenocr.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm

from tests.tokenocr_factory import SPECIAL, make_tiny_checkpoint, train_tiny_sentencepiece
from tokensearch.tokenocr_model.sp_tokenizer import InternLM2Tokenizer
from tokensearch.tokenocr_model.tokenocr import load_tokenocr

transformers = pytest.importorskip("transformers")

# the official quick start's first characters that get no leading space
OFFICIAL_NO_SPACE = "!\"#$%&'()*+,-./0123456789:;<=>?@^_{|}~"

WORDS = ["total", "Invoice total", "TOTAL", "résumé", "café", "quick brown fox", "token-search"]
NUMBERS_AND_DATES = [
    "42",
    "-42",
    "42.50",
    "8.5%",
    "0042",
    "11/12/2020",
    "2020-12-11",
    "11.12.2020",
    "INV-2023-0042",
    "invoice 2020",
]
PUNCTUATION = [
    "(total)",
    "total,",
    "total:",
    "[total]",
    "\\total",
    "`x`",
    "!",
    "...",
    "#tag",
    "$42",
    "€42",
    "«total»",
    "'quoted'",
    '"quoted"',
    "total (net)",
    "a/b",
]
INNER_WHITESPACE = ["invoice  total", "invoice\ttotal", "invoice\ntotal"]
CJK = [
    "发票",
    "总金额",
    "发票总金额为人民币",
    "2020年12月11日",
    "订单号 INV-2023-0042",
    "中",
    "中华人民",
    "，",
    "发票。",
    "（发票）",
    "《合同》",
    "ｔｏｔａｌ",
    "发票 total",
    "税率 13%",
    "日本語のテキスト",
]
SAME_AS_REFERENCE = WORDS + NUMBERS_AND_DATES + PUNCTUATION + INNER_WHITESPACE + CJK
SURROUNDING_WHITESPACE = [" total", "total ", "  total  ", "\ttotal", "total\n", " 发票", "11/12/2020 "]
SPECIAL_SPELLINGS = [
    "</s>",
    "<s>",
    "<unk>",
    "<img>",
    "</box>",
    "<IMG_CONTEXT>",
    "a</s>b",
    "total </s>",
    "<s>total",
    "x<ref>y</ref>",
]


class ReferenceInternLM2Tokenizer(transformers.PreTrainedTokenizer):
    """InternVL's slow InternLM2 tokenizer, restated (see the module's docstring)."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, **kwargs):
        self.sp_model = spm.SentencePieceProcessor(model_file=vocab_file)
        super().__init__(
            unk_token="<unk>",
            bos_token="<s>",
            eos_token="</s>",
            pad_token="</s>",
            clean_up_tokenization_spaces=False,
            **kwargs,
        )

    @property
    def vocab_size(self) -> int:
        return self.sp_model.get_piece_size()

    def get_vocab(self) -> dict[str, int]:
        vocab = {self.sp_model.id_to_piece(i): i for i in range(self.vocab_size)}
        vocab.update(self.added_tokens_encoder)
        return vocab

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.sp_model.encode(text, out_type=str)

    def _convert_token_to_id(self, token: str) -> int:
        return self.sp_model.piece_to_id(token)

    def _convert_id_to_token(self, index: int) -> str:
        return self.sp_model.id_to_piece(index)

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        return [self.sp_model.bos_id()] + token_ids_0 + (token_ids_1 or [])


def reference_query_ids(ref: ReferenceInternLM2Tokenizer, query: str) -> list[int]:
    """The official quick start's query rule on the reference tokenizer."""
    text = query if query[0] in OFFICIAL_NO_SPACE else " " + query
    return ref(text)["input_ids"][1:]


def _reference(folder: Path) -> ReferenceInternLM2Tokenizer:
    ref = ReferenceInternLM2Tokenizer(str(folder / "tokenizer.model"))
    ref.add_tokens(
        [transformers.AddedToken(t, special=True, lstrip=False, rstrip=False, normalized=False) for t in SPECIAL],
        special_tokens=True,
    )
    return ref


@pytest.fixture(scope="module", params=["english", "bilingual"])
def pair(request, tmp_path_factory) -> tuple[InternLM2Tokenizer, ReferenceInternLM2Tokenizer]:
    """(ours, reference) over one tiny tokenizer: English-only, or one that knows Chinese pieces."""
    d = tmp_path_factory.mktemp(request.param)
    n = train_tiny_sentencepiece(d / "tokenizer.model", bilingual=request.param == "bilingual")
    ours = InternLM2Tokenizer(d / "tokenizer.model")
    ref = _reference(d)
    # the 9 InternVL tokens get the ids our default gives them (checkpoints' added_tokens.json agrees)
    assert [ref.convert_tokens_to_ids(t) for t in SPECIAL] == list(range(n, n + 9))
    return ours, ref


@pytest.mark.parametrize("query", SAME_AS_REFERENCE)
def test_query_ids_are_the_reference_tokenizers(pair, query):
    ours, ref = pair
    assert [t.id for t in ours.encode_query(query)] == reference_query_ids(ref, query)


def test_the_bilingual_tokenizer_cuts_chinese_into_cjk_pieces(tmp_path):
    """Like TokenOCR-2048-Bilingual's: Chinese words are pieces, unseen characters UTF-8 bytes."""
    train_tiny_sentencepiece(tmp_path / "tokenizer.model", bilingual=True)
    ours = InternLM2Tokenizer(tmp_path / "tokenizer.model")
    pieces = [t.piece for t in ours.encode_query("发票总金额")]
    assert not any(p.startswith("<0x") for p in pieces) and any(len(p.strip("\u2581")) >= 2 for p in pieces)
    assert [t.piece for t in ours.encode_query("中华")][-3:] == ["<0xE5>", "<0x8D>", "<0x8E>"]  # 华 unseen


@pytest.mark.parametrize("query", SURROUNDING_WHITESPACE)
def test_surrounding_whitespace_is_dropped_where_the_reference_keeps_it(pair, query):
    ours, ref = pair
    assert [t.id for t in ours.encode_query(query)] == reference_query_ids(ref, query.strip())
    assert reference_query_ids(ref, query) != reference_query_ids(ref, query.strip())  # a real difference


@pytest.mark.parametrize("query", SPECIAL_SPELLINGS)
def test_special_token_spellings_are_searched_as_their_characters(pair, query):
    ours, ref = pair
    tokens = ours.encode_query(query)
    special_ids = {ref.convert_tokens_to_ids(t) for t in ("<unk>", "<s>", "</s>", *SPECIAL)}
    assert not special_ids & {t.id for t in tokens}
    # the characters, through SentencePiece alone, with the query rule's space where it applies
    assert [t.id for t in tokens] == ours.sp.encode(("" if query[0] in OFFICIAL_NO_SPACE else " ") + query)
    assert special_ids & set(reference_query_ids(ref, query))  # the reference maps them to special ids


def test_embedded_query_is_the_reference_without_bare_space_tokens(tmp_path):
    """``embed_query`` drops ``▁`` tokens that stand alone (the background class of -seg checkpoints)
    when other tokens remain; the ids left are the reference's in order, the vectors their table rows."""
    enc = load_tokenocr(make_tiny_checkpoint(tmp_path / "ckpt", bilingual=True))
    ref = _reference(tmp_path / "ckpt")
    space = enc.tokenizer.space_id
    dropped = 0
    for query in SAME_AS_REFERENCE:
        want = reference_query_ids(ref, query)
        q = enc.embed_query(query)
        assert [t.id for t in q.tokens] == ([i for i in want if i != space] or want), query
        assert q.vectors.shape == (len(q.tokens), enc.info.dim)
        dropped += space in want
    assert dropped >= 3  # e.g. " 发票" -> "▁", "发票" and "invoice 2020" -> ..., "▁", "2", ...
    assert [t.id for t in enc.embed_query(" ").tokens] == []
