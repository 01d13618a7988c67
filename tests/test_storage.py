"""Storage layer: SQL rows + feature store + FAISS, on SQLite and PostgreSQL (see storage_fixtures.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from storage_fixtures import ROOT, db_url, open_store, random_doc, random_page  # noqa: F401
from tokensearch.storage import ModelMismatchError, PageRecord, Store
from tokensearch.storage.features import decode_page, encode_page
from tokensearch.storage.vectors import index_vectors
from tokensearch.tokenocr_model.interface import ModelInfo, l2_normalize

MINI = ModelInfo(name="mini", family="mini", fingerprint="a" * 64, dim=64)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """Tiny indexes: OpenMP threads only add contention on a shared 2-core machine."""
    n = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(n)


def write(store: Store, seed: int, n_pages: int = 2, path: str | None = None, **kw) -> int:
    pages = random_doc(seed, n_pages, **kw)
    path = path or f"/docs/{seed}.pdf"
    return store.write_document(f"sha-{seed}", path, 100 + seed, 10**9 + seed, "pdf", iter(pages))


def top_pages(store: Store, vecs: np.ndarray, k: int = 5) -> list[set[int]]:
    return [set(ids.tolist()) for ids, _ in store.search_cells(store.project_queries(vecs), k)]


# --- feature codec (no database) -------------------------------------------------------------------
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


# --- round trip ------------------------------------------------------------------------------------
def test_write_read_round_trip(open_store):
    store = open_store()
    store.ensure_model(MINI)
    pages = random_doc(7, 3, n=300, dim=64)
    run = store.begin_run("/docs")
    doc_id = store.write_document("sha-7", "/docs/a.pdf", 1234, 5678, "pdf", iter(pages), run_id=run)
    store.finish_run(run, status="ok", indexed=1, failed=0)

    info = store.document_pages(doc_id)
    assert [p.page_no for p in info] == [1, 2, 3]
    assert all(p.path == "/docs/a.pdf" and p.doc_id == doc_id and p.source == "vision" for p in info)
    feats = store.page_features([p.page_id for p in info])
    for rec, pi in zip(pages, info):
        pf = feats[pi.page_id]
        order = np.argsort(rec.ys * rec.grid_w + rec.xs)
        assert (pf.grid_h, pf.grid_w) == (rec.grid_h, rec.grid_w)
        assert np.array_equal(pf.ys, rec.ys[order]) and np.array_equal(pf.xs, rec.xs[order])
        assert np.min(np.sum(pf.feats * rec.feats[order], axis=1)) > 0.999
    assert store.pages([info[1].page_id])[info[1].page_id] == info[1]
    assert store.page_text(info[0].page_id) == "page 1"

    # every cell is findable: its own vector ranks its page first with cosine ~1
    hits = store.search_cells(store.project_queries(pages[1].feats[:5]), 3)
    assert all(ids[0] == info[1].page_id and scores[0] > 0.999 for ids, scores in hits)

    known = store.known_files()
    assert known["/docs/a.pdf"].status == "ok" and known["/docs/a.pdf"].doc_id == doc_id
    assert known["/docs/a.pdf"].sha256 == "sha-7" and known["/docs/a.pdf"].mtime_ns == 5678
    doc = store.document(doc_id)
    assert doc["paths"] == ["/docs/a.pdf"] and doc["pages"] == 3 and doc["status"] == "ok"
    assert [d["id"] for d in store.documents()] == [doc_id]
    assert store.runs()[0]["status"] == "ok" and store.runs()[0]["stats"]["indexed"] == 1
    st = store.stats()
    assert (st.documents, st.pages, st.vectors, st.pages_by_source) == (1, 3, 900, {"vision": 3})
    assert store.verify(read_all=True) == []
    assert st.codec == "identity" and st.dim == 64 and st.vector_index_type == "flat-ip"


def test_duplicate_content_is_linked_not_reindexed(open_store):
    store = open_store()
    doc_id = write(store, 1, path="/a.pdf")
    assert store.doc_for_content("sha-1") == doc_id
    store.link_path(doc_id, "/copy/a.pdf", 101, 1)

    def explode():
        raise AssertionError("pages of known content must not be consumed")
        yield

    assert store.write_document("sha-1", "/third.pdf", 101, 2, "pdf", explode()) == doc_id
    known = store.known_files()
    assert {p: r.doc_id for p, r in known.items()} == {"/a.pdf": doc_id, "/copy/a.pdf": doc_id, "/third.pdf": doc_id}
    assert store.stats().documents == 1 and store.stats().pages == 2
    assert store.document(doc_id)["paths"] == ["/a.pdf", "/copy/a.pdf", "/third.pdf"]
    store.unlink_path("/a.pdf")
    store.unlink_path("/third.pdf")
    assert store.doc_for_content("sha-1") == doc_id and store.stats().vectors == 400
    assert store.document_pages(doc_id)[0].path == "/copy/a.pdf"


def test_same_content_indexed_by_two_processes_at_once(open_store):
    """The second writer's commit finds the content already there: it links its path instead."""
    a, b = open_store(), open_store()
    pages = random_doc(1, 2)

    def pages_while_a_commits():
        yield pages[0]
        a.write_document("sha-1", "/a.pdf", 1, 1, "pdf", iter(pages))  # a wins the race
        yield pages[1]

    doc = b.write_document("sha-1", "/b.pdf", 1, 1, "pdf", pages_while_a_commits())
    assert doc == a.doc_for_content("sha-1") and b.document(doc)["paths"] == ["/a.pdf", "/b.pdf"]
    assert b.stats().pages == 2 and b.verify() == []


