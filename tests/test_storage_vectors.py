"""The vector side of the store: int8 feature blobs, FAISS index types (flat -> IVF-SQ8 -> IVF-SQ4),
duplicate and near-duplicate cells, the PCA codec for large D; on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from tests.storage_fixtures import (  # noqa: F401  (fixtures)
    db_url,
    one_faiss_thread,
    open_store,
    random_doc,
    random_page,
    token_blob_page,
    top_pages,
    write,
)
from tokensearch.storage import Store
from tokensearch.storage.features import decode_page, encode_page
from tokensearch.storage.vectors import index_vectors
from tokensearch.vectornorm import l2_normalize


@pytest.mark.parametrize("dim", [64, 128])
def test_int8_features_cosine_error(dim):
    """Per-row int8 quantisation: measured cosine between original and decoded cells."""
    page = random_page(np.random.default_rng(0), 1, n=2000, dim=dim, grid=(60, 60))
    pf = decode_page(encode_page(page.grid_h, page.grid_w, page.ys, page.xs, page.feats))
    order = np.argsort(page.ys * page.grid_w + page.xs)
    cos = np.sum(pf.feats * page.feats[order], axis=1)
    assert np.array_equal(pf.ys, page.ys[order]) and np.array_equal(pf.xs, page.xs[order])
    assert np.allclose(np.linalg.norm(pf.feats, axis=1), 1, atol=1e-5)
    assert 1 - cos.mean() < 5e-5 and 1 - cos.min() < 2e-4  # measured at d=64: 1.8e-5 mean, 5e-5 max


def test_sparse_and_dense_coordinate_encodings_round_trip():
    rng = np.random.default_rng(1)
    for n, grid in [(5, (300, 400)), (900, (30, 40))]:  # coords as u16 pairs / as a grid bit mask
        p = random_page(rng, 1, n=n, dim=16, grid=grid)
        pf = decode_page(encode_page(p.grid_h, p.grid_w, p.ys, p.xs, p.feats))
        assert sorted(zip(pf.ys.tolist(), pf.xs.tolist())) == sorted(zip(p.ys.tolist(), p.xs.tolist()))
        assert pf.feats.shape == (n, 16)


def test_a_searcher_loads_the_flat_snapshot_and_adds_only_new_pages(open_store, monkeypatch):
    """A search process saves the exact index it built; the next one loads it instead of rebuilding it
    from the feature store, and adds the pages committed since (a CLI search per query needs this)."""
    from tokensearch.storage.keeper import VectorKeeper

    writer = open_store()
    docs = [random_doc(s, 2, n=300) for s in range(2)]
    a = write(writer, 0, n=300)
    reader = open_store()
    page_a = writer.document_pages(a)[0].page_id
    assert all(page_a in h for h in top_pages(reader, docs[0][0].feats[:5], k=3))
    reader.close()  # saves the snapshot it had to build

    def no_rebuild(*args, **kwargs):
        raise AssertionError("rebuilt the index from the feature store")

    monkeypatch.setattr(VectorKeeper, "_build", no_rebuild)
    b = write(writer, 1, n=300)  # committed after the snapshot: the next reader adds it
    again = open_store()
    assert all(page_a in h for h in top_pages(again, docs[0][0].feats[:5], k=3))
    page_b = writer.document_pages(b)[0].page_id
    assert all(page_b in h for h in top_pages(again, docs[1][0].feats[:5], k=3))
    assert again.stats().vector_index_type == "flat-ip-int8" and again.verify() == []


def test_hits_carry_their_grid_cells_across_a_snapshot(open_store):
    """search_cells_at: a cell's own vector finds it, at its row and column, before and after a reload."""
    store = open_store()
    doc = random_doc(7, 1, n=200)
    doc_id = write(store, 7, n_pages=1, n=200)
    page = doc[0]
    page_id = store.document_pages(doc_id)[0].page_id

    def found(st):
        hits = st.search_cells_at(st.project_queries(page.feats[:10]), 1)
        return [(int(p[0]), tuple(c[0])) for p, _, c in hits]

    want = [(page_id, (int(y), int(x))) for y, x in zip(page.ys[:10], page.xs[:10])]
    assert found(store) == want
    store.close()  # saves the snapshot, cells included
    assert found(open_store()) == want


