"""Feature blobs: pages that repeat a few vectors (text-layer pages) are stored as a palette."""

import numpy as np

from tokensearch.storage.features import FLAG_DEFLATE, FLAG_PALETTE, HEADER, decode_page, encode_page


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
    assert not HEADER.unpack_from(blob)[3] & (FLAG_PALETTE | FLAG_DEFLATE)  # int8 codes hardly deflate
    page = decode_page(blob)
    order = np.argsort(ys * 200 + xs)
    assert (page.feats * feats[order]).sum(axis=1).min() > 0.999


def test_a_text_layer_page_is_deflated_smaller_and_decodes_to_the_same_cells():
    """Runs of one token along a line (a text layer's page): the mask and the palette index deflate."""
    rng = np.random.default_rng(3)
    tokens = _unit(rng.normal(size=(200, 48)).astype(np.float32))
    ys, xs, ids = [], [], []
    for line in range(40):  # 40 lines of 20 tokens, each token 6 cells wide
        for t in range(20):
            tok = rng.integers(0, 200)
            for c in range(6):
                ys.append(5 * line + 2), xs.append(10 + 6 * t + c), ids.append(tok)
    ys, xs, feats = np.asarray(ys), np.asarray(xs), tokens[np.asarray(ids)]
    blob = encode_page(220, 140, ys, xs, feats)
    flags = HEADER.unpack_from(blob)[3]
    assert flags & FLAG_DEFLATE and flags & FLAG_PALETTE
    raw = (220 * 140 + 7) // 8 + 4 + 200 * 48 + len(ys)  # mask, palette size, palette, u8 index
    assert len(blob) < 0.8 * raw, (len(blob), raw)
    page = decode_page(blob)
    assert np.array_equal(page.ys, ys) and np.array_equal(page.xs, xs)  # written in raster order already
    assert (page.feats * feats).sum(axis=1).min() > 0.999
