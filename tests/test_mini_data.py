"""The data engine: synthetic pages, token masks, cell labels, crops, PDF pages."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pymupdf
import pytest

from tests.builders import Page, Text, write_pdf
from tokensearch.tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR
from tokensearch.tokenocr_model.mini_tokenizer import MiniTokenizer, piece_to_text
from tokensearch.training.augment import augment
from tokensearch.training.data import PageSample, cell_labels, collate, random_crop
from tokensearch.training.from_pdfs import PdfPages, pdf_page_sample
from tokensearch.training.pagetokens import page_lines
from tokensearch.training.synth import DocumentSynth


@pytest.fixture(scope="module")
def tok() -> MiniTokenizer:
    return MiniTokenizer.from_file(WEIGHTS_DIR / TOKENIZER_FILE)


@pytest.fixture(scope="module")
def page(tok):
    return DocumentSynth(tok, seed=3).page(dpi=150)


def test_synthetic_page_has_tokens_masks_and_json(page, tok) -> None:
    assert page.image.dtype == np.uint8 and page.image.shape == page.mask.shape
    assert len(page.tokens) > 50
    assert int(page.mask.max()) <= len(page.tokens)
    rec = page.to_json()
    assert [t["ordinal"] for t in rec["tokens"]] == list(range(len(page.tokens)))
    for t in page.tokens:
        # each token's text is what the tokenizer cut out (ASCII: the piece without the space mark)
        piece = piece_to_text(t.piece)
        if piece.isascii():
            assert t.text == piece.lstrip(" ")


def test_mask_pixels_agree_with_token_boxes(page) -> None:
    H, W = page.mask.shape
    seen = 0
    for i, t in enumerate(page.tokens):
        ys, xs = np.nonzero(page.mask == i + 1)
        if len(ys) == 0:
            continue  # fully covered by a later overlapping token
        seen += 1
        x0, y0, x1, y1 = (v * page.scale for v in t.box)
        assert xs.min() >= np.floor(x0) - 1 and xs.max() <= np.ceil(x1) + 1
        assert ys.min() >= np.floor(y0) - 1 and ys.max() <= np.ceil(y1) + 1
    assert seen >= 0.9 * len(page.tokens)


def test_mask_covers_ink(page, tok) -> None:
    # most dark pixels of the pages belong to some token (rules, boxes and bands are the rest: a form
    # page can be mostly rules, so this holds over a few pages, not on every one)
    synth = DocumentSynth(tok, seed=3)
    pages = [synth.page(dpi=150) for _ in range(4)]
    ink = sum(int((p.image < 100).sum()) for p in pages)
    inside = sum(int(((p.mask > 0) & (p.image < 100)).sum()) for p in pages)
    assert inside > 0.6 * ink
    # and tokens cover ink: a token box is not blank paper
    dark_in_tokens = [
        ((page.image < 160) & (page.mask == i + 1)).any() for i in range(len(page.tokens)) if (page.mask == i + 1).any()
    ]
    assert np.mean(dark_in_tokens) > 0.95


def test_cell_labels_give_every_token_a_cell() -> None:
    mask = np.zeros((32, 48), np.int32)
    mask[4:14, 2:34] = 1  # a word spanning several cells
    mask[20:23, 41:43] = 2  # a "." too small to cover a cell centre
    lab = cell_labels(mask)
    assert lab.shape == (4, 6)
    assert set(np.unique(lab[lab >= 0])) == {0, 1}
    assert lab[0, 0] == 0 and lab[2, 5] == 1
    assert (lab == -2).any()  # touched but not centred cells are ignored, not background
    assert lab[3, 0] == -1


def test_random_crop_and_collate(page) -> None:
    sample = PageSample.from_tokens(page.image, page.mask, page.tokens)
    rng = random.Random(0)
    crops = [random_crop(sample, rng, 96, 160, strength=1.0) for _ in range(4)]
    for c in crops:
        assert c["image"].shape == (96, 160) and c["labels"].shape == (12, 20)
        assert c["labels"].max() < len(c["ids"])
        present = np.unique(c["labels"][c["labels"] >= 0])
        assert list(present) == list(range(len(c["ids"])))  # compact instance indices
    b = collate(crops)
    assert tuple(b["image"].shape) == (4, 1, 96, 160)
    assert len(b["ids"]) == sum(len(c["ids"]) for c in crops) == len(b["owner"])
    assert int(b["labels"].max()) == len(b["ids"]) - 1


def test_augment_moves_mask_with_image() -> None:
    rng = random.Random(1)
    img = np.full((64, 96), 255, np.uint8)
    img[20:40, 30:70] = 0
    mask = np.zeros((64, 96), np.int32)
    mask[20:40, 30:70] = 1
    for _ in range(20):
        a, m = augment(img, mask, rng, 1.0)
        assert a.shape == img.shape and m.shape == mask.shape and a.dtype == np.uint8
        # the labelled region stays on the dark block (inverted crops are done elsewhere)
        assert a[m == 1].mean() < a[m == 0].mean()


def _write_pdf(path: Path) -> None:
    lines = [
        Text(40, 60, "Invoice INV-2023-0042 total 1,234.56", fontname="helv", fontsize=12),
        Text(40, 90, "Payment due 11/12/2020 to Example Corp", fontname="tiro", fontsize=11),
        Text(40, 120, "Col A", fontname="cour", fontsize=10),
        Text(200, 120, "Col B", fontname="cour", fontsize=10),
    ]
    lines += [Text(40, 150 + 18 * i, f"line {i} of filler words for the text layer", fontsize=10) for i in range(6)]
    write_pdf(path, [Page(lines, width=400, height=300)])


def test_pdf_pages_give_token_masks(tmp_path: Path, tok) -> None:
    _write_pdf(tmp_path / "a.pdf")
    with pymupdf.open(tmp_path / "a.pdf") as doc:
        texts = [t for t, _ in page_lines(doc[0])]
        image, mask, tokens, scale = pdf_page_sample(doc[0], tok, 100)
    assert any("INV-2023-0042" in t for t in texts)
    assert not any("ACol" in t for t in texts), texts  # far-apart text never runs together
    assert image.shape == mask.shape and len(tokens) > 20 and mask.max() == len(tokens)
    got = PdfPages(tmp_path, tok, seed=0)()
    assert len(got.ids) == len(got.pieces) > 20


def test_random_crop_of_a_page_whose_tokens_fall_between_sampled_pixels() -> None:
    # one tiny token at (1, 1): the crop centring samples every 4th pixel and finds none of it
    img = np.full((64, 64), 255, np.uint8)
    mask = np.zeros((64, 64), np.int32)
    mask[1, 1] = 1
    img[1, 1] = 0
    sample = PageSample(img, mask, np.array([5], dtype=np.int64), ["a"])
    rng = random.Random(0)
    crops = [random_crop(sample, rng, 32, 32, strength=0.0) for _ in range(20)]
    assert all(c["image"].shape[-2:] == (32, 32) for c in crops)