def test_hit_cells_follow_pages_removed_and_added_in_one_process(open_store):
    """Each hit's cell is its own page's, also after the index changed since the last search."""
    store = open_store()
    pages = {seed: random_doc(seed, 1, n=120)[0] for seed in (11, 12, 13)}
    ids = {seed: write(store, seed, n_pages=1, n=120) for seed in (11, 12)}

    def found(seed):
        page = pages[seed]
        hits = store.search_cells_at(store.project_queries(page.feats[:8]), 1)
        return [(int(p[0]), tuple(c[0])) for p, _, c in hits]

    def want(seed):
        page_id = store.document_pages(ids[seed])[0].page_id
        return [(page_id, (int(y), int(x))) for y, x in zip(pages[seed].ys[:8], pages[seed].xs[:8])]

    assert found(11) == want(11) and found(12) == want(12)
    store.delete_document(ids[11])
    ids[13] = write(store, 13, n_pages=1, n=120)
    assert found(12) == want(12) and found(13) == want(13)


def test_searches_ask_more_cells_a_token_as_the_index_grows(open_store):
    """A fixed number of top cells fills with the pages that hold a common piece most: past ``crowd_pages``
    pages, a token's cells grow with the square root of the pages competing (a filter's, or the index's)."""
    from tokensearch.search.searcher import Searcher, SearchOptions

    store = open_store()
    opt = SearchOptions(threshold=0.5, cells_per_token=1000, crowd_pages=16, max_cells_per_token=1900)
    searcher = Searcher(None, store, opt)
    write(store, 1, n_pages=10, n=4)
    assert searcher._cells_per_token(None) == 1000
    write(store, 2, n_pages=26, n=4)
    assert searcher._cells_per_token(None) == 1500  # 36 pages: 1000 x sqrt(36 / 16)
    assert searcher._cells_per_token(np.arange(16)) == 1000  # a filter's pages compete, not the index's
    write(store, 3, n_pages=30, n=4)
    assert searcher._cells_per_token(None) == 1900  # 66 pages: at most max_cells_per_token


def test_flat_index_becomes_compressed_past_threshold(open_store):
    store = open_store(flat_max_vectors=3000)
    docs = [random_doc(s, 2, n=400) for s in range(5)]
    ids = [store.write_document(f"sha-{s}", f"/{s}.pdf", 1, 1, "pdf", iter(d)) for s, d in enumerate(docs[:3])]
    assert store.stats().vector_index_type == "flat-ip-int8"  # 2400 vectors
    ids += [store.write_document(f"sha-{s}", f"/{s}.pdf", 1, 1, "pdf", iter(d)) for s, d in enumerate(docs[3:], 3)]
    st = store.stats()
    assert st.vector_index_type.startswith("ivf") and st.vector_index_type.endswith("sq4") and st.vectors == 4000
    # candidate recall: a page's own cells find it among the top hits
    for s, doc_id in enumerate(ids):
        page_id = store.document_pages(doc_id)[0].page_id
        hits = top_pages(store, docs[s][0].feats[:20], k=3)
        assert sum(page_id in h for h in hits) >= 18
    store.unlink_path("/0.pdf")
    assert store.stats().vectors == 3200
    store.close()
    again = open_store(flat_max_vectors=3000)
    st = again.stats()
    assert st.vector_index_type.startswith("ivf") and st.vectors == 3200 and again.verify() == []


def test_compressed_index_is_rechosen_as_it_grows(open_store):
    """flat -> IVF-SQ8 past flat_max_vectors -> IVF-SQ4 once it has grown 8-fold past sq4_min_vectors."""
    store = open_store(flat_max_vectors=250, sq4_min_vectors=1000)
    docs = [random_doc(s, 1, n=100) for s in range(26)]
    types = []
    for s, d in enumerate(docs):
        store.write_document(f"sha-{s}", f"/{s}.pdf", 1, 1, "pdf", iter(d))
        types.append(store.stats().vector_index_type)
    assert types[0] == "flat-ip-int8" and types[2].endswith(",sq8") and types[-1].endswith(",sq4")
    assert types[-1] != types[2] and store.stats().vectors == 2600
    found = [
        store.doc_for_content(f"sha-{s}") in {store.pages(h.tolist())[p].doc_id for p in h.tolist()}
        for s in range(0, 26, 5)
        for h, _ in store.search_cells(docs[s][0].feats[:5], 3)
    ]
    assert np.mean(found) > 0.8


