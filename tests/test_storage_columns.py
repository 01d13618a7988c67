"""Column runs: vertically adjacent cells that read alike are stored as one vector, in their places."""

from __future__ import annotations

import numpy as np

from tests.storage_fixtures import db_url, one_faiss_thread, open_store  # noqa: F401  (fixtures)
from tokensearch.storage import PageRecord
from tokensearch.storage.codec import Codec, identity_codec, merge_columns
from tokensearch.vectornorm import l2_normalize


def _line_page(rng: np.random.Generator, source: str = "vision", dim: int = 32) -> PageRecord:
    """Two text lines, 3 cells tall, 20 cells wide: each column of a line reads one vector (plus a little
    noise); a blank grid row between the lines."""
    ys, xs, feats = [], [], []
    for top in (2, 6):
        base = rng.standard_normal((20, dim))
        for dy in range(3):
            ys += [top + dy] * 20
            xs += list(range(20))
            feats.append(base + 0.05 * rng.standard_normal((20, dim)))
    f = l2_normalize(np.concatenate(feats)).astype(np.float32)
    return PageRecord(
        page_no=1, width=160, height=80, source=source, grid_h=10, grid_w=20, ys=np.array(ys), xs=np.array(xs), feats=f
    )


def test_a_column_run_shares_one_vector_and_keeps_its_cells_in_place():
    rng = np.random.default_rng(0)
    page = _line_page(rng)
    merged = merge_columns(page.ys, page.xs, page.feats, 0.85, 3)
    assert merged.shape == page.feats.shape
    assert np.allclose(np.linalg.norm(merged, axis=1), 1, atol=1e-5)
    distinct = np.unique(np.round(merged, 5), axis=0)
    assert len(distinct) == 40  # one vector per column of each line
    for top in (2, 6):  # the run's vector is the mean of its cells: close to each of them
        run = (page.xs == 7) & (page.ys >= top) & (page.ys < top + 3)
        assert np.ptp(merged[run], axis=0).max() < 1e-6
        assert (merged[run] @ page.feats[run].T).min() > 0.99


def test_runs_stop_at_their_length_at_a_gap_and_at_a_cell_that_reads_otherwise():
    dim = 8
    v = l2_normalize(np.eye(dim)[:3] + 0.01).astype(np.float32)
    # column 0: 5 alike cells (rows 0-4) -> runs of 3 and 2; column 1: alike cells at rows 0 and 2 (a gap);
    # column 2: rows 0-1 read differently
    ys = np.array([0, 1, 2, 3, 4, 0, 2, 0, 1])
    xs = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2])
    f = np.stack([v[0]] * 5 + [v[1], v[1], v[1], v[2]])
    f = l2_normalize(f + 0.001 * np.random.default_rng(1).standard_normal(f.shape)).astype(np.float32)
    m = merge_columns(ys, xs, f, 0.9, 3)
    assert np.allclose(m[0], m[2]) and np.allclose(m[3], m[4]) and not np.allclose(m[2], m[3])
    assert not np.allclose(m[5], m[6])  # not adjacent
    assert not np.allclose(m[7], m[8])  # alike below the threshold
    assert np.allclose(merge_columns(ys, xs, f, 0.9, 1), f)  # runs of one: nothing changes


def test_the_codec_records_its_column_rule_and_older_indexes_keep_every_cell():
    codec = identity_codec(16)
    codec.column_cos = 0.85
    value, blob = codec.to_meta()
    back = Codec.from_meta(value, blob)
    assert (back.column_cos, back.column_len) == (0.85, 3) and "column runs" in back.describe()
    old = {"kind": "identity", "in_dim": 16, "out_dim": 16, "merge_cos": None}  # as written before
    assert Codec.from_meta(old, None).column_cos is None


def test_the_store_merges_model_pages_only_and_keeps_them_smaller(open_store):
    rng = np.random.default_rng(3)
    vision, text = _line_page(rng), _line_page(rng, source="text")
    store = open_store(column_cos=0.85)
    store.write_document("sha-v", "v.png", 1, 1, "image", [vision])
    n, d = vision.feats.shape
    assert store.stats().feature_bytes < 0.5 * n * d  # a page of its own vectors needs n*d bytes of codes
    store.write_document("sha-t", "t.pdf", 1, 1, "pdf", [text])
    pages = {info.path: pid for pid, info in store.pages(range(1, 10)).items()}
    feats = store.page_features(list(pages.values()))
    fv, ft = feats[pages["v.png"]], feats[pages["t.pdf"]]
    order = np.lexsort((text.xs, text.ys))
    assert np.allclose(ft.feats, text.feats[order], atol=0.02)  # text-layer pages: their exact vectors
    assert len(np.unique(np.round(ft.feats, 4), axis=0)) == n
    assert len(np.unique(np.round(fv.feats, 4), axis=0)) == 40
    ids, scores, cells = store.search_cells_at(vision.feats[:1], 5)[0]
    assert len(ids) and (cells >= 0).all()  # the merged page is found, with cell positions