def test_unlink_deletes_orphan_document_and_its_vectors(open_store, tmp_path):
    store = open_store()
    a = write(store, 1, path="/a.pdf")
    b = write(store, 2, path="/b.pdf")
    a_pages = [p.page_id for p in store.document_pages(a)]
    probe = random_doc(1, 2)[0].feats[:10]  # cells of a's first page
    assert all(a_pages[0] in hit for hit in top_pages(store, probe))

    store.unlink_path("/a.pdf")
    assert store.doc_for_content("sha-1") is None and store.document(a) is None
    assert store.page_features(a_pages) == {} and store.pages(a_pages) == {}
    assert not any(set(a_pages) & hit for hit in top_pages(store, probe, k=50))
    st = store.stats()
    assert (st.documents, st.pages, st.vectors) == (1, 2, 400) and store.verify() == []
    assert "/a.pdf" not in store.known_files()
    store.close()

    again = open_store()  # the saved index agrees after a reopen
    assert again.stats().vectors == 400
    assert not any(set(a_pages) & hit for hit in top_pages(again, probe, k=50))
    assert again.delete_document(b) is True and again.delete_document(b) is False
    assert again.stats().vectors == 0 and again.search_cells(again.project_queries(probe), 5)[0][0].size == 0


def test_failing_page_iterator_leaves_nothing(open_store, tmp_path):
    store = open_store()
    write(store, 1, path="/ok.pdf")
    seg_sizes = {p.name: p.stat().st_size for p in (tmp_path / "home" / "features").iterdir()}
    good = random_doc(5, 3)

    def pages():
        yield good[0]
        yield good[1]
        raise RuntimeError("rasteriser crashed on page 3")

    with pytest.raises(RuntimeError, match="page 3"):
        store.write_document("sha-5", "/bad.pdf", 1, 1, "pdf", pages())
    assert store.doc_for_content("sha-5") is None and "/bad.pdf" not in store.known_files()
    st = store.stats()
    assert (st.documents, st.pages, st.vectors) == (1, 2, 400) and store.verify() == []
    assert {p.name: p.stat().st_size for p in (tmp_path / "home" / "features").iterdir()} == seg_sizes
    assert not any(hit & {3, 4} for hit in top_pages(store, good[0].feats[:5]))
    store.record_failure("/bad.pdf", 1, 1, "rasteriser crashed on page 3", sha256="sha-5")
    assert store.known_files()["/bad.pdf"].reason == "rasteriser crashed on page 3"
    assert [d["status"] for d in store.documents()] == ["ok", "failed"]
    assert store.stats().failures == [("/bad.pdf", "rasteriser crashed on page 3")]
    # the same file fixed: indexing it replaces the failure
    doc = store.write_document("sha-5", "/bad.pdf", 1, 2, "pdf", iter(good))
    assert store.known_files()["/bad.pdf"].status == "ok" and store.stats().failures == []
    first_page = store.document_pages(doc)[0].page_id
    assert top_pages(store, good[0].feats[:3], k=1) == [{first_page}] * 3


