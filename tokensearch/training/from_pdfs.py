"""Training pages from any folder of born-digital PDFs: their text layer gives free token masks.

Every page with enough horizontal text is rendered at a random resolution; its characters
(``page.get_text("rawdict")``) become BPE tokens with boxes exactly like the synthetic pages
(:mod:`.pagetokens`). Pages whose text layer does not match the picture (scans with an OCR layer
under an image, invisible text) would teach the model wrong things: pages with an image covering most
of the page, or whose text is rendered invisibly (render mode 3), are skipped.

``python -m tokensearch.training.from_pdfs PDF_DIR --out DIR -n 5`` writes samples to look at.
"""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import numpy as np
import pymupdf

from ..pdfpages import image_coverage
from ..tokenocr_model.mini_tokenizer import MiniTokenizer
from .data import PageSample
from .heldout import check_not_held_out
from .pagetokens import PageToken, page_tokens, render_gray, token_mask


def find_pdfs(folder: str | Path) -> list[Path]:
    """The PDFs under ``folder``; refuses held-out evaluation data (:mod:`.heldout`) with a loud error."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
    check_not_held_out(folder, files)
    return files


def latin_share(text: str) -> float:
    """Share of the non-space characters that are ASCII or Latin-1: the tokenizer's and the model's script."""
    chars = [c for c in text if not c.isspace()]
    return sum(ord(c) < 0x250 for c in chars) / max(1, len(chars))


def usable_page(page: pymupdf.Page, min_tokens: int = 20, min_latin: float = 0.95) -> bool:
    """Text layer present, visible, in Latin script, and not under a full-page image (scans with an OCR
    layer). Pages of Greek, Cyrillic, Hebrew... text would only teach hashed character buckets."""
    if image_coverage(page) > 0.5:
        return False
    for block in page.get_texttrace()[:50]:
        if block.get("type") == 3:  # invisible text
            return False
    text = page.get_text()
    return len(text.split()) >= min_tokens // 2 and latin_share(text) >= min_latin


def split_of(path: Path, val_share: int = 10) -> str:
    """Deterministic file-level split: about 1 file in ``val_share`` is held out for validation."""
    return "val" if zlib.crc32(path.name.encode()) % val_share == 0 else "train"


def pdf_page_sample(
    page: pymupdf.Page, tokenizer: MiniTokenizer, dpi: float
) -> tuple[np.ndarray, np.ndarray, list[PageToken], float]:
    """(image, mask, tokens, pixels per point) of one PDF page."""
    tokens = page_tokens(page, tokenizer)
    image = render_gray(page, dpi)
    scale = image.shape[1] / page.rect.width
    return image, token_mask(tokens, image.shape[1], image.shape[0], scale), tokens, scale


class PdfPages:
    """Endless random usable pages of the PDFs under ``folder`` (a page source for training)."""

    def __init__(
        self,
        folder: str | Path,
        tokenizer: MiniTokenizer,
        seed: int = 0,
        dpi_range: tuple[float, float] = (110, 210),
        split: str | None = None,
    ):
        files = find_pdfs(folder)
        if not files:
            raise FileNotFoundError(f"no PDF files under {folder}")
        # split=None: every file (a user's small folder); "train"/"val": held-out files for validation
        picked = [f for f in files if split is None or split_of(f) == split]
        self.files = picked or files
        self.tok = tokenizer
        self.rng = random.Random(seed)
        self.dpi_range = dpi_range
        self._bad: set[tuple[int, int]] = set()

    def __call__(self) -> PageSample:
        for _ in range(200):
            fi = self.rng.randrange(len(self.files))
            try:
                with pymupdf.open(self.files[fi]) as doc:
                    if doc.needs_pass or doc.page_count == 0:
                        continue
                    pi = self.rng.randrange(doc.page_count)
                    if (fi, pi) in self._bad:
                        continue
                    page = doc[pi]
                    if not usable_page(page):
                        self._bad.add((fi, pi))
                        continue
                    image, mask, tokens, _ = pdf_page_sample(page, self.tok, self.rng.uniform(*self.dpi_range))
            except Exception:  # a broken file must not stop training
                continue
            if tokens:
                return PageSample.from_tokens(image, mask, tokens)
        raise RuntimeError(f"no usable text pages found in {len(self.files)} PDFs (scanned or image-only?)")


def main(argv: list[str] | None = None) -> None:
    import argparse

    from PIL import Image

    from ..tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR

    ap = argparse.ArgumentParser(description="write training samples from PDFs (PNG, mask PNG, JSON)")
    ap.add_argument("pdf_dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--dpi", type=float, default=150)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = MiniTokenizer.from_file(WEIGHTS_DIR / TOKENIZER_FILE)
    n = 0
    for f in find_pdfs(a.pdf_dir):
        with pymupdf.open(f) as doc:
            for page in doc:
                if n >= a.n:
                    return
                if not usable_page(page):
                    continue
                image, mask, tokens, scale = pdf_page_sample(page, tok, a.dpi)
                Image.fromarray(image).save(out / f"page{n:03d}.png")
                shown_mask = ((mask * 47) % 251 + (mask > 0) * 4).astype(np.uint8)
                Image.fromarray(shown_mask).save(out / f"page{n:03d}_mask.png")
                (out / f"page{n:03d}.json").write_text(
                    json.dumps(
                        {
                            "source": str(f),
                            "page": page.number + 1,
                            "tokens": [
                                {
                                    "ordinal": i,
                                    "id": t.id,
                                    "piece": t.piece,
                                    "text": t.text,
                                    "box": [round(v * scale, 1) for v in t.box],
                                }
                                for i, t in enumerate(tokens)
                            ],
                        }
                    )
                )
                print(f"{f.name} p{page.number + 1}: {len(tokens)} tokens")
                n += 1


if __name__ == "__main__":
    main()
