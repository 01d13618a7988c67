"""Per-token similarity maps overlaid on a page — the seed's quick-start picture, for any TokenEncoder.

``render_heatmaps(encoder, image, query, out_dir)`` writes one PNG per BPE token of the query plus the
whole-query map (the cell-wise maximum over the token maps: where any query token matches). Colours show
the *absolute* cosine on one scale shared by all maps of the query (``0`` .. the largest cosine seen, at
least the model's threshold), so maps are comparable; a colour bar with the scale and the threshold mark
is drawn on the right. Colours come from the shared colour map (:mod:`tokensearch.highlight`, inferno-like:
dark = low, yellow = high). Only the :class:`TokenEncoder` interface and PIL/numpy are used for the maps.

CLI (wired by ``tokensearch heatmap``): :func:`add_heatmap_arguments` + :func:`run_heatmap`.
"""

from __future__ import annotations

import argparse
import io
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .highlight import colourise
from .imaging import flatten
from .tokenocr_model.interface import TokenEncoder

OVERLAY_ALPHA = 0.6  # weight of the colour map over the page (the official demo uses 0.6)
BAR_WIDTH = 24


def similarity_maps(encoder: TokenEncoder, image: Image.Image, query: str) -> tuple[list[str], np.ndarray]:
    """Token strings and their cosine maps ``(T, H, W)`` float32 on the encoder's grid for one page."""
    grid = encoder.encode_pages([image])[0]
    q = encoder.embed_query(query)
    if not q.tokens:
        raise ValueError(f"the query {query!r} has no tokens")
    feats = grid.features.astype(np.float32)  # (H, W, D) unit rows
    maps = np.einsum("hwd,td->thw", feats, q.vectors.astype(np.float32))  # (T, H, W)
    labels = [query[t.start : t.end] if t.end > t.start else t.piece for t in q.tokens]
    return labels, maps


@lru_cache(maxsize=1)
def _cjk_font() -> ImageFont.FreeTypeFont:
    import pymupdf  # its built-in CJK font (Droid Sans Fallback), the one it renders Chinese PDFs with

    return ImageFont.truetype(io.BytesIO(pymupdf.Font("china-s").buffer), 10)


def title_font(text: str) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's default font has no CJK glyphs (a Chinese token's title would be boxes): text with
    characters from U+2E80 on (CJK, kana, Hangul) gets PyMuPDF's built-in CJK font."""
    return _cjk_font() if any(ord(c) >= 0x2E80 for c in text) else ImageFont.load_default()


def overlay(
    page: Image.Image, sim: np.ndarray, vmin: float, vmax: float, threshold: float | None, title: str
) -> Image.Image:
    """One map: the cosine grid resized (bilinear) onto the page, blended, with a labelled colour bar."""
    page = flatten(page)
    W, H = page.size
    resized = np.asarray(Image.fromarray(sim.astype(np.float32), mode="F").resize((W, H), Image.Resampling.BILINEAR))
    colours = colourise((resized - vmin) / max(vmax - vmin, 1e-6))
    blended = (np.asarray(page, np.float32) * (1 - OVERLAY_ALPHA) + colours * OVERLAY_ALPHA).astype(np.uint8)
    font = title_font(title)
    label_w = 64
    canvas = Image.new("RGB", (W + BAR_WIDTH + label_w + 8, H + 32), "white")
    canvas.paste(Image.fromarray(blended), (0, 20))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), title, fill="black", font=font)
    x0 = W + 4
    ramp = colourise(np.linspace(1.0, 0.0, H)[:, None].repeat(BAR_WIDTH, axis=1))  # top = vmax
    canvas.paste(Image.fromarray(ramp), (x0, 20))

    def y_of(v: float) -> float:
        return 20 + (vmax - v) / max(vmax - vmin, 1e-6) * (H - 1)

    thr_y = y_of(threshold) if threshold is not None and vmin <= threshold <= vmax else None
    for v in np.linspace(vmin, vmax, 5):
        y = y_of(v)
        draw.line([(x0 + BAR_WIDTH, y), (x0 + BAR_WIDTH + 4, y)], fill="black")
        if thr_y is None or abs(y - thr_y) > 12:
            draw.text((x0 + BAR_WIDTH + 6, max(y - 5, 20)), f"{v:.2f}", fill="black", font=font)
    if thr_y is not None:
        draw.line([(x0 - 3, thr_y), (x0 + BAR_WIDTH + 3, thr_y)], fill="white", width=2)
        draw.text((x0 + BAR_WIDTH + 6, max(thr_y - 5, 20)), f"thr {threshold:.2f}", fill="black", font=font)
    return canvas


def _safe(label: str) -> str:
    return re.sub(r"[^\w.-]+", "_", label.strip()) or "space"


def render_heatmaps(encoder: TokenEncoder, image: Image.Image, query: str, out_dir: str | Path) -> list[Path]:
    """Write ``NN_<token>.png`` per query token and ``query.png`` (max over tokens); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels, maps = similarity_maps(encoder, image, query)
    threshold = encoder.info.extra.get("threshold")
    vmax = float(max(maps.max(), threshold or 0.0, 1e-3))
    vmin = 0.0
    paths = []
    for i, (label, sim) in enumerate(zip(labels, maps)):
        path = out / f"{i:02d}_{_safe(label)}.png"
        overlay(image, sim, vmin, vmax, threshold, f"token {i}: {label!r}  max cos {sim.max():.3f}").save(path)
        paths.append(path)
    combined = maps.max(axis=0)
    path = out / "query.png"
    overlay(image, combined, vmin, vmax, threshold, f"query {query!r}: max over {len(labels)} tokens").save(path)
    paths.append(path)
    return paths


# -- CLI ------------------------------------------------------------------------------------------


def add_heatmap_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``tokensearch heatmap IMAGE_OR_PDF "query" -o DIR [--page N]``."""
    parser.add_argument("source", type=Path, help="an image file or a PDF")
    parser.add_argument("query", help="the text whose token maps to draw")
    parser.add_argument("-o", "--out-dir", type=Path, default=Path("heatmaps"), help="output folder (created)")
    parser.add_argument("--page", type=int, default=1, help="1-based page of a PDF (default 1)")
    return parser


def load_page(source: Path, page: int, dpi: float) -> Image.Image:
    """An image file (any page of a multi-page TIFF), or one PDF page rendered at ``dpi``."""
    from .errors import NotFound
    from .indexer.sources import DocumentReader

    if not source.is_file():
        raise NotFound(f"no such file: {source}")
    with DocumentReader(source, max_page_pixels=200_000_000) as reader:
        return reader.render(page, dpi)


def run_heatmap(args: argparse.Namespace, encoder: TokenEncoder) -> int:
    """Run the command: render the page, write the maps, print their paths; returns the exit status 0."""
    image = load_page(args.source, args.page, encoder.dpi)
    for p in render_heatmaps(encoder, image, args.query, args.out_dir):
        print(p)
    return 0
