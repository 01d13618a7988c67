"""Store behaviour on SQLite and PostgreSQL: write/read, paths and duplicates, deletes, failures,
listings, consistency checks, one home per database, models, concurrent readers and writers, stats.
(Vector index and codec: test_storage_vectors.py; kill -9: test_storage_crash.py.)"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import func, select, update

from tests.storage_fixtures import (  # noqa: F401  (fixtures)
    BACKENDS,
    db_url,
    one_faiss_thread,
    open_store,
    random_doc,
    random_page,
    top_pages,
    vector_backend,
    write,
)
from tokensearch.errors import IndexLayoutError
from tokensearch.storage import ModelMismatchError, Store
from tokensearch.tokenocr_model.interface import ModelInfo
from tokensearch.vectornorm import l2_normalize

MINI = ModelInfo(name="mini", family="mini", fingerprint="a" * 64, dim=64)


@pytest.mark.parametrize("vector_backend", BACKENDS)
def test_write_read_round_trip(open_store, vector_backend):
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
    assert all(ids[0] == info[1].page_id and scores[0] > 0.99 for ids, scores in hits)

    known = store.known_files()
    assert known["/docs/a.pdf"].status == "ok" and known["/docs/a.pdf"].doc_id == doc_id
    assert known["/docs/a.pdf"].sha256 == "sha-7" and known["/docs/a.pdf"].mtime_ns == 5678
    doc = store.document(doc_id)
    assert doc is not None and doc.paths == ["/docs/a.pdf"] and doc.pages == 3 and doc.status == "ok"
    assert [p.page_no for p in doc.page_list] == [1, 2, 3]
    assert [d.id for d in store.documents()] == [doc_id]
    assert store.runs()[0]["status"] == "ok" and store.runs()[0]["stats"]["indexed"] == 1
    st = store.stats()
    assert (st.documents, st.pages, st.vectors, st.pages_by_source) == (1, 3, 900, {"vision": 3})
    assert store.verify(read_all=True) == []
    assert st.codec == "identity" and st.dim == 64
    assert st.vector_index_type == {"faiss": "flat-ip-int8", "milvus": "milvus:flat"}[vector_backend]


def test_pages_are_consumed_one_at_a_time(open_store):
    """A long document is never held in memory: a page's features are released two pages later."""
    import weakref

    store = open_store()
    refs: list[weakref.ref] = []

    def pages():
        rng = np.random.default_rng(3)
        for i in range(30):
            page = random_page(rng, i + 1)  # (arrays are freed by refcount: no gc.collect needed)
            assert all(r() is None for r in refs[: max(0, i - 2)]), f"pages before {i - 1} still alive"
            refs.append(weakref.ref(page.feats))
            yield page

    store.write_document("long", "/long.pdf", 1, 1, "pdf", pages())
    assert store.stats().pages == 30


@pytest.mark.parametrize("vector_backend", BACKENDS)
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
    assert store.document(doc_id).paths == ["/a.pdf", "/copy/a.pdf", "/third.pdf"]
    store.unlink_path("/a.pdf")
    store.unlink_path("/third.pdf")
    assert store.doc_for_content("sha-1") == doc_id and store.stats().vectors == 400
    assert store.document_pages(doc_id)[0].path == "/copy/a.pdf"


@pytest.mark.parametrize("vector_backend", BACKENDS)
def test_same_content_indexed_by_two_processes_at_once(open_store):
    """The second writer's commit finds the content already there: it links its path instead."""
    a, b = open_store(), open_store()
    pages = random_doc(1, 2)

    def pages_while_a_commits():
        yield pages[0]
        a.write_document("sha-1", "/a.pdf", 1, 1, "pdf", iter(pages))  # a wins the race
        yield pages[1]

    doc = b.write_document("sha-1", "/b.pdf", 1, 1, "pdf", pages_while_a_commits())
    assert doc == a.doc_for_content("sha-1") and b.document(doc).paths == ["/a.pdf", "/b.pdf"]
    assert b.stats().pages == 2 and b.verify() == []


@pytest.mark.parametrize("vector_backend", BACKENDS)
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


@pytest.mark.parametrize("vector_backend", BACKENDS)
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
    assert [d.status for d in store.documents()] == ["ok", "failed"]
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
    assert [[(d.id, d.status, d.path) for d in page] for page in listing] == [
        [(ids[0], "ok", "/docs/0.pdf"), (ids[1], "ok", "/docs/1.pdf")],
        [(ids[2], "ok", "/docs/2.pdf"), (None, "failed", "/bad0.pdf")],
        [(None, "failed", "/bad1.pdf")],
    ]
    assert [d.reason for d in store.documents(status="failed")] == ["broken 0", "broken 1"]
    assert [d.id for d in store.documents(status="ok", offset=1)] == ids[1:]
    assert store.failure("/bad1.pdf").reason == "broken 1" and store.failure("/docs/0.pdf") is None
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
    with pytest.raises(IndexLayoutError, match="belongs to the index in .*a"):
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
    from tokensearch.storage.schema import Meta

    store = open_store()
    with store.engine.begin() as c:
        c.execute(update(Meta).where(Meta.key == "schema").values(number=99))
    with pytest.raises(IndexLayoutError, match="schema 99.*new --home"):
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


@pytest.mark.parametrize("vector_backend", BACKENDS)
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


