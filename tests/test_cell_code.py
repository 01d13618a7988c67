"""Product-quantised cells: a model's pages stored at a third of int8's bytes, read back with the codebook the
index recorded."""

from __future__ import annotations

import numpy as np
import pytest

from tests.storage_fixtures import db_url, one_faiss_thread, open_store, random_page  # noqa: F401  (fixtures)
from tokensearch.storage.codec import CellCode, Codec, fit_pca, identity_codec
from tokensearch.storage.features import FLAG_PQ, HEADER, decode_page, encode_page
from tokensearch.vectornorm import l2_normalize

DIM = 24  # 8 parts of 3 values


def _cells(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    """Unit rows of low intrinsic dimension plus a little noise, as a model's cells are."""
    basis = rng.standard_normal((6, dim))
    return l2_normalize(rng.standard_normal((n, 6)) @ basis + 0.05 * rng.standard_normal((n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def code() -> CellCode:
    return CellCode.fit(_cells(np.random.default_rng(0), 6000), DIM // 3)


def test_a_quantised_page_reads_back_close_to_its_cells_at_one_byte_a_part(code):
    rng = np.random.default_rng(1)
    page = random_page(rng, 1, n=1000, dim=DIM, grid=(40, 40))
    feats = _cells(np.random.default_rng(0), 7000)[-1000:]  # the codebook's distribution, rows it was not fitted on
    blob = encode_page(page.grid_h, page.grid_w, page.ys, page.xs, feats, code)
    assert HEADER.unpack_from(blob)[3] & FLAG_PQ
    assert len(blob) < HEADER.size + 200 + 2 + 1000 * code.m + 1  # mask, m, one byte a part
    back = decode_page(blob, code)
    order = np.argsort(page.ys * page.grid_w + page.xs)
    cos = np.einsum("nd,nd->n", back.feats, feats[order])
    assert cos.mean() > 0.97 and np.allclose(np.linalg.norm(back.feats, axis=1), 1, atol=1e-5)
    assert np.array_equal(back.ys, page.ys[order]) and np.array_equal(back.xs, page.xs[order])


def test_a_quantised_page_without_the_codebook_it_was_written_with_is_refused(code):
    rng = np.random.default_rng(2)
    page = random_page(rng, 1, n=300, dim=DIM)
    blob = encode_page(page.grid_h, page.grid_w, page.ys, page.xs, page.feats, code)
    with pytest.raises(ValueError, match="codebook"):
        decode_page(blob)
    other = CellCode(code.centroids[:4])  # 4 parts: another codebook
    with pytest.raises(ValueError, match="codebook"):
        decode_page(blob, other)


def test_the_lookup_table_takes_the_nearest_centroid_or_one_nearly_as_near(code):
    x = _cells(np.random.default_rng(0), 9000)[6000:]  # the codebook's distribution, rows it was not fitted on
    got = code.encode(x)
    parts = (x @ code.rotation).reshape(len(x), code.m, 3)
    dist = ((parts[:, :, None, :] - code.centroids[None]) ** 2).sum(-1)  # (n, m, 256)
    best, taken = dist.min(-1), np.take_along_axis(dist, got[..., None].astype(np.intp), -1)[..., 0]
    assert np.median(np.sqrt(taken) - np.sqrt(best)) < 1e-3  # most take the nearest or a tie
    exact = code.decode(dist.argmin(-1).astype(np.uint8))
    cos_lut, cos_exact = (np.einsum("nd,nd->n", code.decode(got), x).mean(), np.einsum("nd,nd->n", exact, x).mean())
    assert cos_lut > cos_exact - 0.002


def test_the_rotation_is_orthonormal_and_brings_the_stored_cells_closer(code):
    x = _cells(np.random.default_rng(0), 9000)[6000:]
    assert np.allclose(code.rotation.T @ code.rotation, np.eye(DIM), atol=1e-5)
    plain = CellCode.fit(_cells(np.random.default_rng(0), 6000), DIM // 3, rotate=False)
    cos_r = np.einsum("nd,nd->n", code.decode(code.encode(x)), x).mean()
    cos_p = np.einsum("nd,nd->n", plain.decode(plain.encode(x)), x).mean()
    assert cos_r > cos_p


def test_the_codec_records_its_codebook_and_older_indexes_read_as_before(code):
    codec = identity_codec(DIM)
    codec.cells = code
    back = Codec.from_meta(*codec.to_meta())
    assert back.cells is not None and np.array_equal(back.cells.centroids, code.centroids)
    assert "opq8x8" in back.describe() and np.array_equal(back.cells.rotation, code.rotation)
    pca = fit_pca(_cells(np.random.default_rng(4), 500, dim=48), DIM)
    pca.cells = code
    both = Codec.from_meta(*pca.to_meta())
    assert np.array_equal(both.matrix, pca.matrix) and both.cells is not None
    pca.cells = None
    value, blob = pca.to_meta()  # as indexes written before store it: the matrix alone
    assert "cells" not in value and Codec.from_meta(value, blob).cells is None
    with pytest.raises(ValueError, match="corrupt"):
        Codec.from_meta(codec.to_meta()[0], b"not the codebook")


def test_the_store_quantises_model_pages_keeps_text_layers_exact_and_reads_them_after_reopening(
    open_store, tmp_path, code
):
    from tokensearch.tokenocr_model.interface import ModelInfo

    rng = np.random.default_rng(5)
    vision = random_page(rng, 1, n=800, dim=DIM, grid=(40, 40))
    vision.feats = _cells(np.random.default_rng(0), 6800)[-800:]
    tokens = _cells(rng, 50)
    text = random_page(rng, 1, n=800, dim=DIM, grid=(40, 40), source="text")
    text.feats = tokens[rng.integers(0, 50, size=800)]
    info = ModelInfo("test", "test", "f" * 64, DIM)
    store = open_store()
    store.ensure_model(info, code.arrays())
    store.write_document("sha-v", "v.png", 1, 1, "image", iter([vision]))
    store.write_document("sha-t", "t.pdf", 1, 1, "pdf", iter([text]))
    assert store.stats().feature_bytes < 800 * code.m + 800 * DIM / 4 + 2000  # the text page: a palette
    store.close()

    again = open_store()  # a reader that never saw the model's codebook: the index has it
    ids = {info.path: pid for pid, info in again.pages(range(1, 10)).items()}
    feats = again.page_features(list(ids.values()))
    for rec, path, floor in ((vision, "v.png", 0.95), (text, "t.pdf", 0.999)):
        order = np.lexsort((rec.xs, rec.ys))
        cos = np.einsum("nd,nd->n", feats[ids[path]].feats, rec.feats[order])
        assert cos.mean() > floor, path
    hits = again.search_cells(again.project_queries(vision.feats[:5]), 3)
    assert all(ids["v.png"] in set(pages.tolist()) for pages, _ in hits)


def test_a_page_record_of_another_dimension_than_the_codebook_is_stored_as_int8(open_store, code):
    from tokensearch.tokenocr_model.interface import ModelInfo

    page = random_page(np.random.default_rng(6), 1, n=300, dim=32)
    store = open_store()
    store.ensure_model(ModelInfo("test", "test", "e" * 64, 32), code.arrays())  # a codebook of 24 values
    store.write_document("sha-x", "x.png", 1, 1, "image", iter([page]))
    (pid,) = store.pages(range(1, 5))
    assert store.page_features([pid])[pid].feats.shape == (300, 32)
    assert "pq" not in store.stats().codec