def test_compaction_reclaims_garbage_and_keeps_pages_readable(open_store, tmp_path):
    store = open_store(segment_bytes=30_000)  # ~2 pages of 200 cells a segment
    for s in range(6):
        write(store, s)
    reader = open_store()
    keep = {s: store.document_pages(store.doc_for_content(f"sha-{s}")) for s in (1, 3, 5)}
    before = {p.page_id: reader.page_features([p.page_id])[p.page_id] for pages in keep.values() for p in pages}
    for s in (0, 2, 4):
        store.unlink_path(f"/docs/{s}.pdf")
    seg_dir = tmp_path / "home" / "features"
    size_before = sum(p.stat().st_size for p in seg_dir.iterdir())
    n_segments = len(list(seg_dir.iterdir()))
    reclaimed = store.compact(min_garbage=0.3)
    assert reclaimed > 0 and sum(p.stat().st_size for p in seg_dir.iterdir()) == size_before - reclaimed
    assert len(list(seg_dir.iterdir())) < n_segments
    st = store.stats()
    garbage = sum(p.stat().st_size for p in seg_dir.iterdir()) - st.feature_bytes
    assert st.pages == 6 and garbage == 2 * (20 + 150 + 200 * 64)  # doc 4, in the newest segment (kept)
    for other in (store, reader):  # the reader had read handles on the removed segments
        after = other.page_features(list(before))
        for pid, pf in before.items():
            assert np.array_equal(after[pid].feats, pf.feats) and np.array_equal(after[pid].xs, pf.xs)
        for s, pages in keep.items():
            hits = top_pages(other, random_doc(s, 2)[1].feats[:3], k=1)
            assert all(h == {pages[1].page_id} for h in hits)
    store.close()
    assert open_store().stats().vectors == 6 * 200


def test_documents_listing_pages_through_ok_then_failed(open_store):
    store = open_store()
    ids = [write(store, s) for s in range(3)]
    for i in range(2):
        store.record_failure(f"/bad{i}.pdf", 1, 1, f"broken {i}")
    listing = store.documents(limit=2), store.documents(offset=2, limit=2), store.documents(offset=4, limit=2)
    assert [[(d["id"], d["status"], d["path"]) for d in page] for page in listing] == [
        [(ids[0], "ok", "/docs/0.pdf"), (ids[1], "ok", "/docs/1.pdf")],
        [(ids[2], "ok", "/docs/2.pdf"), (None, "failed", "/bad0.pdf")],
        [(None, "failed", "/bad1.pdf")],
    ]
    assert [d["reason"] for d in store.documents(status="failed")] == ["broken 0", "broken 1"]
    assert [d["id"] for d in store.documents(status="ok", offset=1)] == ids[1:]
    assert store.failure("/bad1.pdf")["reason"] == "broken 1" and store.failure("/docs/0.pdf") is None
    with pytest.raises(ValueError, match="status"):
        store.documents(status="deleted")