def test_duplicate_cells_are_indexed_once(open_store):
    """A page painted from a PDF text layer repeats each token's vector over its cells."""
    rng = np.random.default_rng(4)
    store = open_store()
    page = random_page(rng, 1, n=300, source="text")
    page.feats = np.repeat(page.feats[:10], 30, axis=0)  # 10 tokens x 30 cells
    doc = store.write_document("painted", "/p.pdf", 1, 1, "pdf", iter([page]))
    write(store, 1)
    st = store.stats()
    assert st.vectors == 10 + 400 and st.feature_cells == 700 and st.pages_by_source == {"text": 1, "vision": 2}
    pid = store.document_pages(doc)[0].page_id
    assert len(store.page_features([pid])[pid].feats) == 300
    ids, scores = store.search_cells(page.feats[:1], 3)[0]
    assert ids[0] == pid and scores[0] > 0.99 and len(ids) == 3 and ids[1] != pid  # one hit per distinct vector


def test_index_vectors_merge_bound():
    """Left-out cells are within merge_cos of an indexed one: best score drops <= sqrt(2 - 2 tau)."""
    rng = np.random.default_rng(5)
    tokens = l2_normalize(rng.standard_normal((32, 64)))
    page = token_blob_page(rng, 1, tokens, noise=0.02)  # cells of a token: cos ~0.975 with each other
    pf = decode_page(encode_page(page.grid_h, page.grid_w, page.ys, page.xs, page.feats))
    for tau in (0.9, 0.95, 0.97):
        kept = index_vectors(pf, tau)
        q = l2_normalize(np.concatenate([tokens, rng.standard_normal((50, 64))])).astype(np.float32)
        loss = (q @ pf.feats.T).max(axis=1) - (q @ kept.T).max(axis=1)
        assert loss.max() <= np.sqrt(2 - 2 * tau) + 1e-6 and len(kept) < len(pf.feats)
    assert len(index_vectors(pf, 0.9)) == 32 * 3  # one vector per token and grid row
    assert len(index_vectors(pf, None)) == len(pf.feats)


def test_merged_runs_keep_candidate_ranking(tmp_path):
    rng = np.random.default_rng(6)
    vocab = l2_normalize(rng.standard_normal((200, 64)))
    picks = [rng.choice(200, 32, replace=False) for _ in range(8)]
    pages = [token_blob_page(rng, 1, vocab[p]) for p in picks]
    full = Store.open(tmp_path / "full")  # two indexes: two SQLite homes (DB independent)
    merged = Store.open(tmp_path / "merged", merge_cos=0.95)
    for st in (full, merged):
        for i, p in enumerate(pages):
            st.write_document(f"sha-{i}", f"/{i}.png", 1, 1, "image", iter([p]))
    assert merged.stats().vectors == 8 * 32 * 3 and full.stats().vectors == 8 * 32 * 18
    assert merged.stats().codec == "identity, runs merged at cos>=0.95" and merged.verify() == []
    for t in range(200):
        truth = {i + 1 for i, p in enumerate(picks) if t in p}  # page ids in write order
        if not truth:
            continue
        ((ids_f, sc_f),) = full.search_cells(vocab[t : t + 1], 18 * len(truth))
        ((ids_m, sc_m),) = merged.search_cells(vocab[t : t + 1], 3 * len(truth))
        assert set(ids_f.tolist()) == set(ids_m.tolist()) == truth  # the same pages from 6x fewer vectors
        assert sc_f[0] - sc_m[0] < 0.02
    full.close()
    merged.close()
    with Store.open(tmp_path / "merged") as again:
        assert again.stats().vectors == 8 * 32 * 3  # the recorded choice holds


