"""Scan-like degradations applied jointly to a page crop and its token mask.

Geometry (rotation, rescale) moves the mask with the image (nearest neighbour); photometric changes
(blur, noise, JPEG, binarisation, uneven lighting, contrast, low-resolution resampling) touch the
image only. Each effect fires with its own probability; ``strength`` in [0, 1] scales all of them
(0 = clean, used by validation).
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageFilter


def rotate(img: np.ndarray, mask: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    im = Image.fromarray(img).rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=255)
    mk = Image.fromarray(mask.astype(np.int32), mode="I").rotate(
        degrees, resample=Image.Resampling.NEAREST, fillcolor=0
    )
    return np.asarray(im), np.asarray(mk, dtype=np.int32)


def rescale(img: np.ndarray, mask: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize both by ``factor`` (e.g. a 300 DPI scan seen at 150 DPI: factor 0.5)."""
    h, w = img.shape
    nh, nw = max(8, round(h * factor)), max(8, round(w * factor))
    im = Image.fromarray(img).resize((nw, nh), Image.Resampling.BILINEAR if factor > 1 else Image.Resampling.BOX)
    mk = Image.fromarray(mask.astype(np.int32), mode="I").resize((nw, nh), Image.Resampling.NEAREST)
    return np.asarray(im), np.asarray(mk, dtype=np.int32)


def uneven_light(img: np.ndarray, rng: random.Random, amount: float) -> np.ndarray:
    h, w = img.shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = np.sqrt((gx - cx) ** 2 + (gy - cy) ** 2) / max(h, w)
    light = 1.0 - amount * np.clip(r, 0, 1)  # darker away from a light spot
    return np.clip(img.astype(np.float32) * light, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"))


def binarize(img: np.ndarray, rng: random.Random) -> np.ndarray:
    lo, hi = float(img.min()), float(img.max())
    t = lo + (hi - lo) * rng.uniform(0.4, 0.65)
    return np.where(img > t, 255, 0).astype(np.uint8)


def augment(
    img: np.ndarray, mask: np.ndarray, rng: random.Random, strength: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Degrade a (H, W) uint8 crop and move its (H, W) int mask along; returns new arrays (same size)."""
    if strength <= 0:
        return img, mask
    h, w = img.shape
    p = strength
    if rng.random() < 0.5 * p:
        img, mask = rotate(img, mask, rng.uniform(-2.0, 2.0))
    if rng.random() < 0.25 * p:  # low-resolution scan upsampled back (e.g. 100 DPI seen at 150)
        f = rng.uniform(0.55, 0.85)
        small = Image.fromarray(img).resize((max(8, round(w * f)), max(8, round(h * f))), Image.Resampling.BOX)
        img = np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))
    x = img.astype(np.float32)
    if rng.random() < 0.4 * p:  # contrast / paper tone
        ink, paper = rng.uniform(0, 90), rng.uniform(170, 255)
        x = ink + (paper - ink) * x / 255.0
    img = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.3 * p:
        img = uneven_light(img, rng, rng.uniform(0.1, 0.45))
    if rng.random() < 0.35 * p:
        img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2))))
    if rng.random() < 0.4 * p:
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(3, 18), img.shape)
        img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.15 * p:
        img = binarize(img, rng)
    if rng.random() < 0.35 * p:
        img = jpeg(img, rng.randint(30, 90))
    return np.ascontiguousarray(img), np.ascontiguousarray(mask)