@pytest.mark.parametrize("vector_backend", BACKENDS)
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


@pytest.mark.parametrize("vector_backend", BACKENDS)
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


def test_deletes_do_not_wait_for_a_document_being_written(open_store):
    """The API deletes a document while an index job is still encoding another one's pages."""
    store = open_store()
    old = write(store, 1)
    paused, resume = threading.Event(), threading.Event()
    pages = random_doc(2, 2)

    def slow_pages():
        yield pages[0]
        paused.set()
        assert resume.wait(30)
        yield pages[1]

    job = threading.Thread(target=store.write_document, args=("sha-2", "/2.pdf", 1, 1, "pdf", slow_pages()))
    job.start()
    assert paused.wait(30)
    done = threading.Event()
    threading.Thread(target=lambda: (store.delete_document(old), store.unlink_path("/gone.pdf"), done.set())).start()
    assert done.wait(10), "delete_document waited for the document being written"
    resume.set()
    job.join(30)
    st = store.stats()
    assert (st.documents, st.pages, st.vectors) == (1, 2, 400) and store.verify() == []
    assert all(h == {3} for h in top_pages(store, pages[0].feats[:2], k=1))


def test_stats_bytes_per_page(open_store):
    """D=64, 3000 kept cells on a 100x75 grid: feature store ~ 193 KB/page; a writer that never searched
    saves no flat vector index (the first searcher does), so that is nearly all of it."""
    store = open_store()
    pages = random_doc(1, 4, n=3000, dim=64, grid=(100, 75))
    store.write_document("sha", "/a.pdf", 1, 1, "pdf", iter(pages))
    store.persist()
    st = store.stats()
    assert st.feature_bytes == 4 * (20 + (100 * 75 + 7) // 8 + 3000 * 64)
    assert st.vector_bytes == 0 and st.vector_index_type == "flat-ip-int8"
    assert st.feature_bytes < st.index_bytes < st.feature_bytes + st.database_bytes + 4096 * 4
    assert st.bytes_per_page == pytest.approx(st.index_bytes / 4)


def _text_pages(tokens: np.ndarray, picks: list[np.ndarray]) -> list:
    """Text-layer pages, each painting its picked tokens over 20 cells apiece."""
    rng = np.random.default_rng(11)
    pages = []
    for no, pick in enumerate(picks, 1):
        page = random_page(rng, no, n=20 * len(pick), grid=(60, 60), dim=tokens.shape[1], source="text")
        page.feats = np.repeat(tokens[pick], 20, axis=0)
        pages.append(page)
    return pages


def _flags(store: Store, page_id: int) -> int:
    from tokensearch.storage.features import HEADER
    from tokensearch.storage.schema import Page

    with store.engine.connect() as c:
        seg, off, nb = c.execute(select(Page.segment, Page.offset, Page.nbytes).where(Page.id == page_id)).one()
    return HEADER.unpack_from(store.features.read_blob(seg, off, nb))[3]


def test_text_layer_pages_name_their_token_rows_once_a_home_and_read_back_in_every_process(open_store, tmp_path):
    """A born-digital page's palette is rows of the home's ts_text_rows, each row stored once however many
    pages repeat its token; another process (a second Store on the home) adds rows and reads the first's."""
    from tokensearch.storage.features import FLAG_SHARED
    from tokensearch.storage.schema import TextRow

    tokens = l2_normalize(np.random.default_rng(3).standard_normal((30, 64))).astype(np.float32)
    first, second = open_store(), open_store()
    a = _text_pages(tokens, [np.arange(0, 20), np.arange(10, 30)])
    b = _text_pages(tokens, [np.arange(5, 25)])
    doc_a = first.write_document("sha-a", "/a.pdf", 1, 1, "pdf", iter(a))
    doc_b = second.write_document("sha-b", "/b.pdf", 1, 1, "pdf", iter(b))
    with first.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(TextRow)).scalar() == 30  # 20 + 20 + 20 painted
    pages = [p.page_id for d in (doc_a, doc_b) for p in first.document_pages(d)]
    assert all(_flags(first, pid) & FLAG_SHARED for pid in pages)
    for store in (first, second, open_store()):
        got = store.page_features(pages)
        for pid, page in zip(pages, a + b):
            order = np.argsort(page.ys * 60 + page.xs)
            assert (got[pid].feats * page.feats[order]).sum(axis=1).min() > 0.999


def test_a_home_of_schema_1_keeps_each_text_palette_in_its_blob(open_store):
    """Homes written before ts_text_rows stay readable by the version that wrote them."""
    from tokensearch.storage.features import FLAG_PALETTE, FLAG_SHARED
    from tokensearch.storage.schema import Meta, TextRow

    store = open_store()
    with store.engine.begin() as c:
        c.execute(update(Meta).where(Meta.key == "schema").values(number=1))
    old = open_store()
    tokens = l2_normalize(np.random.default_rng(4).standard_normal((20, 64))).astype(np.float32)
    doc = old.write_document("sha-a", "/a.pdf", 1, 1, "pdf", iter(_text_pages(tokens, [np.arange(20)])))
    (page,) = old.document_pages(doc)
    assert _flags(old, page.page_id) & (FLAG_PALETTE | FLAG_SHARED) == FLAG_PALETTE
    with old.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(TextRow)).scalar() == 0
        assert c.execute(select(Meta.number).where(Meta.key == "schema")).scalar() == 1
