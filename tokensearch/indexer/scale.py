"""Bring page images to the text size the model reads best, whatever their resolution.

A PDF page is rasterised at the model's dpi, so its text has the size the model was trained on. An image
file has no reliable dpi (PNG/JPEG rarely carry one; phone photos say 72): a 300 dpi scan or a 12 MP
photo of a letter page shows 10 pt text two to three times larger than the model expects, and costs
four to nine times the pixels. A receipt photo of 900 x 1800 px is no larger than a page, yet its
print can be twice the size of body text at 150 dpi. So every image is measured — the typical height of
the character-like ink blobs (:func:`char_height`), estimated on a small copy — and, when its text is far
larger than the reference height (:data:`CHAR_HEIGHT_AT_DPI` x dpi: the median measured on the dev
benchmark's 150 dpi scans), shrunk so that it lands at :data:`SHRINK_TO` x the reference (the size of
200 dpi renditions: the mini model reads rare words there better than at the reference size, and 300 dpi
scans shrunk to it better than shrunk to the reference: BENCHMARKS.md, "Large images"). Boxes are stored
relative to the page, so nothing downstream sees the change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

CHAR_HEIGHT_AT_DPI = 15.0 / 150.0  # typical ink-blob height of body text (as char_height sees it), px per dpi
PAGE_LONG_SIDE_IN = 11.0 * 1.3  # a larger image without measurable text is brought to this size (a letter page +30 %)
INK_RATIO = 0.85  # ink: darker than this share of the local paper brightness
SHRINK_ABOVE = 1.8  # shrink when text is more than this factor above the reference height
SHRINK_TO = 4.0 / 3.0  # ... down to this factor of it
MIN_BLOBS = 30  # fewer character-like blobs: no estimate (a picture, an empty page)
WORK_LONG_SIDE = 800  # the estimate runs on a copy this long (about 10 ms)


def char_height(
    image: Image.Image, work_long_side: int = WORK_LONG_SIDE, full: tuple[int, int] | None = None
) -> float | None:
    """Typical height in px (of ``image``) of its character-like ink blobs, or None if it shows too few.

    The mean of the middle half of the blob heights: x-height letters and ascender letters form two
    peaks, and a plain median jumps between them (with the small copy's rounding, +/- 15 % either way).

    Ink = pixels darker than :data:`INK_RATIO` (85 %) of the local paper brightness (a coarse max filter),
    so uneven lighting in photos does not flood the page. The ratio is lenient because the small copy
    averages thin strokes into light gray: at 65 % the faint, thin print of thermal receipts and the
    separate dots of dot-matrix print fall apart into fragments that read as tiny text (a receipt
    with 25 px capitals measured 9-13 px). Blobs taller than a tenth of the page or much wider than
    tall (rules, underlines, merged words) are ignored.

    ``full``: the size of the image ``image`` is a reduced decode of (:func:`load_jpeg_scaled`); the
    working copy and the height returned are then those of the full image.
    """
    ink, f = ink_mask(image, work_long_side, full)
    labels, n = ndimage.label(ink)
    if n < MIN_BLOBS:
        return None
    boxes = ndimage.find_objects(labels)
    h = np.fromiter((b[0].stop - b[0].start for b in boxes), dtype=np.int32, count=n)
    w = np.fromiter((b[1].stop - b[1].start for b in boxes), dtype=np.int32, count=n)
    ok = (h >= 3) & (h <= 0.1 * ink.shape[0]) & (w <= 2.5 * h)
    if int(ok.sum()) < MIN_BLOBS:
        return None
    h = h[ok]
    lo, hi = np.percentile(h, [25, 75])
    return float(h[(h >= lo) & (h <= hi)].mean()) * f


def ink_mask(
    image: Image.Image, work_long_side: int = WORK_LONG_SIDE, full: tuple[int, int] | None = None
) -> tuple[np.ndarray, int]:
    """The ink of a small grey copy of ``image`` (long side at most ``work_long_side`` px of the ``full``
    image, see :func:`char_height`), and the reduction ``f`` it was made at."""
    gray = image.convert("L")
    full = full or gray.size
    f = max(1, int(np.ceil(max(full) / work_long_side)))
    if gray.size == full and f > 1:
        gray = gray.reduce(f)
    elif gray.size != full:  # a reduced decode: the same working copy as the full image's, area-averaged
        gray = gray.resize((-(-full[0] // f), -(-full[1] // f)), Image.Resampling.BOX)
    a = np.asarray(gray, dtype=np.float32)
    paper = ndimage.maximum_filter(a[::4, ::4], size=9)
    paper = np.repeat(np.repeat(paper, 4, 0), 4, 1)[: a.shape[0], : a.shape[1]]
    return a < INK_RATIO * paper, f


def scale_factor(image: Image.Image, dpi: float) -> float:
    """Factor (<= 1) to resize ``image`` by so its text has the model's reference size at ``dpi``.

    Every image is measured, whatever its size: a small receipt photo can show larger print than a
    300 dpi scan. An image with no measurable text is left alone, or brought to page size if larger.
    """
    return factor_for(image.size, char_height(image), dpi)


def factor_for(size: tuple[int, int], text_height: float | None, dpi: float) -> float:
    """:func:`scale_factor`'s rule for an image of ``size`` px whose text measured ``text_height`` px."""
    page_px = PAGE_LONG_SIDE_IN * dpi
    if text_height is None:
        return min(1.0, page_px / max(size))
    ref = CHAR_HEIGHT_AT_DPI * dpi
    return SHRINK_TO * ref / text_height if text_height > SHRINK_ABOVE * ref else 1.0


def normalise_scale(image: Image.Image, dpi: float) -> Image.Image:
    """``image`` resized (area-averaged) by :func:`scale_factor`, or itself when no change is needed."""
    return resized(image, scale_factor(image, dpi), image.size)


def resized(image: Image.Image, f: float, full: tuple[int, int]) -> Image.Image:
    """``image`` (an image of ``full`` px, perhaps already decoded smaller) at ``f`` x ``full``."""
    f = min(f, 1.0)
    size = (max(1, round(full[0] * f)), max(1, round(full[1] * f)))
    return image if image.size == size else image.resize(size, Image.Resampling.BOX)


JPEG_SCALES = (8, 4, 2)  # the reductions libjpeg decodes directly (from the DCT, at a fraction of the cost)
# smaller JPEGs decode whole in a few ms, less than measuring them on a reduced decode first saves
JPEG_DRAFT_ABOVE = 4 * WORK_LONG_SIDE


def load_jpeg_scaled(
    path: Path, dpi: float, prepare: Callable[[Image.Image], Image.Image], grey: bool = False
) -> Image.Image:
    """A JPEG page decoded straight at a reduced size where :func:`normalise_scale` would shrink it anyway.

    A phone photo or a 300 dpi receipt scan is a 12-35 MP JPEG that ends up a third of its size or less;
    decoding all of it and then shrinking cost more than the model reading the page. libjpeg can decode
    at 1/2, 1/4 or 1/8 of the size, so the text is measured on a small decode (as :func:`char_height`
    measures a small copy) and the page decoded at the least reduction still at least the target size,
    then area-averaged to it, as :func:`normalise_scale` would. ``prepare`` turns a decoded frame into
    the upright page (EXIF orientation, flattened), the same for both decodes; ``grey``: the luma alone
    (a colour JPEG; other JPEGs decode as they are).
    """
    with Image.open(path) as frame:
        full = frame.size
        k = next((k for k in JPEG_SCALES if max(full) / k >= WORK_LONG_SIDE), 1)
        mode = "L" if grey else frame.mode
        frame.draft(mode, (max(1, full[0] // k), max(1, full[1] // k)))  # (Pillow takes floor sizes)
        decoded = frame.size  # the reduction the decoder took (it may take less than asked)
        small = prepare(frame)
    k = round(full[0] / decoded[0])
    upright = full if small.size == decoded else (full[1], full[0])  # EXIF turned it a quarter
    f = factor_for(upright, char_height(small, full=upright), dpi)
    need = next((k2 for k2 in JPEG_SCALES if f <= 1 / k2), 1)
    if need < k:  # the small decode is smaller than the page the model reads: decode larger
        with Image.open(path) as frame:
            frame.draft(mode, (max(1, full[0] // need), max(1, full[1] // need)))
            small = prepare(frame)
    return resized(small, f, upright)
