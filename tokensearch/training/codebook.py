"""Fit the cell codebook that ships beside the mini weights: the product quantiser the feature store packs
model-read cells with (``storage.codec.CellCode``; BENCHMARKS.md, "Index format and scale").

    python3 -m tokensearch.training.codebook --pdf-dir DIR [--weights DIR] [--pages 48] [--receipts 24]

The sample is what the indexer stores for pages like the ones users index: training-split pages of the
born-digital PDFs under ``--pdf-dir`` (the data card's, rendered grey at the model's dpi; every other one
through the training's scan degradations) and synthetic receipts, invoices and forms, each scaled as the
indexer scales an image, encoded with the weights' own int8 inference and cut to the text cells. Its
k-means per part is seeded, so a re-run on the same files gives the same codebook. It must be refitted
whenever the weights change: the file records the weights' fingerprint, and loading other weights leaves it out.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from PIL import Image

# 2 values a part at d = 96: 48 bytes a cell, R@1 as int8's on scans and 1.2 points lower on receipts; 3 values a
# part (32 bytes) lost up to 2 points
CELL_PARTS = 48
SAMPLE_CELLS = 200_000  # k-means of 256 centroids per part has ~780 cells a centroid


def sample_images(pdf_dir: Path, tokenizer, dpi: float, pages: int, receipts: int, seed: int) -> list[Image.Image]:
    """The pages the codebook is fitted on (grey, at the model's dpi where the source has one)."""
    from ..indexer.scale import normalise_scale
    from .augment import augment
    from .from_pdfs import PdfPages
    from .heldout import check_not_held_out
    from .receipts import ReceiptSynth

    check_not_held_out(pdf_dir)
    rng = random.Random(seed)
    source = PdfPages(pdf_dir, tokenizer, seed=seed, dpi_range=(dpi, dpi), split="train")
    out = []
    for i in range(pages):
        page = source()
        image = page.image
        if i % 2:
            image, _ = augment(image, page.mask, rng)
        out.append(Image.fromarray(image))
    synth = ReceiptSynth(tokenizer, seed=seed)
    for _ in range(receipts):
        sp = synth.random_page()
        out.append(normalise_scale(Image.fromarray(sp.image), dpi))
    return out


def text_cells(encoder, images: list[Image.Image], text_threshold: float, seed: int) -> np.ndarray:
    """The text cells ``encoder`` reads on ``images``, at most ``SAMPLE_CELLS`` of them drawn at random."""
    cells = []
    for image in images:
        (grid,) = encoder.encode_pages([image])
        cells.append(np.asarray(grid.features[grid.text >= text_threshold], dtype=np.float32))
    sample = np.concatenate(cells)
    if len(sample) > SAMPLE_CELLS:
        sample = sample[np.random.default_rng(seed).choice(len(sample), SAMPLE_CELLS, replace=False)]
    print(f"{sum(len(c) for c in cells)} text cells on {len(images)} pages; {len(sample)} kept")
    return sample


def fit_codebook(
    encoder, images: list[Image.Image], text_threshold: float, seed: int, parts: int = CELL_PARTS, rotate: bool = True
) -> dict[str, np.ndarray]:
    """The arrays of a :class:`CellCode` of ``parts`` parts fitted on the text cells ``encoder`` reads on
    ``images``."""
    from ..storage.codec import CellCode

    return CellCode.fit(text_cells(encoder, images, text_threshold, seed), parts, seed=seed, rotate=rotate).arrays()


def main(argv: list[str] | None = None) -> None:
    from ..indexer.pipeline import IndexOptions
    from ..samples import calibration_pages
    from ..tokenocr_model.mini_encoder import CODEBOOK_FILE, load_mini, weights_fingerprint
    from ..tokenocr_model.mini_files import mini_paths

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pdf-dir", type=Path, required=True, help="the data card's born-digital PDFs")
    ap.add_argument("--weights", default=None, help="weights dir (default: the shipped weights)")
    ap.add_argument("--pages", type=int, default=48)
    ap.add_argument("--receipts", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--parts", type=int, default=CELL_PARTS, help="bytes a cell (d divisible by it, <= 3 values a part)"
    )
    ap.add_argument("--no-rotation", action="store_true", help="plain product quantisation (for comparison)")
    ap.add_argument("--out", type=Path, default=None, help=f"default: {CODEBOOK_FILE} beside the weights")
    a = ap.parse_args(argv)
    wfile, tfile, _ = mini_paths(a.weights)
    encoder = load_mini(a.weights, dtype="auto", int8_pages=calibration_pages, codebook=False)
    images = sample_images(a.pdf_dir, encoder.tokenizer, encoder.dpi, a.pages, a.receipts, a.seed)
    arrays = fit_codebook(encoder, images, IndexOptions.text_threshold, a.seed, a.parts, not a.no_rotation)
    out = a.out or wfile.parent / CODEBOOK_FILE
    fingerprint = np.array(weights_fingerprint(wfile, tfile))
    if "rotation" in arrays:
        np.savez(out, centroids=arrays["centroids"], rotation=arrays["rotation"], weights=fingerprint)
    else:
        np.savez(out, centroids=arrays["centroids"], weights=fingerprint)
    c = arrays["centroids"]
    print(f"wrote {out}: {c.shape[0]} parts x 256 centroids of {c.shape[2]} values ({', '.join(arrays)})")


if __name__ == "__main__":
    main()
