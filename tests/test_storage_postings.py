"""Token postings, stage 1 of a big index: each cell filed under its best vocabulary tokens (``postings``);
chosen past the flat index where the indexing model offers its vocabulary; on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.storage_fixtures import db_url, one_faiss_thread, open_store, token_blob_page  # noqa: F401
from tokensearch.storage import postings
from tokensearch.storage.postings import MAX_VOCAB, PostingsIndex, best_tokens, file_cells, select_postings
from tokensearch.storage.records import ModelInfo
from tokensearch.vectornorm import l2_normalize

DIM = 64
MODEL = ModelInfo(name="mini", family="mini", fingerprint="b" * 64, dim=DIM)


def vocabulary(n: int = 60, seed: int = 7) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, DIM))).astype(np.float32)


def token_pages(vocab: np.ndarray, n_pages: int, seed: int) -> list:
    """Pages of 16 token blocks each (3 x 6 cells, a little noise), tokens drawn from ``vocab``."""
    rng = np.random.default_rng(seed)
    return [token_blob_page(rng, i + 1, vocab[rng.choice(len(vocab), 16, replace=False)]) for i in range(n_pages)]


def write_pages(store, vocab: np.ndarray, seed: int, n_pages: int = 2) -> tuple[int, list]:
    pages = token_pages(vocab, n_pages, seed)
    doc = store.write_document(f"sha-{seed}", f"/docs/{seed}.pdf", 100 + seed, 10**9 + seed, "pdf", iter(pages))
    return doc, pages


def pages_holding(pages_by_doc: dict[int, list], store, vocab: np.ndarray, token: int) -> set[int]:
    """Page ids whose page shows ``token`` (the vocabulary row its block was drawn from)."""
    out = set()
    for doc, pages in pages_by_doc.items():
        for info, rec in zip(store.document_pages(doc), pages):
            if (np.abs(rec.feats @ vocab[token]) > 0.9).any():
                out.add(info.page_id)
    return out


def test_best_tokens_are_each_cells_nearest_vocabulary_rows():
    rng = np.random.default_rng(0)
    vocab = vocabulary(1200)
    cells = l2_normalize(rng.standard_normal((700, DIM))).astype(np.float32)
    ids, scores = best_tokens(cells, vocab, 3)
    full = cells @ vocab.T
    want = np.argsort(-full, axis=1)[:, :3]
    assert (ids == want).all()
    assert np.allclose(scores, np.take_along_axis(full, want, axis=1), atol=1e-6)


def test_a_token_lists_its_best_cells_first_across_fresh_dead_and_rebuilt_pages(tmp_path):
    vocab = vocabulary()
    rng = np.random.default_rng(1)
    idx = PostingsIndex.empty(DIM, {"type": "postings", "best": 2, "chosen_at": 0}, vocab)
    pages = {}
    for p in range(1, 9):
        n = 120
        feats = l2_normalize(vocab[rng.integers(0, len(vocab), n)] + 0.3 * rng.standard_normal((n, DIM)))
        cells = np.stack([rng.integers(0, 40, n), rng.integers(0, 60, n)], axis=1)
        pages[p] = (feats.astype(np.float32), cells)
        idx.add_page(p, feats, cells)
        if p == 4:
            idx.compact()  # pages 1-4 in the base, 5-8 fresh

    def brute(token: int, k: int, allowed: set[int] | None) -> list[float]:
        scores = []
        for p, (feats, _) in pages.items():
            if p in idx.page_cells and (allowed is None or p in allowed):
                ids, sc = best_tokens(feats, vocab, 2)
                scores += sc[ids == token].tolist()
        return sorted(scores, reverse=True)[:k]

    idx.remove_pages([2, 6])  # one in the base (dead), one fresh
    for state in ("mixed", "rebuilt", "reloaded"):
        if state == "rebuilt":
            idx.compact()
            assert not idx.dead and not idx.fresh
        if state == "reloaded":
            idx.generation = 3
            idx.save(tmp_path)
            loaded = PostingsIndex.load(tmp_path, vocab)
            assert loaded is not None and loaded.page_cells == idx.page_cells
            idx = loaded
        for token in (0, 5, 17):
            for allowed in (None, {1, 3, 7}):
                pages_arg = None if allowed is None else np.array(sorted(allowed))
                ((pg, sc, ce),) = idx.search(vocab[token : token + 1], 25, pages_arg)
                assert np.allclose(sc, brute(token, 25, allowed), atol=2e-3), (state, token, allowed)
                assert np.all(np.diff(sc) <= 1e-6)
                assert not ({2, 6} & set(pg.tolist()))
                for p, (y, x) in zip(pg.tolist(), ce.tolist()):
                    assert any((c == (y, x)).all() for c in pages[p][1])


FILING = [{"best": 2}, {"best": 4, "margin": 0.1, "peaks": True}]


@pytest.mark.parametrize("filing", FILING)
@pytest.mark.parametrize("merge_postings", [37, 1 << 24])
def test_a_snapshot_rebuilds_the_lists_range_by_range_into_its_files(tmp_path, monkeypatch, merge_postings, filing):
    """A rebuild merges a few tokens' postings at a time straight into the snapshot's files (a big index's table
    does not fit in memory): the lists read back are those of one in-memory sort of the live postings."""
    monkeypatch.setattr(postings, "_MERGE_POSTINGS", merge_postings)
    vocab = vocabulary()
    rng = np.random.default_rng(5)
    spec = {"type": "postings", **filing, "chosen_at": 0}
    idx = PostingsIndex.empty(DIM, spec, vocab)
    live: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for p in range(1, 13):
        n = int(rng.integers(1, 90))
        feats = l2_normalize(vocab[rng.integers(0, len(vocab), n)] + 0.3 * rng.standard_normal((n, DIM)))
        cells = np.stack([rng.integers(0, 40, n), rng.integers(0, 60, n)], axis=1)
        idx.add_page(p, feats, cells)
        live[p] = (feats, cells)
        if p == 6:
            idx.generation = 1
            idx.save(tmp_path)  # pages 1-6 the base, 7-12 fresh
    idx.remove_pages([3, 9])  # one dead in the base, one fresh dropped
    for p in (3, 9):
        del live[p]
    idx.generation = 2
    idx.save(tmp_path)
    loaded = PostingsIndex.load(tmp_path, vocab)
    assert loaded is not None and not idx.fresh and not idx.dead
    want = []  # (token, -score, page, y, x) of every live posting, sorted as the lists are
    for p, (feats, cells) in live.items():
        tok, cell, score = file_cells(feats, cells, vocab, spec)
        want += [(int(t), -float(s), p, *map(int, c)) for t, s, c in zip(tok, score, cell)]
    for lists in (idx.base, loaded.base):
        assert lists is not None and len(lists) == len(want) and int(lists.starts[-1]) == len(want)
        tok = np.repeat(np.arange(len(vocab)), np.diff(lists.starts))
        got = list(
            zip(
                tok.tolist(),
                (-lists.score.astype(np.float64)).tolist(),
                lists.page.tolist(),
                *np.asarray(lists.cell, np.int64).T.tolist(),
            )
        )
        assert [g[:2] for g in got] == [w[:2] for w in sorted(want)]  # token, then best first
        assert sorted(got) == sorted(want)


def test_a_big_index_files_cells_under_the_model_vocabulary_and_finds_a_token_page(open_store):
    vocab = vocabulary()
    store = open_store(flat_max_vectors=3000)
    store.ensure_model(MODEL, vocabulary=lambda: vocab)
    docs = dict(write_pages(store, vocab, s) for s in range(4))
    assert store.stats().vector_index_type == "flat-ip-int8"  # 4 x 2 x 288 cells
    docs.update(write_pages(store, vocab, s) for s in range(4, 8))
    assert store.stats().vector_index_type == "postings3-m0.1-peaks-p2"
    for token in (3, 11, 42):
        want = pages_holding(docs, store, vocab, token)
        ((ids, scores),) = store.search_cells(store.project_queries(vocab[token : token + 1]), 2000)
        # its blocks' cells first, then cells of other tokens filing it second best
        assert want and set(ids[scores > 0.9].tolist()) == want and np.all(np.diff(scores) <= 1e-6)
    gone = next(iter(docs))
    store.delete_document(gone)
    assert store.verify() == []
    store.close()

    # another process, offered no vocabulary: the recorded one files its new pages; its snapshot loads
    again = open_store(flat_max_vectors=3000)
    doc, pages = write_pages(again, vocab, 99)
    docs[doc] = pages
    del docs[gone]
    assert again.stats().vector_index_type == "postings3-m0.1-peaks-p2" and again.verify() == []
    for token in (3, 11, 42):
        ((ids, scores),) = again.search_cells(again.project_queries(vocab[token : token + 1]), 2000)
        assert set(ids[scores > 0.9].tolist()) == pages_holding(docs, again, vocab, token)
    again.close()

    # the snapshot lost: rebuilt from the feature store and the recorded vocabulary
    shutil.rmtree(again.vector_dir)
    third = open_store(flat_max_vectors=3000)
    assert third.verify() == []
    ((ids, scores),) = third.search_cells(third.project_queries(vocab[11:12]), 2000)
    assert set(ids[scores > 0.9].tolist()) == pages_holding(docs, third, vocab, 11)


@pytest.mark.parametrize("offered", ["none", "too large", "declined"])
def test_a_big_index_takes_ivf_without_a_usable_vocabulary(open_store, offered):
    vocab = vocabulary(MAX_VOCAB + 1 if offered == "too large" else 60)
    store = open_store(flat_max_vectors=3000, postings=offered != "declined")
    store.ensure_model(MODEL, vocabulary=None if offered == "none" else lambda: vocab)
    for s in range(8):
        write_pages(store, vocab[:60], s)
    assert store.stats().vector_index_type.startswith("ivf")


def test_stage_1_asks_token_postings_for_their_listed_cells_whatever_the_pages(open_store):
    """A token's list is read best first from its start: the search asks postings for ``listed_cells_per_token``
    cells a token up to ``listed_pages`` pages, then in proportion to the pages (a vector index's cells grow with
    their square root)."""
    from tokensearch.search.searcher import Searcher, SearchOptions

    vocab = vocabulary()
    store = open_store(flat_max_vectors=3000)
    store.ensure_model(MODEL, vocabulary=lambda: vocab)
    opt = SearchOptions(
        threshold=0.5,
        cells_per_token=1000,
        crowd_pages=4,
        listed_cells_per_token=777,
        listed_pages=16,
        max_listed_cells_per_token=1500,
    )
    searcher = Searcher(None, store, opt)
    for s in range(4):
        write_pages(store, vocab, s)
    assert not store.token_lists() and searcher._cells_per_token(None) == 1414  # 8 pages: 1000 x sqrt(8 / 4)
    for s in range(4, 8):
        write_pages(store, vocab, s)
    assert store.token_lists() and searcher._cells_per_token(None) == 777  # 16 pages
    for s in range(8, 12):
        write_pages(store, vocab, s)
    assert searcher._cells_per_token(None) == 1166  # 24 pages: 777 x 24 / 16
    for s in range(12, 24):
        write_pages(store, vocab, s)
    assert searcher._cells_per_token(None) == 1500  # 48 pages: at most max_listed_cells_per_token
    assert searcher._cells_per_token(np.arange(4)) == 777  # a filter's pages compete, not the index's


def test_stage_1_chains_only_the_pages_that_can_be_candidates_and_finds_the_same_candidates(open_store, monkeypatch):
    """Chaining every page holding a retrieved cell was most of a search in a big index: pages are chained in
    the order of an upper bound of their estimate, block by block, until the rest cannot rank among the
    candidates; the candidates are those of chaining every page."""
    from tokensearch.search import searcher as searching
    from tokensearch.search.query import Unit
    from tokensearch.search.searcher import Searcher, SearchOptions, _Plan, _Spelling

    vocab = vocabulary()
    store = open_store(flat_max_vectors=3000)
    store.ensure_model(MODEL, vocabulary=lambda: vocab)
    pages = []
    for s in range(30):
        pages += write_pages(store, vocab, s)[1]
    assert store.token_lists()
    opt = SearchOptions(threshold=0.5, min_candidate_pages=2, max_candidate_pages=6, listed_cells_per_token=400)
    searcher = Searcher(None, store, opt)
    chained: list[int] = []
    real = searching.chain_estimate

    def counting(rows, lens, pages_, fills=None):
        chained.append(len(pages_))
        return real(rows, lens, pages_, fills)

    monkeypatch.setattr(searching, "chain_estimate", counting)
    rng = np.random.default_rng(4)
    fewer = 0
    for _ in range(12):
        # two or three tokens side by side on a drawn page (its blocks are in reading order), plus a second word
        page = pages[int(rng.integers(len(pages)))]
        at = int(rng.integers(0, 6))
        near = [
            int(np.argmax(vocab @ page.feats[(page.ys == (at // 8) * 4) & (page.xs == (at % 8) * 7 + c)][0]))
            for c in (0, 7)
        ]
        words = [near, [int(t) for t in rng.choice(len(vocab), 2, replace=False)]]
        plan = _Plan([Unit("a b", False), Unit("c d", False)], n_query_units=2)
        rows = 0
        for u, ids in enumerate(words):
            plan.spellings.append(_Spelling(u, list(range(rows, rows + len(ids))), [3] * len(ids), ids))
            rows += len(ids)
        plan.vectors = store.project_queries(vocab[[t for ids in words for t in ids]])
        got = {}
        for first in (1, 10**9):
            monkeypatch.setattr(searching, "_FIRST_BLOCK", first)
            chained.clear()
            got[first] = (searcher._candidates(plan, 2), sum(chained))
        assert got[1][0] == got[10**9][0] and got[1][0]
        fewer += got[1][1] < got[10**9][1]
    assert fewer > 0


def test_a_cell_is_filed_under_its_tokens_within_the_margin_and_a_token_only_at_its_row_peaks():
    ids = np.array([[5, 7, 9], [5, 8, 9], [5, 7, 1], [5, 2, 3]])
    scores = np.array([[0.9, 0.85, 0.7], [0.95, 0.8, 0.6], [0.7, 0.65, 0.64], [0.8, 0.5, 0.4]], np.float32)
    cells = np.array([[0, 0], [0, 1], [0, 2], [1, 1]])
    tok, cell, score = select_postings(ids, scores, cells, {"best": 3, "margin": 0.1})
    within = {(5, 0, 0), (7, 0, 0), (5, 0, 1), (5, 0, 2), (7, 0, 2), (1, 0, 2), (5, 1, 1)}
    assert {(int(t), *map(int, c)) for t, c in zip(tok, cell)} == within
    tok, cell, score = select_postings(ids, scores, cells, {"best": 3, "margin": 0.1, "peaks": True})
    # " 5" read over three cells of row 0 is one occurrence, kept at its best cell; row 1's is another
    got = {(int(t), *map(int, c)): float(s) for t, c, s in zip(tok, cell, score)}
    assert set(got) == {(5, 0, 1), (7, 0, 0), (7, 0, 2), (1, 0, 2), (5, 1, 1)}
    assert got[(5, 0, 1)] == pytest.approx(0.95, abs=1e-3)
    # the rule as first shipped: every cell under its best 2, whatever their cosines
    tok, _, _ = select_postings(ids, scores, cells, {"best": 2})
    assert tok.tolist() == ids[:, :2].reshape(-1).tolist()


def test_a_penalty_files_a_token_lower_by_what_it_falls_short_of_the_cells_best_but_keeps_the_same_tokens():
    ids = np.array([[5, 7, 9], [5, 8, 9], [5, 7, 1], [5, 2, 3]])
    scores = np.array([[0.9, 0.85, 0.7], [0.95, 0.8, 0.6], [0.7, 0.65, 0.64], [0.8, 0.5, 0.4]], np.float32)
    cells = np.array([[0, 0], [0, 1], [0, 2], [1, 1]])
    rule = {"best": 3, "margin": 0.1}
    plain = select_postings(ids, scores, cells, rule)
    tok, cell, score = select_postings(ids, scores, cells, {**rule, "penalty": 2.0})
    assert tok.tolist() == plain[0].tolist() and cell.tolist() == plain[1].tolist()  # the margin reads cosines
    got = {(int(t), *map(int, c)): float(s) for t, c, s in zip(tok, cell, score)}
    assert got[(5, 0, 0)] == pytest.approx(0.9, abs=1e-3)  # a cell's best token: its cosine
    assert got[(7, 0, 0)] == pytest.approx(0.85 - 2 * 0.05, abs=1e-3)
    assert got[(1, 0, 2)] == pytest.approx(0.64 - 2 * 0.06, abs=1e-3)
    # row peaks compare the scores filed: token 7 reads higher at (0, 1), but nearer its cell's best at (0, 0)
    ids, scores = np.array([[5, 7], [6, 7]]), np.array([[0.9, 0.85], [0.95, 0.87]], np.float32)
    cells = np.array([[0, 0], [0, 1]])
    for penalty, kept in ((0.0, (0, 1)), (2.0, (0, 0))):
        tok, cell, _ = select_postings(
            ids, scores, cells, {"best": 2, "margin": 0.1, "peaks": True, "penalty": penalty}
        )
        assert [tuple(map(int, c)) for t, c in zip(tok, cell) if t == 7] == [kept]


def test_a_snapshot_from_before_the_filing_rule_loads_with_best_postings_a_cell(tmp_path):
    vocab = vocabulary()
    rng = np.random.default_rng(9)
    idx = PostingsIndex.empty(DIM, {"type": "postings", "best": 2, "chosen_at": 0}, vocab)
    for p in range(1, 5):
        feats = l2_normalize(vocab[rng.integers(0, len(vocab), 30)] + 0.3 * rng.standard_normal((30, DIM)))
        idx.add_page(p, feats.astype(np.float32), np.stack([rng.integers(0, 40, 30), rng.integers(0, 60, 30)], 1))
    idx.generation = 1
    idx.save(tmp_path)
    (pages_file,) = tmp_path.glob("index-*.pages.npy")
    np.save(pages_file, np.load(pages_file)[:, :2])  # (page, cells), as written before
    loaded = PostingsIndex.load(tmp_path, vocab)
    assert loaded is not None and loaded.page_postings == {p: 60 for p in range(1, 5)}
    loaded.remove_pages([2])
    loaded.generation = 2
    loaded.save(tmp_path)
    assert len(PostingsIndex.load(tmp_path, vocab).base) == 180


def test_a_page_that_reads_a_words_first_letter_apart_is_offered_by_its_split_cut_and_scored_by_the_query_cut(
    open_store, monkeypatch
):
    """Postings file a cell under the tokens it reads best: a page whose cells read the first letter apart
    (" m" + "aterial") is listed under none of the query cut's tokens (" material"). Stage 1 also chains the split
    cut, so the page is a candidate; stage 2 locates the query's own cuts only."""
    from tokensearch.search import searcher as searching
    from tokensearch.search.query import Unit
    from tokensearch.search.searcher import Searcher, SearchOptions, _Plan, _Spelling

    vocab = vocabulary(200)
    store = open_store(flat_max_vectors=3000)
    store.ensure_model(MODEL, vocabulary=lambda: vocab)
    for s in range(30):  # pages of the first 150 tokens
        write_pages(store, vocab[:150], s)
    rng = np.random.default_rng(5)
    head, rest, own = 198, 199, 197  # " m", "aterial" side by side on one page; " material" nowhere
    page = token_blob_page(rng, 1, vocab[[head, rest, *rng.choice(150, 14, replace=False)]])
    doc = store.write_document("sha-split", "/docs/split.pdf", 1, 1, "pdf", iter([page]))
    pid = store.document_pages(doc)[0].page_id
    assert store.token_lists()
    opt = SearchOptions(threshold=0.5, min_candidate_pages=2, max_candidate_pages=4, listed_cells_per_token=400)
    searcher = Searcher(None, store, opt)

    def plan(with_split: bool) -> _Plan:
        p = _Plan([Unit("material", False)], n_query_units=1)
        p.spellings.append(_Spelling(0, [0], [8], [own]))
        if with_split:
            p.spellings.append(_Spelling(0, [1, 2], [1, 7], [head, rest], split=True))
        p.vectors = store.project_queries(vocab[[own, head, rest]])
        return p

    assert pid not in searcher._candidates(plan(False), 2)
    assert pid in searcher._candidates(plan(True), 2)
    located: list[list[int]] = []
    real = searching.locate

    def spy(maps, lens, *args, **kw):
        located.append(list(lens))
        return real(maps, lens, *args, **kw)

    monkeypatch.setattr(searching, "locate", spy)
    searcher.score_pages(plan(True), [pid])
    assert [1, 7] not in located
