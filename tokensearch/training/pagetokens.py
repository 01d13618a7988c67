"""Token boxes from a PDF page's text layer: the shared core of the synthetic and the real-PDF data.

A page's text layer (``page.get_text("rawdict")``) gives every character with its box and baseline.
Lines are rebuilt from the characters (a horizontal gap wider than ~0.4 em counts as a space, so table
cells never run together), cut into BPE tokens by the model's tokenizer, and each token gets the union
of its characters' boxes, tightened vertically to the glyph band around the baseline. The result is the
TokenIT-style record: tokens in reading order with their ordinal, and a mask image whose pixel value
is the token ordinal + 1 (0 = background).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tokenocr_model.mini_tokenizer import MiniTokenizer

ASCENT = 0.74  # glyph band above the baseline, in font sizes (cap height ~0.7 + a margin)
DESCENT = 0.22  # below the baseline


@dataclass
class PageToken:
    id: int
    piece: str
    text: str  # the characters of the page the token covers
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in PDF points
    line: int  # line number on the page (reading order)


def page_lines(page, min_size: float = 3.0) -> list[tuple[str, list[tuple[float, float, float, float] | None]]]:
    """Horizontal text lines of a PyMuPDF page: (text, per-character box or None for inserted spaces)."""
    raw = page.get_text("rawdict", flags=0)
    lines = []
    for block in raw.get("blocks", []):
        for line in block.get("lines", []):
            if abs(line.get("dir", (1, 0))[1]) > 1e-3 or line.get("dir", (1, 0))[0] < 0:
                continue  # vertical or rotated text: skip
            text: list[str] = []
            boxes: list[tuple[float, float, float, float] | None] = []
            last_x1 = None
            for span in line.get("spans", []):
                size = float(span.get("size", 0))
                if size < min_size:
                    continue
                for ch in span.get("chars", []):
                    c = ch["c"]
                    x0, _, x1, _ = ch["bbox"]
                    oy = ch["origin"][1]
                    if last_x1 is not None and x0 - last_x1 > 0.4 * size and text and not text[-1].isspace():
                        text.append(" ")
                        boxes.append(None)
                    text.append(c)
                    boxes.append(None if c.isspace() else (x0, oy - ASCENT * size, x1, oy + DESCENT * size))
                    last_x1 = x1
            if text and any(b is not None for b in boxes):
                lines.append(("".join(text), boxes))
    return lines


def page_tokens(page, tokenizer: MiniTokenizer) -> list[PageToken]:
    """BPE tokens of the page's text layer with boxes in PDF points, in reading order."""
    out: list[PageToken] = []
    for ln, (text, boxes) in enumerate(page_lines(page)):
        for t in tokenizer.tokenize(text):
            bs = [b for b in boxes[t.start : t.end] if b is not None]
            if not bs:
                continue
            x0 = min(b[0] for b in bs)
            y0 = min(b[1] for b in bs)
            x1 = max(b[2] for b in bs)
            y1 = max(b[3] for b in bs)
            if x1 - x0 < 0.3 or y1 - y0 < 0.3:
                continue
            out.append(PageToken(t.id, t.piece, text[t.start : t.end], (x0, y0, x1, y1), ln))
    return out


def token_mask(tokens: list[PageToken], width: int, height: int, scale: float) -> np.ndarray:
    """(height, width) int32 mask: pixel = ordinal of the token covering it + 1, 0 = background.

    ``scale`` = pixels per PDF point (dpi / 72). Where boxes overlap the later token wins.
    """
    mask = np.zeros((height, width), dtype=np.int32)
    for i, t in enumerate(tokens):
        x0, y0, x1, y1 = (int(round(v * scale)) for v in t.box)
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(width, max(x1, x0 + 1)), min(height, max(y1, y0 + 1))
        mask[y0:y1, x0:x1] = i + 1
    return mask


def render_gray(page, dpi: float) -> np.ndarray:
    """The page rendered at ``dpi`` as a (H, W) uint8 grayscale array."""
    import pymupdf

    z = dpi / 72.0
    pix = page.get_pixmap(matrix=pymupdf.Matrix(z, z), colorspace=pymupdf.csGRAY, alpha=False)
    return np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.stride)[:, : pix.width].copy()