def test_invalid_pages_are_refused(open_store):
    store = open_store()
    store.ensure_model(MINI)
    bad = random_doc(1, 1, dim=32)
    with pytest.raises(ValueError, match="dim 32"):
        store.write_document("x", "/x.pdf", 1, 1, "pdf", iter(bad))
    p = random_doc(1, 1)[0]
    p.xs = p.xs + p.grid_w
    with pytest.raises(ValueError, match="outside"):
        store.write_document("x", "/x.pdf", 1, 1, "pdf", iter([p]))
    assert store.stats().pages == 0


def test_verify_reports_a_damaged_feature_store(open_store, tmp_path):
    store = open_store()
    write(store, 1)
    seg = next((tmp_path / "home" / "features").iterdir())
    with open(seg, "r+b") as f:
        f.seek(100)
        f.write(b"garbage!")
    problems = store.verify(read_all=True)
    assert problems == [
        "1 pages have no vectors (e.g. [1])",
        "page 1: features unreadable (feature blob checksum mismatch)",
    ]
    assert store.page_features([1, 2]).keys() == {2}  # the damaged page is left out, search goes on
    assert top_pages(store, random_doc(1, 2)[1].feats[:2], k=1) == [{2}, {2}]


def test_a_database_serves_one_home(open_store, db_url, tmp_path):
    url = db_url or f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    first = Store.open(tmp_path / "a", url)
    write(first, 1)
    first.close()
    with pytest.raises(RuntimeError, match="belongs to the index in .*a"):
        Store.open(tmp_path / "b", url)
    Store.open(tmp_path / "a", url).close()  # its own home still opens


def test_a_moved_home_still_opens(tmp_path):
    import shutil

    with Store.open(tmp_path / "old") as st:
        write(st, 1)
    shutil.move(tmp_path / "old", tmp_path / "new")
    with Store.open(tmp_path / "new") as st:
        assert st.stats().pages == 2 and st.verify(read_all=True) == []
    with Store.open(tmp_path / "new") as st:  # the new place is remembered
        assert st.stats().documents == 1


def test_index_from_another_schema_version_is_refused(open_store, tmp_path):
    from sqlalchemy import update

    from tokensearch.storage.schema import Meta

    store = open_store()
    with store.engine.begin() as c:
        c.execute(update(Meta).where(Meta.key == "schema").values(number=99))
    with pytest.raises(RuntimeError, match="schema 99.*new --home"):
        open_store()


def test_model_mismatch(open_store):
    store = open_store()
    assert store.stored_model() is None
    store.ensure_model(MINI)
    store.ensure_model(MINI)
    assert store.stored_model() == MINI
    other = ModelInfo("tokenocr:/ckpt/TokenOCR_4096", "tokenocr", "b" * 64, 4096)
    with pytest.raises(ModelMismatchError) as e:
        store.ensure_model(other)
    msg = str(e.value)
    assert "'mini'" in msg and "tokenocr:/ckpt/TokenOCR_4096" in msg and "--model" in msg and "--home" in msg
    retrained = ModelInfo("mini", "mini", "c" * 64, 64)  # same name, other weights
    with pytest.raises(ModelMismatchError, match="weights"):
        open_store().ensure_model(retrained)


def test_flat_index_becomes_compressed_past_threshold(open_store):
    store = open_store(flat_max_vectors=3000)
    docs = [random_doc(s, 2, n=400) for s in range(5)]
    ids = [store.write_document(f"sha-{s}", f"/{s}.pdf", 1, 1, "pdf", iter(d)) for s, d in enumerate(docs[:3])]
    assert store.stats().vector_index_type == "flat-ip"  # 2400 vectors
    ids += [store.write_document(f"sha-{s}", f"/{s}.pdf", 1, 1, "pdf", iter(d)) for s, d in enumerate(docs[3:], 3)]
    st = store.stats()
    assert st.vector_index_type.startswith("ivf") and st.vector_index_type.endswith("sq8") and st.vectors == 4000
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
    assert types[0] == "flat-ip" and types[2].endswith(",sq8") and types[-1].endswith(",sq4")
    assert types[-1] != types[2] and store.stats().vectors == 2600
    found = [store.doc_for_content(f"sha-{s}") in {store.pages(h.tolist())[p].doc_id for p in h.tolist()}
             for s in range(0, 26, 5) for h, _ in store.search_cells(docs[s][0].feats[:5], 3)]
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
    assert ids[0] == pid and scores[0] > 0.999 and len(ids) == 3 and ids[1] != pid  # one hit per distinct vector


