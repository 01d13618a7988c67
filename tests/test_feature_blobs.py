"""Feature blobs: pages that repeat a few vectors (text-layer pages) are stored as a palette."""

import numpy as np
import pytest

from tokensearch.storage.features import FLAG_DEFLATE, FLAG_PALETTE, FLAG_SHARED, HEADER, decode_page, encode_page


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


def _text_line_page(rng):
    """40 lines of 20 tokens drawn from 200, each token 6 cells wide: a text layer's page."""
    tokens = _unit(rng.normal(size=(200, 48)).astype(np.float32))
    ys, xs, ids = [], [], []
    for line in range(40):  # 40 lines of 20 tokens, each token 6 cells wide
        for t in range(20):
            tok = rng.integers(0, 200)
            for c in range(6):
                ys.append(5 * line + 2), xs.append(10 + 6 * t + c), ids.append(tok)
    return np.asarray(ys), np.asarray(xs), tokens[np.asarray(ids)]


def test_a_text_layer_page_is_deflated_smaller_and_decodes_to_the_same_cells():
    """Runs of one token along a line (a text layer's page): the mask and the palette index deflate."""
    ys, xs, feats = _text_line_page(np.random.default_rng(3))
    blob = encode_page(220, 140, ys, xs, feats)
    flags = HEADER.unpack_from(blob)[3]
    assert flags & FLAG_DEFLATE and flags & FLAG_PALETTE
    raw = (220 * 140 + 7) // 8 + 4 + 200 * 48 + len(ys)  # mask, palette size, palette, u8 index
    assert len(blob) < 0.8 * raw, (len(blob), raw)
    page = decode_page(blob)
    assert np.array_equal(page.ys, ys) and np.array_equal(page.xs, xs)  # written in raster order already
    assert (page.feats * feats).sum(axis=1).min() > 0.999


class _Shared:
    """A home's shared rows, in memory: int8 row -> id (new ids from 70,000: wider than u16)."""

    def __init__(self, first: int = 1):
        self.ids: dict[bytes, int] = {}
        self.first = first

    def row_ids(self, codes):
        return np.asarray([self.ids.setdefault(r.tobytes(), self.first + len(self.ids)) for r in codes])

    def rows_of(self, ids, dim):
        by_id = {i: r for r, i in self.ids.items()}
        return np.frombuffer(b"".join(by_id[int(i)] for i in ids), dtype=np.int8).reshape(len(ids), dim)


@pytest.mark.parametrize("first_id", [1, 70_000])
def test_a_palette_named_by_shared_row_ids_decodes_to_the_same_cells_in_a_fifth_of_the_bytes(first_id):
    """A token's vector is the same on every page of a home: a text layer's page names its palette by the
    home's row ids instead of carrying 48 values a token."""
    ys, xs, feats = _text_line_page(np.random.default_rng(3))
    shared = _Shared(first_id)
    own = encode_page(220, 140, ys, xs, feats)
    blob = encode_page(220, 140, ys, xs, feats, row_ids=shared.row_ids)
    assert HEADER.unpack_from(blob)[3] & (FLAG_SHARED | FLAG_PALETTE | FLAG_DEFLATE) == (
        FLAG_SHARED | FLAG_PALETTE | FLAG_DEFLATE
    )
    assert len(blob) < len(own) / 5, (len(blob), len(own))
    page, before = decode_page(blob, rows_of=shared.rows_of), decode_page(own)
    assert np.array_equal(page.ys, before.ys) and np.array_equal(page.xs, before.xs)
    assert np.array_equal(page.feats, before.feats)
    with pytest.raises(ValueError, match="shared rows"):
        decode_page(blob)
