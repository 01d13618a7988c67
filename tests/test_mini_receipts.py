"""Synthetic receipts, invoices and forms: token boxes on ink, receipt content, print effects, seeding,
and their way into training (``--receipt-fraction``)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from tokensearch.tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR
from tokensearch.tokenocr_model.mini_tokenizer import MiniTokenizer
from tokensearch.training import print_effects as fx
from tokensearch.training.cli_args import _overrides, add_train_arguments
from tokensearch.training.data import CropStream, PageMix
from tokensearch.training.receipt_text import ReceiptText, number_words
from tokensearch.training.receipts import ReceiptSynth
from tokensearch.training.synth import SynthPage
from tokensearch.training.train import ReceiptSource, SourceFactory, SynthSource, TrainConfig

AMOUNT = re.compile(r"\d[\d.,]*[.,]\d\d(?!\d)")
DATE = re.compile(
    r"\d{1,4}[/.-](\d{1,2}|[A-Za-z]{3})[/.-]\d{2,4}"  # 27/03/2018, 2018-03-27, 27-Mar-18
    r"|\d{1,2} ?[A-Za-z]{3} ?\d{4}|[A-Za-z]{3} \d{1,2}, \d{4}"
)  # 27 MAR 2018, 27Mar2018, Mar 27, 2018
TIME = re.compile(r"\d{1,2}[:.]\d\d")


@pytest.fixture(scope="module")
def tok() -> MiniTokenizer:
    return MiniTokenizer.from_file(WEIGHTS_DIR / TOKENIZER_FILE)


@pytest.fixture(scope="module")
def pages(tok) -> dict[str, list[SynthPage]]:
    synth = ReceiptSynth(tok, seed=11)
    return {
        kind: [synth.page(150, kind) for _ in range(3 if kind == "till" else 1)] for kind in ("till", "invoice", "form")
    }


def lines_of(page: SynthPage) -> list[str]:
    """The page's text lines rebuilt from its tokens (pieces of one line joined)."""
    out: dict[int, list[str]] = {}
    for t in page.tokens:
        out.setdefault(t.line, []).append(t.text)
    return ["".join(v) for v in out.values()]


def test_every_kind_of_receipt_page_has_token_boxes_on_ink(pages) -> None:
    for kind, ps in pages.items():
        for p in ps:
            assert p.image.dtype == np.uint8 and p.image.shape == p.mask.shape
            assert len(p.tokens) > 50, kind
            assert 0 < int(p.mask.max()) <= len(p.tokens)
            paper = float(np.percentile(p.image[p.mask == 0], 95))  # (a dark table may surround the roll)
            darkest = np.full(len(p.tokens) + 1, 255, np.uint8)  # per token ordinal + 1
            np.minimum.at(darkest, p.mask.ravel(), p.image.ravel())
            shown = np.unique(p.mask[p.mask > 0])  # (tokens wholly covered by a later one have no pixel)
            # letters and digits: a lone '.' or ':' of faint thermal print may fade into the paper, which is how
            # such print looks (with only DejaVu fonts installed, 6 % of one till's tokens were such points)
            shown = shown[[any(ch.isalnum() for ch in p.tokens[k - 1].text) for k in shown]]
            inked = darkest[shown] < paper - 40
            assert inked.mean() > 0.95, (kind, inked.mean())


def test_receipts_print_upper_case_items_amounts_dates_and_times(pages) -> None:
    for p in pages["till"]:
        lines = lines_of(p)
        text = "\n".join(lines)
        assert sum(1 for ln in lines if re.search(r"[A-Z]{3}", ln) and not re.search(r"[a-z]", ln)) >= 5
        assert len(AMOUNT.findall(text)) >= 4, text
        assert DATE.search(text) or TIME.search(text), text
    invoice = "\n".join(lines_of(pages["invoice"][0]))
    assert len(AMOUNT.findall(invoice)) >= 4 and DATE.search(invoice), invoice


def test_receipt_text_formats_amounts_dates_and_words() -> None:
    t = ReceiptText(random.Random(0))
    t.cur_prefix, t.cur_suffix, t.decimal_comma, t.thousands = "RM", "", False, True
    assert t.money(125000) == "1,250.00" and t.money(443, currency=True) == "RM4.43" and t.money(-2) == "-0.02"
    t.decimal_comma, t.cur_prefix, t.cur_suffix = True, "", " EUR"
    assert t.money(125050, currency=True) == "1.250,50 EUR"
    seen = set()
    for _ in range(60):
        t.new_document()
        seen.add(bool(DATE.fullmatch(t.date())))
        assert TIME.search(t.time()) or t.time().isdigit()
    assert True in seen
    assert number_words(1250) == "ONE THOUSAND TWO HUNDRED FIFTY"


def test_receipts_are_deterministic_per_seed(tok) -> None:
    a, b, c = (ReceiptSynth(tok, seed=s).page(120, "till") for s in (5, 5, 6))
    assert np.array_equal(a.image, b.image) and [t.box for t in a.tokens] == [t.box for t in b.tokens]
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_dot_print_makes_separate_dots_where_the_glyph_was() -> None:
    amount = np.zeros((60, 90), np.float32)
    amount[12:40, 20:70] = 1.0  # a solid glyph stroke
    rng = random.Random(0)
    dots = fx.dot_print(amount, rng, (6, 6), round_dots=True, threshold=0.4)
    assert dots[:6].max() < 0.05 and dots[:, :14].max() < 0.05  # nothing far from the glyph
    inside = dots[12:40, 20:70]
    assert 0.3 < inside.mean() < 0.95  # dots with paper between them, not a solid block
    faded = fx.thermal_fade(amount, random.Random(1), floor=0.4)
    assert (faded[amount > 0] >= 0.4 - 1e-6).all() and faded[amount == 0].max() == 0


def test_page_mix_draws_sources_by_their_shares_and_seed() -> None:
    def draws(seed: int) -> list[str]:
        mix = PageMix([(0.25, lambda: "receipt"), (0.75, lambda: "document")], seed=seed)
        return [mix() for _ in range(400)]

    assert 60 < draws(3).count("receipt") < 140
    assert draws(3) == draws(3) != draws(4)
    with pytest.raises(ValueError):
        PageMix([(0.0, lambda: 1)], seed=0)


def test_receipt_fraction_reaches_the_training_stream(tmp_path: Path) -> None:
    import argparse

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    kw = _overrides(p.parse_args(["--out", str(tmp_path), "--receipt-fraction", "0.25"]))
    assert kw["receipt_fraction"] == 0.25
    assert "receipt_fraction" not in _overrides(p.parse_args(["--out", str(tmp_path)]))  # default: unchanged
    tok_path = str(WEIGHTS_DIR / TOKENIZER_FILE)
    assert isinstance(SourceFactory(TrainConfig(out=str(tmp_path)), tok_path)(1), SynthSource)
    cfg = TrainConfig(out=str(tmp_path), receipt_fraction=1.0)
    source = SourceFactory(cfg, tok_path)(1)
    assert isinstance(source, PageMix) and isinstance(source.sources[0], ReceiptSource)
    stream = iter(CropStream(SourceFactory(cfg, tok_path), seed=2, height=96, width=160, buffer=2, reuse=2))
    crops = [next(stream) for _ in range(4)]
    assert all(c["image"].shape == (96, 160) for c in crops)
    assert sum(len(c["ids"]) for c in crops) > 0