def test_pca_codec_for_large_dim_preserves_ranking(open_store):
    rng = np.random.default_rng(3)
    dim = 512
    basis = l2_normalize(rng.standard_normal((48, dim)))  # features live near a 48-d subspace
    store = open_store(pca_fit_cells=1000)
    docs = [[random_page(rng, i + 1, n=250, dim=dim, basis=basis) for i in range(2)] for _ in range(6)]
    for s, d in enumerate(docs):
        store.write_document(f"sha-{s}", f"/{s}.pdf", 1, 1, "pdf", iter(d))
    st = store.stats()
    assert st.codec == "pca 512->128" and st.dim == 128 and st.vectors == 3000
    queries = l2_normalize(rng.standard_normal((30, 48)) @ basis).astype(np.float32)
    q = store.project_queries(queries)
    assert q.shape == (30, 128) and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    # ranking of cells: exact cosine in 512-d vs the index in 128-d
    all_cells = np.concatenate([p.feats for d in docs for p in d])
    exact = np.argsort(-(queries @ all_cells.T), axis=1)[:, :10]
    page_of = np.repeat(np.arange(12) + 1, 250)  # page ids 1..12 in write order
    approx = store.search_cells(q, 10)
    overlap = np.mean([len(set(page_of[e]) & set(a[0].tolist())) / len(set(page_of[e])) for e, a in zip(exact, approx)])
    assert overlap > 0.9
    top1 = np.mean([page_of[e[0]] == a[0][0] for e, a in zip(exact, approx)])
    assert top1 > 0.9
    store.close()
    again = open_store(pca_fit_cells=1000)
    assert np.allclose(again.project_queries(queries), q, atol=1e-6)


def test_codec_is_not_recorded_when_first_document_fails(open_store):
    store = open_store(pca_fit_cells=100)
    pages = random_doc(1, 2, n=100, dim=300)

    def failing():
        yield from pages
        raise OSError("disk read error")

    with pytest.raises(OSError):
        store.write_document("a", "/a.pdf", 1, 1, "pdf", failing())
    assert store.stats().codec == "none"
    store.write_document("a", "/a.pdf", 1, 1, "pdf", iter(pages))
    assert store.stats().codec == "pca 300->128"


@pytest.mark.parametrize("code,torch_loaded", [("int8", False), ("int8", True), ("float16", True), ("float16", False)])
@pytest.mark.parametrize("n,k,block", [(5000, 64, 1024), (3000, 700, 256), (50, 64, 1024)])
def test_blocked_scan_returns_the_exact_top_k(n, k, block, code, torch_loaded, monkeypatch):
    """The flat index's blocked scan (many query rows at once) keeps exactly the k best inner products
    of each row with the coded vectors, best first, whatever the blocks and however the floor is raised
    (k > block included), over int8 codes and over float16 ones (indexes saved before), the latter with
    torch's conversion (torch loaded) or numpy's (a CLI search, which never loads torch)."""
    import sys

    import tokensearch.storage.vectors as vectors

    monkeypatch.setattr(vectors, "SCAN_BLOCK", block)
    if not torch_loaded:
        monkeypatch.delitem(sys.modules, "torch", raising=False)
    rng = np.random.default_rng(n)
    unit = l2_normalize(rng.standard_normal((n, 24)).astype(np.float32))
    if code == "int8":  # as FAISS stores 8bit_direct_signed: value + 128
        codes = (np.rint(unit * vectors.INT8_SCALE) + 128).astype(np.uint8)
        decoded = (codes.astype(np.float32) - 128) / vectors.INT8_SCALE
    else:
        codes = unit.astype(np.float16)
        decoded = codes.astype(np.float32)
    q = l2_normalize(rng.standard_normal((6, 24)).astype(np.float32))
    scores, rows = vectors.scan_top_k(codes, q, k)
    kk = min(k, n)
    full = q @ decoded.T
    assert scores.shape == rows.shape == (6, kk)
    for r in range(6):
        want = np.sort(full[r])[::-1][:kk]
        assert np.allclose(scores[r], want, atol=1e-5)  # the k best, best first
        assert np.allclose(full[r, rows[r]], scores[r], atol=1e-5)  # and the rows that hold them
        assert len(set(rows[r].tolist())) == kk