def token_blob_page(rng, page_no, tokens, noise=0.02, grid=(40, 60), block=(3, 6)) -> PageRecord:
    """Vision-like page: each token covers a block of cells holding its vector plus a little noise."""
    gh, gw = grid
    ys, xs, feats = [], [], []
    for i, vec in enumerate(tokens):
        y0, x0 = (i // 8) * (block[0] + 1), (i % 8) * (block[1] + 1)
        yy, xx = np.mgrid[y0 : y0 + block[0], x0 : x0 + block[1]]
        ys.append(yy.ravel())
        xs.append(xx.ravel())
        feats.append(vec + noise * rng.standard_normal((yy.size, len(vec))))
    return PageRecord(page_no, gw * 8, gh * 8, "vision", gh, gw, np.concatenate(ys), np.concatenate(xs),
                      l2_normalize(np.concatenate(feats)).astype(np.float32))


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
        (ids_f, sc_f), = full.search_cells(vocab[t : t + 1], 18 * len(truth))
        (ids_m, sc_m), = merged.search_cells(vocab[t : t + 1], 3 * len(truth))
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


def test_second_store_sees_writes_and_deletes(open_store, tmp_path):
    writer = open_store()
    reader = open_store()
    probe = random_doc(1, 1)[0].feats[:4]
    assert reader.search_cells(reader.project_queries(probe), 3)[0][0].size == 0
    doc = write(writer, 1)
    page = writer.document_pages(doc)[0].page_id
    assert all(page in h for h in top_pages(reader, probe))
    writer.delete_document(doc)
    assert reader.stats().vectors == 0 and not any(page in h for h in top_pages(reader, probe))


def test_two_writers_share_a_home(open_store, tmp_path):
    """E.g. the CLI indexing while the API indexes an upload: each owns its own feature segment."""
    a, b = open_store(), open_store()
    for s in range(4):
        write(a if s % 2 else b, s)
    segs = sorted(p.name for p in (tmp_path / "home" / "features").iterdir())
    assert len(segs) == 2
    for st in (a, b):
        assert st.stats().documents == 4 and st.stats().vectors == 4 * 400
        for s in range(4):
            doc = st.doc_for_content(f"sha-{s}")
            page = st.document_pages(doc)[0].page_id
            assert all(page in h for h in top_pages(st, random_doc(s, 1)[0].feats[:3], k=1))
    a.close()
    b.close()
    c = open_store()
    write(c, 9)
    assert len(list((tmp_path / "home" / "features").iterdir())) == 2  # a released segment is reused


def test_searches_while_writing_in_another_thread(open_store):
    store = open_store()
    write(store, 0)
    probe = random_doc(0, 1)[0].feats[:3]
    errors: list[BaseException] = []

    def searcher():
        try:
            for _ in range(50):
                store.search_cells(store.project_queries(probe), 5)
                store.page_features([1, 2])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=searcher)
    t.start()
    for s in range(1, 6):
        write(store, s)
    t.join()
    assert not errors and store.stats().vectors == 6 * 400


