"""Training samples: crops of (synthetic or real) pages with per-cell token labels, and their batching.

A sample is a grayscale crop plus, for every stride-8 cell, the index of the token instance it shows
(``-1`` background, ``-2`` ignore: touched by a token box but not centred in one). A cell belongs to a
token when its centre pixel lies in the token's mask; a token too small to cover any cell centre
(".", "1") still gets the cell under its centroid.

Pages are produced by a page source (synthetic generator or a folder of PDFs) inside DataLoader
workers; a small buffer of pages is reused for several random crops so page rendering does not limit
the training step rate.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .augment import augment, rescale
from .pagetokens import PageToken

STRIDE = 8


@dataclass
class PageSample:
    """A rendered page: image (H, W) uint8, mask (H, W) int32 = token ordinal + 1, token vocab ids."""

    image: np.ndarray
    mask: np.ndarray
    ids: np.ndarray  # (N,) int64 vocab id of token ordinal i
    pieces: list[str]

    @classmethod
    def from_tokens(cls, image: np.ndarray, mask: np.ndarray, tokens: list[PageToken]) -> PageSample:
        return cls(image, mask, np.array([t.id for t in tokens], dtype=np.int64), [t.piece for t in tokens])


def cell_labels(mask: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """(H, W) mask (multiples of stride) -> (H/s, W/s) int64: token ordinal, -1 background, -2 ignore."""
    h, w = mask.shape[0] // stride, mask.shape[1] // stride
    m = mask[: h * stride, : w * stride]
    centre = m[stride // 2 :: stride, stride // 2 :: stride][:h, :w].astype(np.int64) - 1  # (h, w)
    touched = (m.reshape(h, stride, w, stride) > 0).any(axis=(1, 3))
    labels = np.where((centre < 0) & touched, -2, centre)
    # tokens that own no cell centre: give them the cell under their centroid
    n = int(m.max())
    if n > 0:
        present = np.zeros(n + 1, dtype=bool)
        present[labels[labels >= 0] + 1] = True
        ys, xs = np.nonzero(m)
        vals = m[ys, xs]
        cnt = np.bincount(vals, minlength=n + 1)
        missing = np.nonzero((cnt > 0) & ~present)[0]
        if len(missing):
            sy = np.bincount(vals, weights=ys, minlength=n + 1)
            sx = np.bincount(vals, weights=xs, minlength=n + 1)
            for t in missing:
                cy, cx = int(sy[t] / cnt[t]) // stride, int(sx[t] / cnt[t]) // stride
                if labels[cy, cx] < 0:
                    labels[cy, cx] = t - 1
    return labels


def random_crop(
    page: PageSample,
    rng: random.Random,
    height: int,
    width: int,
    strength: float,
    scale_range: tuple[float, float] = (0.75, 1.3),
) -> dict:
    """One augmented crop of ``page`` (mostly centred near a token) with cell labels and token ids."""
    img, mask = page.image, page.mask
    f = rng.uniform(*scale_range) if strength > 0 else 1.0
    # crop a window of the source that becomes (height, width) after rescaling by f
    sh, sw = int(round(height / f)), int(round(width / f))
    H, W = img.shape
    # token pixels, sampled every 4th row/column (tiny tokens can fall between: then no centring)
    ys, xs = np.nonzero(mask[::4, ::4]) if len(page.ids) else (np.empty(0, int), np.empty(0, int))
    if len(ys) and rng.random() < 0.85:
        k = rng.randrange(len(ys))
        cy, cx = ys[k] * 4 + rng.randint(-sh // 3, sh // 3), xs[k] * 4 + rng.randint(-sw // 3, sw // 3)
    else:
        cy, cx = rng.randrange(H), rng.randrange(W)
    y0 = min(max(0, cy - sh // 2), max(0, H - sh))
    x0 = min(max(0, cx - sw // 2), max(0, W - sw))
    ci = np.full((sh, sw), 255, np.uint8)
    cm = np.zeros((sh, sw), np.int32)
    part = img[y0 : y0 + sh, x0 : x0 + sw]
    ci[: part.shape[0], : part.shape[1]] = part
    cm[: part.shape[0], : part.shape[1]] = mask[y0 : y0 + sh, x0 : x0 + sw]
    if (sh, sw) != (height, width):
        ci, cm = rescale(ci, cm, f)
        ci = _fit(ci, height, width, 255)
        cm = _fit(cm, height, width, 0)
    ci, cm = augment(ci, cm, rng, strength)
    if strength > 0 and rng.random() < 0.1:  # whole crop inverted (light text on dark)
        ci = 255 - ci
    labels = cell_labels(cm)
    # compact the instance indices to those present
    present = np.unique(labels[labels >= 0])
    remap = np.full(len(page.ids) + 1, -1, np.int64)
    remap[present] = np.arange(len(present))
    lab = np.where(labels >= 0, remap[np.maximum(labels, 0)], labels)
    return {"image": ci, "labels": lab, "ids": page.ids[present]}


def _fit(a: np.ndarray, h: int, w: int, fill: int) -> np.ndarray:
    out = np.full((h, w), fill, a.dtype)
    out[: min(h, a.shape[0]), : min(w, a.shape[1])] = a[:h, :w]
    return out


class CropStream(IterableDataset):
    """Endless augmented crops from pages made by ``make_source(seed)()`` (one source per worker)."""

    def __init__(
        self,
        make_source: Callable[[int], Callable[[], PageSample]],
        seed: int,
        height: int = 256,
        width: int = 448,
        buffer: int = 16,
        reuse: int = 6,
        strength: float = 1.0,
    ):
        self.make_source, self.seed = make_source, seed
        self.height, self.width, self.buffer, self.reuse, self.strength = height, width, buffer, reuse, strength

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        wid = info.id if info is not None else 0
        seed = self.seed * 1000 + wid
        rng = random.Random(seed)
        next_page = self.make_source(seed)
        pages: list[PageSample] = []
        n = 0
        while True:
            if len(pages) < self.buffer:
                pages.append(next_page())
            elif n % self.reuse == 0:
                pages[rng.randrange(len(pages))] = next_page()
            n += 1
            yield random_crop(rng.choice(pages), rng, self.height, self.width, self.strength)


class PageMix:
    """A page source drawing each page from one of several sources with fixed shares (seeded): how
    synthetic receipts are mixed into training (``tokensearch train --receipt-fraction``)."""

    def __init__(self, sources: list[tuple[float, Callable[[], PageSample]]], seed: int):
        if not sources or any(w < 0 for w, _ in sources) or sum(w for w, _ in sources) <= 0:
            raise ValueError(f"page source shares must be >= 0 with a positive sum, got {[w for w, _ in sources]}")
        self.weights = [w for w, _ in sources]
        self.sources = [s for _, s in sources]
        self.rng = random.Random(seed)

    def __call__(self) -> PageSample:
        return self.rng.choices(self.sources, self.weights)[0]()


def collate(samples: list[dict]) -> dict:
    """Stack crops; instance indices become global over the batch."""
    imgs = torch.from_numpy(np.stack([s["image"] for s in samples])).unsqueeze(1)  # (B, 1, H, W) uint8
    labels, ids, owner = [], [], []
    off = 0
    for b, s in enumerate(samples):
        lab = s["labels"].copy()
        lab[lab >= 0] += off
        labels.append(lab)
        ids.append(s["ids"])
        owner.append(np.full(len(s["ids"]), b, np.int64))
        off += len(s["ids"])
    return {
        "image": imgs,
        "labels": torch.from_numpy(np.stack(labels)),  # (B, h, w)
        "ids": torch.from_numpy(np.concatenate(ids)),
        "owner": torch.from_numpy(np.concatenate(owner)),
    }
