"""Tiny TokenOCR checkpoints in the official on-disk format, built from scratch for tests.

The builder is :mod:`tokensearch.tokenocr_model.random_checkpoint` (shared with ``bench/gpu_check.py``,
which builds the full-size model with it); its key names are written out by hand from the public
TokenFD/InternVL code, not derived from our model. Widths here are tiny (ViT width 32, 2 blocks, 56 px
tiles -> 4x4 ViT grid -> 16x16 cells per tile after the upsampler, D = 16) and the tokenizer is a
SentencePiece BPE model trained on the few sentences below. ``bilingual=True`` adds the Chinese ones: like
TokenOCR-2048-Bilingual's tokenizer it then knows CJK pieces (single characters and words); characters
it never saw fall back to UTF-8 byte pieces.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tokensearch.tokenocr_model.random_checkpoint import (
    SPECIAL_TOKENS,
    make_checkpoint,
    official_config,
    official_state_dict,  # noqa: F401  (re-exported)
    train_sentencepiece,
)

SENTENCES = [
    "Invoice total amount due 11/12/2020",
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, résumé café!",
    "INV-2023-0042 paid in full",
    "token search finds words in scanned pages",
    "Total: 42.50 EUR, tax 8.5%",
]
# Chinese written without spaces, mixed with numbers, Latin words and full-width punctuation, as on invoices
CHINESE_SENTENCES = [
    "发票总金额为人民币一千二百元整",
    "付款日期：2020年12月11日",
    "订单号 INV-2023-0042 已付款",
    "搜索扫描页面中的文字",
    "增值税专用发票，税率 13%",
    "发票号码 No. 0042 合计金额",
    "《合同》第三条（付款方式）",
]
SPECIAL = list(SPECIAL_TOKENS)

TINY_VISION = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14, image_size=56
)
TINY_D = 16
BILINGUAL_PIECES = 480  # every character of the training set is a piece: room for the Chinese ones


def train_tiny_sentencepiece(path: Path, vocab_size: int = 320, bilingual: bool = False) -> int:
    """Write an InternLM2-like SentencePiece model to ``path``; returns its number of pieces."""
    if bilingual:
        return train_sentencepiece(path, SENTENCES + CHINESE_SENTENCES, BILINGUAL_PIECES)
    return train_sentencepiece(path, SENTENCES, vocab_size)


def tiny_config(vocab: int, D: int = TINY_D, vision: dict | None = None) -> dict:
    return official_config(TINY_VISION if vision is None else vision, D, vocab)


def make_tiny_checkpoint(
    dir: str | Path,
    upsample: bool = True,
    sharded: bool = False,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    raw_training_names: bool = False,
    bilingual: bool = False,
    state_dict_edit=None,
    config_edit=None,
) -> Path:
    """Write a tiny TokenOCR checkpoint folder to ``dir`` and return it (``bilingual``: its tokenizer knows
    Chinese too).

    ``state_dict_edit(sd)`` / ``config_edit(cfg)`` may mutate the tensors / config before writing
    (for the tests of loud failures).
    """
    sentences, pieces = (SENTENCES + CHINESE_SENTENCES, BILINGUAL_PIECES) if bilingual else (SENTENCES, 320)
    return make_checkpoint(
        dir,
        TINY_VISION,
        TINY_D,
        sentences,
        pieces=pieces,
        upsample=upsample,
        sharded=sharded,
        seed=seed,
        dtype=dtype,
        raw_training_names=raw_training_names,
        state_dict_edit=state_dict_edit,
        config_edit=config_edit,
    )
