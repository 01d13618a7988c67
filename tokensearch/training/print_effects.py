"""How cheap printers put text on paper, applied to a rendered print layer (receipts, invoices, forms).

Born-digital rendering draws perfect outlines; real receipts are printed by machines that place dots:

- :func:`dot_print` re-samples the layer on a grid of printer dots: round, separated dots of an impact
  dot-matrix printer (9/24 pins: a glyph 7-12 dots high) or the square cells of a thermal head's bitmap
  font, with missing dots from a worn ribbon or a dirty head;
- :func:`thermal_fade` makes the print uneven the way thermal paper and heads do: faded rolls, darkness
  drifting along the paper feed, light vertical streaks where a heating element is weak or dead;
- :func:`compose` lays the printed ink over the paper/pre-printed layer with an ink tone of its own.

Layers are (H, W) uint8 images, 255 = paper. Every function keeps the ink where it was (within a dot
pitch), so the token boxes of the text layer stay true. Seeded through the caller's ``random.Random``.
"""

from __future__ import annotations

import random

import numpy as np
from scipy import ndimage


def ink(layer: np.ndarray) -> np.ndarray:
    """(H, W) uint8 layer -> (H, W) float32 ink amount in [0, 1] (0 = paper)."""
    return 1.0 - layer.astype(np.float32) / 255.0


def dot_print(
    amount: np.ndarray,
    rng: random.Random,
    pitch: tuple[int, int],
    round_dots: bool,
    threshold: float = 0.4,
    dropout: float = 0.0,
) -> np.ndarray:
    """Re-sample ink on a grid of printer dots, ``pitch`` = (dy, dx) pixels between dot centres.

    A dot fires where the glyph covers more than ``threshold`` of its cell; ``dropout`` of the dots are
    missing. Round dots are discs a little narrower than the pitch (the dotted look of impact
    printers); square ones fill their cell (a thermal head's bitmap font seen up close)."""
    py, px = max(1, pitch[0]), max(1, pitch[1])
    H, W = amount.shape
    gh, gw = -(-H // py), -(-W // px)
    padded = np.zeros((gh * py, gw * px), np.float32)
    padded[:H, :W] = amount
    cover = padded.reshape(gh, py, gw, px).mean(axis=(1, 3))  # (gh, gw) share of each cell inked
    dots = cover > threshold
    if dropout > 0:
        dots &= np.random.default_rng(rng.randrange(1 << 30)).random(dots.shape) >= dropout
    if round_dots:
        yy, xx = np.mgrid[0:py, 0:px].astype(np.float32)
        r = 0.5 * min(py, px) * rng.uniform(0.85, 1.1)
        d = np.sqrt((yy - (py - 1) / 2) ** 2 + (xx - (px - 1) / 2) ** 2)
        cell = np.clip(r + 0.5 - d, 0, 1)  # anti-aliased disc
    else:
        cell = np.ones((py, px), np.float32)
    out = np.kron(dots.astype(np.float32), cell)[:H, :W]
    return ndimage.gaussian_filter(out, rng.uniform(0.3, 0.7)) if rng.random() < 0.7 else out


def smooth_noise(n: int, rng: random.Random, knots: int) -> np.ndarray:
    """(n,) smooth random curve in [0, 1]: ``knots`` random values, cubic-interpolated."""
    k = np.array([rng.random() for _ in range(max(2, knots))], np.float32)
    return np.clip(ndimage.zoom(k, n / len(k), order=3, mode="nearest")[:n], 0, 1)


def thermal_fade(amount: np.ndarray, rng: random.Random, floor: float = 0.4) -> np.ndarray:
    """Uneven thermal print: a faded roll, darkness drifting along the feed (rows) and across the head
    (columns, in patches), a few light vertical streaks. Never fades ink below ``floor`` of itself."""
    H, W = amount.shape
    gain = rng.uniform(0.6, 1.0)
    rows = 1.0 - rng.uniform(0.0, 0.45) * smooth_noise(H, rng, rng.randint(3, 12))  # along the feed
    cols = 1.0 - rng.uniform(0.0, 0.3) * smooth_noise(W, rng, rng.randint(2, 6))  # across the head
    f = gain * rows[:, None] * cols[None, :]
    for _ in range(rng.choice([0, 0, 1, 2, 3])):  # weak or dead heating elements: vertical streaks
        x0 = rng.randrange(W)
        f[:, x0 : x0 + rng.randint(1, 3)] *= rng.uniform(0.0, 0.5)
    return amount * np.maximum(f, floor)


def compose(base: np.ndarray, printed: np.ndarray, tone: float) -> np.ndarray:
    """Print ink ``printed`` (amount in [0, 1]) over ``base`` (uint8) with ink darkness ``tone`` (1 = black)."""
    out = base.astype(np.float32) * (1.0 - tone * np.clip(printed, 0, 1))
    return np.clip(out, 0, 255).astype(np.uint8)


def paper(img: np.ndarray, rng: random.Random, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Grey thermal or recycled paper with a little grain, inside ``region`` (x0, y0, x1, y1) or everywhere."""
    x0, y0, x1, y1 = region or (0, 0, img.shape[1], img.shape[0])
    out = img.astype(np.float32)
    part = out[y0:y1, x0:x1]
    tone = rng.uniform(0.86, 1.0)
    grain = np.random.default_rng(rng.randrange(1 << 30)).standard_normal(part.shape, np.float32) * rng.uniform(0, 4)
    out[y0:y1, x0:x1] = part * tone + grain
    return np.clip(out, 0, 255).astype(np.uint8)
