"""Straighten skewed page images for the model, and put its features back where the page has them.

A page fed crooked — a scan laid a few degrees off, a phone photo — shows the model slanted letters it
was trained on only up to +/-2 degrees, and it reads fewer of them (BENCHMARKS.md, "Large images":
skewed pages). So an image page whose text lines lean by :data:`MIN_SKEW_DEG` or more is turned
straight (:func:`straighten`) before it is encoded, and its feature grid is turned back onto the page as
the file has it (:func:`unrotate_grid`): the index, the boxes of hits and the viewer all keep the file's
own geometry, and nothing after the indexer knows a page was turned.

The angle (:func:`skew_angle`) is the one that makes the rows of ink most uneven: projected at it, ink
piles up on text lines and leaves the gaps between them empty (the projection-profile method), measured
on the small ink mask that :func:`~tokensearch.indexer.scale.char_height` also reads (~6 ms a page).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ..tokenocr_model.interface import FeatureGrid
from .scale import ink_mask

MIN_SKEW_DEG = 1.0  # lines leaning less are left alone: turning resamples the page (a little blur)
MAX_SKEW_DEG = 10.0  # searched +/- this; past it, a page is turned a quarter, not skewed
COARSE_STEP_DEG = 0.5
FINE_STEP_DEG = 0.1
MAX_POINTS = 40_000  # ink pixels the profile is computed on (a random sample of them, fixed seed)
MIN_POINTS = 500  # less ink than this: no estimate
MIN_GAIN = 1.1  # the best angle's profile must be this much sharper than the unturned page's


def skew_angle(image: Image.Image) -> float:
    """Degrees to turn ``image`` by (counter-clockwise, as :meth:`PIL.Image.Image.rotate`) to make its
    text lines horizontal; 0.0 when they lean less than :data:`MIN_SKEW_DEG`, or when the page shows
    too little ink or no clear lines to tell."""
    ink, _ = ink_mask(image)
    ys, xs = np.nonzero(ink)
    if len(ys) < MIN_POINTS:
        return 0.0
    if len(ys) > MAX_POINTS:
        pick = np.random.default_rng(0).choice(len(ys), MAX_POINTS, replace=False)
        ys, xs = ys[pick], xs[pick]
    y, x = ys.astype(np.float64), xs.astype(np.float64)

    def sharpness(deg: float) -> float:
        t = math.radians(deg)
        rows = y * math.cos(t) - x * math.sin(t)  # the row a pixel lands on once the page is turned by deg
        counts = np.bincount((rows - rows.min()).astype(np.int64))
        return float(np.dot(counts, counts))

    coarse = np.arange(-MAX_SKEW_DEG, MAX_SKEW_DEG + COARSE_STEP_DEG / 2, COARSE_STEP_DEG)
    best = max(coarse, key=sharpness)
    fine = np.arange(best - COARSE_STEP_DEG, best + COARSE_STEP_DEG + FINE_STEP_DEG / 2, FINE_STEP_DEG)
    best = float(max(fine, key=sharpness))
    if abs(best) < MIN_SKEW_DEG or sharpness(best) < MIN_GAIN * sharpness(0.0):
        return 0.0
    return round(best, 2)


def straighten(image: Image.Image) -> tuple[Image.Image, float]:
    """``image`` turned so its text lines are horizontal (on a canvas grown to keep every corner, filled
    with white), and the angle it was turned by; the image itself and 0.0 when it is straight enough."""
    angle = skew_angle(image)
    if not angle:
        return image, 0.0
    white = 255 if image.mode in ("L", "1") else (255,) * len(image.getbands())
    return image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=white), angle


def unrotate_grid(
    grid: FeatureGrid, angle: float, size: tuple[int, int], turned_size: tuple[int, int], shape: tuple[int, int]
) -> FeatureGrid:
    """The features of the page of ``size`` px (grid ``shape``: rows, columns) from ``grid``, the features
    of that page turned by ``angle`` degrees onto a canvas of ``turned_size`` px (:func:`straighten`):
    every cell takes the turned grid's cell under its centre (nearest neighbour)."""
    (w, h), (tw, th), (gh, gw) = size, turned_size, shape
    tgh, tgw = grid.shape
    t = math.radians(angle)
    cx = (np.arange(gw) + 0.5) * (w / gw) - w / 2  # cell centres in px, about the page centre
    cy = (np.arange(gh) + 0.5) * (h / gh) - h / 2
    px = tw / 2 + cx[None, :] * math.cos(t) + cy[:, None] * math.sin(t)  # where PIL's rotate puts them
    py = th / 2 - cx[None, :] * math.sin(t) + cy[:, None] * math.cos(t)
    col = np.clip((px * (tgw / tw)).astype(np.int64), 0, tgw - 1)
    row = np.clip((py * (tgh / th)).astype(np.int64), 0, tgh - 1)
    return FeatureGrid(features=grid.features[row, col], text=grid.text[row, col])