def test_stats_bytes_per_page(open_store):
    """D=64, 3000 kept cells on a 100x75 grid: feature store ~ 193 KB/page; a flat FAISS index is not
    saved (rebuilt from the features), so that is nearly all of it."""
    store = open_store()
    pages = random_doc(1, 4, n=3000, dim=64, grid=(100, 75))
    store.write_document("sha", "/a.pdf", 1, 1, "pdf", iter(pages))
    store.persist()
    st = store.stats()
    assert st.feature_bytes == 4 * (20 + (100 * 75 + 7) // 8 + 3000 * 64)
    assert st.vector_bytes == 0 and st.vector_index_type == "flat-ip"
    assert st.feature_bytes < st.index_bytes < st.feature_bytes + st.database_bytes + 4096 * 4
    assert st.bytes_per_page == pytest.approx(st.index_bytes / 4)


# --- crash safety ----------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from pathlib import Path
    from storage_fixtures import random_doc
    from tokensearch.storage import store as store_mod, vectors as vectors_mod
    from tokensearch.storage import Store

    point, home, url, flat_max = sys.argv[1], Path(sys.argv[2]), sys.argv[3] or None, int(sys.argv[4])
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    st = Store.open(home, url, persist_interval=0, flat_max_vectors=flat_max)
    for seed in (1, 2, 3):
        st.write_document(f"sha-{{seed}}", f"/{{seed}}.pdf", 1, 1, "pdf", iter(random_doc(seed, 2)))
    st.unlink_path("/2.pdf")
    if point == "after_fsync":
        st.features.sync = (lambda orig: lambda: (orig(), die()))(st.features.sync)
    elif point == "after_commit":
        st.vectors.committed = die
    elif point == "during_persist":
        vectors_mod._atomic_write = die
    def pages():
        doc = random_doc(4, 3)
        yield doc[0]
        yield doc[1]
        if point == "iterator":
            die()
        yield doc[2]
    st.write_document("sha-4", "/4.pdf", 1, 1, "pdf", pages())
    st.persist()  # (the periodic snapshot may have come first)
    print("not killed")
    """
)


@pytest.mark.parametrize(
    "point,index",
    [("iterator", "ivf"), ("after_fsync", "ivf"), ("after_commit", "ivf"), ("during_persist", "ivf"),
     ("after_commit", "flat")],
)
def test_kill_9_leaves_a_consistent_index(open_store, db_url, tmp_path, point, index):
    """The writer dies (SIGKILL) at a point of its 4th document (after 3 written and 1 unlinked)."""
    home = tmp_path / "home"
    flat_max = 500 if index == "ivf" else 10**6  # ivf: 800 vectors after doc 2 -> IVF-SQ8, snapshots
    script = CHILD.format(root=str(ROOT), tests=str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", script, point, str(home), db_url or "", str(flat_max)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **ONE_THREAD})
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr

    store = open_store(flat_max_vectors=flat_max)
    committed = {1, 3} | ({4} if point in ("after_commit", "during_persist") else set())
    st = store.stats()
    assert st.vector_index_type == ("flat-ip" if index == "flat" else "ivf20,sq8")
    assert store.verify(read_all=True) == []
    assert st.documents == len(committed)
    assert st.pages == 2 * len(committed) + (1 if 4 in committed else 0)
    assert st.vectors == st.pages * 200 == st.feature_cells
    for seed in (1, 2, 3, 4):
        doc = store.doc_for_content(f"sha-{seed}")
        assert (doc is not None) == (seed in committed)
        page_ids = {p.page_id for p in store.document_pages(doc)} if doc else set()
        for page in random_doc(seed, 2):
            hits = store.search_cells(store.project_queries(page.feats[:3]), 1)
            found = {int(ids[0]) for ids, scores in hits if scores[0] > 0.99}
            assert bool(found) == (seed in committed) and found <= page_ids
    # the next run finishes the job, and drops what the killed writer left in its segment
    if 4 not in committed:
        store.write_document("sha-4", "/4.pdf", 1, 1, "pdf", iter(random_doc(4, 3)))
    st = store.stats()
    assert st.vectors == (2 + 2 + 3) * 200 and st.documents == 3 and store.verify() == []
    live = sum(p.stat().st_size for p in (home / "features").iterdir())
    assert live == st.feature_bytes + 2 * (st.feature_bytes // 7)  # + the unlinked doc 2 (2 of 9 pages)
