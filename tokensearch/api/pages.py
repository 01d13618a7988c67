"""Page pictures for the API: cached page images (rasterised once, scaled copies on disk) and heatmaps.

Cache layout: ``<home>/cache/pages/<doc_id>/<version>/p<page>-full.png`` (the engine's rasterisation, made
once) and ``p<page>-w<width>.<png|webp>`` (scaled copies). ``version`` hashes what the store knows of the
document's content, so a re-indexed file never shows a stale picture. Widths snap up to :data:`WIDTHS`, so
a client cannot fill the disk by asking for every width.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..highlight import colourise
from ..imaging import flatten
from ..storage.records import DocumentDetail, DocumentInfo
from .errors import ApiError, not_found
from .security import is_inside

if TYPE_CHECKING:
    from ..engine import Engine, TokenMaps

WIDTHS = (160, 240, 320, 480, 640, 800, 1024, 1280, 1600, 2048, 2560)
FORMATS = {"png": "image/png", "webp": "image/webp"}


def doc_version(doc: DocumentInfo) -> str:
    """Names the cache folder of a document's pictures: changes with its content (a reused id, a re-index)."""
    basis = {
        k: v for k, v in (("sha256", doc.sha256), ("size", doc.size), ("indexed_at", doc.indexed_at)) if v is not None
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:12]


def snap_width(width: int | None, full_width: int) -> int:
    if width is None:
        width = 1280
    for w in WIDTHS:
        if w >= width:
            return min(w, full_width)
    return min(WIDTHS[-1], full_width)


class PageImageCache:
    def __init__(self, engine: Engine, cache_dir: Path, roots: list[Path], max_page_pixels: int):
        self.engine = engine
        self.dir = Path(cache_dir) / "pages"
        self.roots = roots
        self.max_page_pixels = max_page_pixels
        self._locks = [threading.Lock() for _ in range(64)]  # striped: one picture is made once at a time

    def _lock(self, key: str) -> threading.Lock:
        return self._locks[int(hashlib.blake2b(key.encode(), digest_size=2).hexdigest(), 16) % len(self._locks)]

    def checked_document(self, doc_id: int, page: int) -> DocumentDetail:
        """The document, after checking the page exists and the file lies inside the roots."""
        doc = self.engine.document(doc_id)
        if doc is None:
            raise not_found(f"document {doc_id}")
        if page < 1 or page > doc.pages:
            raise not_found(f"page {page} of document {doc_id} ({doc.pages} pages)")
        if doc.path is None or not is_inside(Path(doc.path).resolve(), self.roots):
            raise ApiError(
                403,
                "forbidden",
                f"document {doc_id} lies outside the folders this server may read; "
                "start it with --root <folder> (TOKENSEARCH_ROOTS) to serve its pages",
            )
        return doc

    def full(self, doc_id: int, page: int, doc: DocumentInfo) -> Path:
        folder = self.dir / str(doc_id) / doc_version(doc)
        target = folder / f"p{page}-full.png"
        if target.exists():
            return target
        with self._lock(str(target)):
            if target.exists():
                return target
            img = self.engine.page_image(doc_id, page)
            if img.width * img.height > self.max_page_pixels:
                raise ApiError(
                    422,
                    "page_too_large",
                    f"page is {img.width}x{img.height} px, above the "
                    f"limit of {self.max_page_pixels} pixels (TOKENSEARCH_MAX_PAGE_PIXELS)",
                )
            folder.mkdir(parents=True, exist_ok=True)
            _save_atomic(flatten(img, keep_gray=True), target, "PNG", compress_level=1)
        return target

    def get(self, doc_id: int, page: int, width: int | None, fmt: str) -> Path:
        doc = self.checked_document(doc_id, page)
        full = self.full(doc_id, page, doc)
        with Image.open(full) as im:
            full_w, full_h = im.size
        w = snap_width(width, full_w)
        target = full.with_name(f"p{page}-w{w}.{fmt}")
        if target.exists():
            return target
        with self._lock(str(target)):
            if target.exists():
                return target
            with Image.open(full) as im:
                im.load()
                h = max(1, round(full_h * w / full_w))
                small = im if w == full_w else im.resize((w, h), Image.Resampling.LANCZOS)
                if fmt == "webp":
                    _save_atomic(small, target, "WEBP", quality=82, method=4)
                else:
                    _save_atomic(small, target, "PNG", optimize=False, compress_level=6)
        return target

    def page_size(self, doc_id: int, page: int) -> tuple[int, int]:
        doc = self.checked_document(doc_id, page)
        with Image.open(self.full(doc_id, page, doc)) as im:
            return im.size

    def forget(self, doc_id: int) -> None:
        shutil.rmtree(self.dir / str(doc_id), ignore_errors=True)


def _save_atomic(img: Image.Image, target: Path, fmt: str, **kw: Any) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    img.save(tmp, fmt, **kw)
    os.replace(tmp, target)


# -- heatmaps -----------------------------------------------------------------------------------------------


class TokenMapsCache:
    """A few recent ``engine.token_maps`` results: the viewer asks for the same page's maps repeatedly."""

    def __init__(self, engine: Engine, size: int = 8):
        self.engine = engine
        self.size = size
        self._items: OrderedDict[tuple[int, int, str], TokenMaps] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, doc_id: int, page: int, query: str) -> TokenMaps:
        key = (doc_id, page, query)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        maps = self.engine.token_maps(doc_id, page, query)
        with self._lock:
            self._items[key] = maps
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return maps

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def max_pool(m: np.ndarray, max_side: int) -> np.ndarray:
    """Max-pool the last two axes by the smallest integer factor that brings both within ``max_side``
    (keeps small hot spots visible, bounds the JSON size for large grids such as TokenOCR's)."""
    h, w = m.shape[-2:]
    f = -(-max(h, w) // max_side)
    if f <= 1:
        return m
    ph, pw = -(-h // f) * f, -(-w // f) * f
    pad = [(0, 0)] * (m.ndim - 2) + [(0, ph - h), (0, pw - w)]
    m = np.pad(m, pad, constant_values=-np.inf)
    m = m.reshape(*m.shape[:-2], ph // f, f, pw // f, f).max(axis=(-3, -1))
    return m


def normalise(m: np.ndarray) -> np.ndarray:
    """Min–max to [0, 1] from max(min, 0) (display only; ranking always uses absolute cosine)."""
    m = np.nan_to_num(np.asarray(m, dtype=np.float32))
    lo, hi = float(m.min(initial=0.0)), float(m.max(initial=0.0))
    if hi > 0:
        lo = max(lo, 0.0)  # cells with no text have cosine 0: keep them (and anti-matches) clear
        m = np.clip(m, lo, None)
    return np.zeros_like(m) if hi - lo < 1e-9 else (m - lo) / (hi - lo)


def heatmap_rgba(m: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A transparent colour overlay of map ``m`` (H, W) scaled smoothly to ``size`` (w, h)."""
    v = normalise(m)
    rgba = np.concatenate([colourise(v), (np.clip(v, 0, 1) ** 1.5 * 220).astype(np.uint8)[..., None]], axis=-1)
    return Image.fromarray(rgba, "RGBA").resize(size, Image.Resampling.BILINEAR)


def heatmap_over_page(m: np.ndarray, page: Image.Image) -> Image.Image:
    base = flatten(page, keep_gray=True).convert("RGBA")
    dim = Image.new("RGBA", base.size, (0, 0, 0, 70))
    base = Image.alpha_composite(base, dim)
    return Image.alpha_composite(base, heatmap_rgba(m, base.size)).convert("RGB")
