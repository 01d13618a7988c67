"""Feature blobs: pages that repeat a few vectors (text-layer pages) are stored as a palette."""

import numpy as np

from tokensearch.storage.features import FLAG_PALETTE, HEADER, decode_page, encode_page


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _cells(n, grid_w=200):
    flat = np.random.default_rng(0).choice(200 * grid_w, size=n, replace=False)
    return flat // grid_w, flat % grid_w


def test_repeated_token_vectors_are_stored_as_a_palette_and_decode_exactly():
    rng = np.random.default_rng(1)
    tokens = _unit(rng.normal(size=(300, 96)).astype(np.float32))
    feats = tokens[rng.integers(0, 300, size=5000)]
    ys, xs = _cells(5000)
    blob = encode_page(200, 200, ys, xs, feats)
    flags = HEADER.unpack_from(blob)[3]
    assert flags & FLAG_PALETTE
    assert len(blob) < 5000 * 96 / 5  # >5x smaller than one int8 row per cell
    page = decode_page(blob)
    order = np.argsort(ys * 200 + xs)
    cos = (page.feats * feats[order]).sum(axis=1)
    assert cos.min() > 0.999


def test_distinct_vectors_are_stored_row_by_row():
    rng = np.random.default_rng(2)
    feats = _unit(rng.normal(size=(3000, 64)).astype(np.float32))
    ys, xs = _cells(3000)
    blob = encode_page(200, 200, ys, xs, feats)
    assert not HEADER.unpack_from(blob)[3] & FLAG_PALETTE
    page = decode_page(blob)
    order = np.argsort(ys * 200 + xs)
    assert (page.feats * feats[order]).sum(axis=1).min() > 0.999
