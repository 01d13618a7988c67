"""A model whose vocabulary spans fewer dimensions than its features: a new index stores cells in that subspace
(``codec.vocabulary_subspace``), half the bytes for the mini model, with the scores queries read kept."""

from __future__ import annotations

import numpy as np
import pytest

from tests.storage_fixtures import db_url, one_faiss_thread, open_store, token_blob_page  # noqa: F401  (fixtures)
from tokensearch.storage.codec import CellCode, vocabulary_subspace
from tokensearch.storage.records import ModelInfo
from tokensearch.vectornorm import l2_normalize

DIM = 64
MODEL = ModelInfo(name="mini", family="mini", fingerprint="d" * 64, dim=DIM)


def spanned_vocabulary(n: int = 300, rank: int = 13, noise: float = 1e-3, seed: int = 3) -> np.ndarray:
    """Token vectors in a ``rank``-dimensional subspace of DIM, a little noise outside it."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, rank)))
    return l2_normalize(rng.standard_normal((n, rank)) @ basis.T + noise * rng.standard_normal((n, DIM))).astype(
        np.float32
    )


def test_a_vocabulary_spanning_fewer_dimensions_gives_its_subspace_rounded_up():
    vocab = spanned_vocabulary()
    codec = vocabulary_subspace(vocab, 1e-3)
    assert codec is not None and (codec.in_dim, codec.out_dim) == (DIM, 16)
    w = codec.matrix
    assert w is not None and np.allclose(w @ w.T, np.eye(16), atol=1e-5)
    # a cell reading like a token (a blend of it and a neighbour, as the model's cells are, and a little noise
    # outside the vocabulary's span) scores every token as it did in model space
    rng = np.random.default_rng(4)
    mix = vocab[rng.integers(0, len(vocab), 500)] + 0.3 * vocab[rng.integers(0, len(vocab), 500)]
    cells = l2_normalize(mix + 2e-3 * rng.standard_normal((500, DIM)))
    before = cells @ vocab.T
    after = codec.apply(cells) @ codec.apply(vocab).T
    assert np.abs(after - before).max() < 0.01
    assert (after.argmax(axis=1) == before.argmax(axis=1)).mean() > 0.99


def test_a_vocabulary_spanning_the_whole_space_keeps_the_features_as_they_come():
    vocab = l2_normalize(np.random.default_rng(5).standard_normal((300, DIM))).astype(np.float32)
    assert vocabulary_subspace(vocab, 1e-3) is None


@pytest.mark.parametrize("offered", ["subspace", "off", "cell code"])
def test_a_new_index_stores_cells_in_the_vocabulary_subspace_unless_told_otherwise(open_store, offered):
    vocab = spanned_vocabulary()
    store = open_store(subspace_energy=None if offered == "off" else 1e-3)
    codebook = None
    if offered == "cell code":
        centroids = np.random.default_rng(6).standard_normal((32, 256, DIM // 32)).astype(np.float32)
        codebook = CellCode(centroids).arrays()  # any codebook in model space: the codec it makes is the point
    store.ensure_model(MODEL, codebook, vocabulary=lambda: vocab)
    rng = np.random.default_rng(7)
    pages = [token_blob_page(rng, i + 1, vocab[rng.choice(len(vocab), 16, replace=False)]) for i in range(3)]
    doc = store.write_document("sha-sub", "/docs/sub.pdf", 1, 1, "pdf", iter(pages))
    stats = store.stats()
    want = {"subspace": f"pca {DIM}->16", "off": "identity", "cell code": "identity, cells"}[offered]
    assert stats.codec.startswith(want) and stats.dim == (16 if offered == "subspace" else DIM)
    # the page showing a token is the one its query finds, in every case
    for i, info in enumerate(store.document_pages(doc)):
        token = np.abs(pages[i].feats @ vocab.T).max(axis=0).argmax()
        ((ids, scores),) = store.search_cells(store.project_queries(vocab[token : token + 1]), 5)
        assert ids[0] == info.page_id and scores[0] > (0.8 if codebook else 0.95)
    store.close()


def test_features_read_from_a_subspace_index_lift_to_model_vectors_that_store_as_they_were(open_store):
    """What a tool copying pages from one index into another hands it (bench/scale.py's distractors)."""
    vocab = spanned_vocabulary()
    source = open_store()
    source.ensure_model(MODEL, vocabulary=lambda: vocab)
    rng = np.random.default_rng(8)
    page = token_blob_page(rng, 1, vocab[rng.choice(len(vocab), 16, replace=False)])
    doc = source.write_document("sha-a", "/docs/a.pdf", 1, 1, "pdf", iter([page]))
    (info,) = source.document_pages(doc)
    stored = source.page_features([info.page_id])[info.page_id].feats
    lifted = source.lift_features(stored)
    assert lifted.shape == (len(stored), DIM) and np.allclose(np.linalg.norm(lifted, axis=1), 1, atol=1e-5)
    assert np.allclose(source.project_queries(lifted), stored, atol=1e-5)
    source.close()