def test_flat_index_answers_many_query_rows_as_faiss_does(open_store):
    """From SCAN_MIN_QUERIES rows on, the flat index is searched by the blocked scan: same pages, scores
    and cells as FAISS's own search of the same rows one by one."""
    from tokensearch.storage.vectors import SCAN_MIN_QUERIES

    store = open_store()
    for seed in range(4):
        write(store, seed, n_pages=3, n=400, dim=32)
    rng = np.random.default_rng(3)
    vi = store.vectors.current()
    q = l2_normalize(rng.standard_normal((SCAN_MIN_QUERIES + 2, 32)).astype(np.float32))
    q = store.project_queries(q)
    many = vi.search(q, 300)
    for row, (pages, scores, cells) in zip(q, many):
        one_pages, one_scores, one_cells = vi.search(row[None], 300)[0]  # FAISS (a single row)
        assert np.allclose(scores, one_scores, atol=1e-5)
        assert pages.tolist() == one_pages.tolist() and cells.tolist() == one_cells.tolist()  # no ties here


def test_flat_index_scores_are_cosines_within_the_int8_step_and_older_float16_indexes_still_answer():
    """New flat indexes hold int8 codes (a quarter of float32's bytes): a query's scores are its cosines
    with the stored cells within ~0.01, for one query row as for many, at a dimension FAISS's own search of
    such codes gets wrong (a multiple of 32). A flat index saved before, with float16 codes, is searched as
    it is (by FAISS for few rows, by the blocked scan for many) and keeps its codes when pages are added."""
    import faiss

    from tokensearch.storage.vectors import SCAN_MIN_QUERIES, VectorIndex

    rng = np.random.default_rng(11)
    pages = {p: l2_normalize(rng.standard_normal((300, 32)).astype(np.float32)) for p in (1, 2, 3)}
    q = l2_normalize(rng.standard_normal((SCAN_MIN_QUERIES + 1, 32)).astype(np.float32))
    new = VectorIndex.empty(32, {"type": "flat"})
    old = VectorIndex.empty(32, {"type": "flat"})
    old.index = faiss.IndexIDMap(
        faiss.IndexScalarQuantizer(32, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    )
    for vi in (new, old):
        for p, v in pages.items():
            vi.add_page(p, v)
    assert new._flat_codes().dtype == np.uint8 and old._flat_codes().dtype == np.float16
    assert new.describe() == "flat-ip-int8"
    for vi, tol in ((new, 0.01), (old, 1e-3)):
        for rows in (q, q[:1]):  # the blocked scan (many rows), FAISS's search (one row)
            for row, (pids, scores, _) in zip(rows, vi.search(rows, 50)):
                exact = np.concatenate([pages[p] @ row for p in (1, 2, 3)])
                assert np.allclose(np.sort(scores)[::-1], scores) and set(pids.tolist()) <= {1, 2, 3}
                assert abs(float(scores[0]) - float(exact.max())) < tol
                assert np.all(scores >= np.sort(exact)[::-1][49] - 2 * tol)
    old.add_page(4, pages[1])
    assert old._flat_codes().dtype == np.float16 and old.ntotal == 1200


def test_a_kept_decoded_flat_index_gives_the_same_hits_and_follows_changes(open_store, monkeypatch):
    """keep_flat_decoded (the API's search workers): the blocked scan over the float32 copy gives exactly
    the hits of the scan over the codes, and the copy is rebuilt after pages are added or removed."""
    import tokensearch.storage.vectors as vectors
    from tokensearch.storage.vectors import SCAN_MIN_QUERIES

    store = open_store()
    for seed in range(3):
        write(store, seed, n_pages=3, n=400, dim=32)
    vi = store.vectors.current()
    q = store.project_queries(
        l2_normalize(np.random.default_rng(5).standard_normal((SCAN_MIN_QUERIES + 1, 32)).astype(np.float32))
    )

    def hits():
        return [(p.tolist(), np.round(s, 6).tolist(), c.tolist()) for p, s, c in store.vectors.current().search(q, 200)]

    plain = hits()
    monkeypatch.setattr(vectors, "_KEEP_DECODED", True)
    assert hits() == plain and vi._decoded is not None and vi._decoded.dtype == np.float32
    write(store, 9, n_pages=2, n=400, dim=32)  # pages added: the copy follows
    monkeypatch.setattr(vectors, "_KEEP_DECODED", False)
    grown = hits()
    monkeypatch.setattr(vectors, "_KEEP_DECODED", True)
    assert hits() == grown != plain
    assert len(store.vectors.current()._decoded) == store.vectors.current().ntotal
