"""Experiment for issue 17: stage 1 from an inverted index of each cell's best vocabulary tokens instead of a
vector per cell. Runs the dev benchmark (bench/ts_inprocess.py) with the store's cell search replaced.

    python3 bench/stage1_postings.py --top 2 --set clean_150 --tag s1_top2 [--bench DIR]

At the first search, every stored cell's ``--top`` best vocabulary tokens (the model's vocabulary in index
space, as the verification uses it) are computed and kept with their cosines: postings, token id -> (page,
cell, cosine). A query row (a token's vector) is looked up by its token — the vocabulary rows within
``--same`` of it, itself at least — and its top ``k`` postings by cosine are stage 1's cells. Stage 2 is
unchanged (stored features, exact scoring). What this measures is whether stage 1 can do without a vector
per cell; the bytes such postings would take are printed (6 bytes a posting: page delta, cell, cosine).
"""

from __future__ import annotations

import argparse
import runpy
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokensearch.storage.store import Store  # noqa: E402


class Postings:
    def __init__(self, store: Store, vocab: np.ndarray, top: int) -> None:
        t0 = time.perf_counter()
        from sqlalchemy import text

        with store.engine.connect() as c:
            ids = [r[0] for r in c.execute(text("select id from ts_pages"))]
        tok, page, cell, score = [], [], [], []
        for chunk in range(0, len(ids), 16):
            for pid, pf in store.page_features(ids[chunk : chunk + 16]).items():
                sims = pf.rows @ vocab.T  # (m, V): palette rows or cells
                rows = np.arange(len(sims))
                best = np.empty((len(sims), top), dtype=np.int64)
                cos = np.empty((len(sims), top), dtype=np.float32)
                for j in range(top):  # (argpartition over V keeps an (m, V) index array per page alive)
                    best[:, j] = sims.argmax(axis=1)
                    cos[:, j] = sims[rows, best[:, j]]
                    sims[rows, best[:, j]] = -np.inf
                if pf.index is not None:
                    best, cos = best[pf.index], cos[pf.index]
                yx = np.stack([pf.ys, pf.xs], axis=1)
                for j in range(top):
                    tok.append(best[:, j])
                    page.append(np.full(len(yx), pid))
                    cell.append(yx)
                    score.append(cos[:, j])
        tok_a = np.concatenate(tok)
        order = np.argsort(tok_a, kind="stable")
        self.tok = tok_a[order]
        self.page = np.concatenate(page)[order]
        self.cell = np.concatenate(cell)[order]
        self.score = np.concatenate(score)[order].astype(np.float32)
        self.vocab = vocab
        print(
            f"postings: {len(self.tok)} for {len(ids)} pages ({6 * len(self.tok) / max(len(ids), 1):.0f} B a page "
            f"at 6 B a posting), built in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

    def search(self, q: np.ndarray, k: int, same: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = []
        for row in q:
            toks = np.flatnonzero(self.vocab @ row >= same)
            lo = np.searchsorted(self.tok, toks)
            hi = np.searchsorted(self.tok, toks, side="right")
            sel = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(toks) else np.zeros(0, int)
            if len(sel) > k:
                sel = sel[np.argpartition(-self.score[sel], k - 1)[:k]]
            sel = sel[np.lexsort((sel, -self.score[sel]))]
            out.append((self.page[sel].astype(np.int64), self.score[sel], self.cell[sel].astype(np.int64)))
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=2, help="best tokens kept a cell")
    ap.add_argument("--same", type=float, default=0.999, help="vocabulary rows this close to a query row stand for it")
    a, rest = ap.parse_known_args()
    state: dict[int, Postings] = {}
    from tokensearch.engine import Engine

    original = Engine.searcher

    def searcher(self: Engine):  # noqa: ANN202 - the engine's searcher, its store's cell search replaced
        s = original(self)
        vocab = s.opt.competitors
        store = self.store
        assert vocab is not None, "the model has no vocabulary"

        def search_cells_at(qvecs: np.ndarray, k: int, pages: np.ndarray | None = None):  # noqa: ANN202
            key = id(store)
            if key not in state:
                state[key] = Postings(store, vocab, a.top)
            return state[key].search(np.atleast_2d(qvecs), k, a.same)

        store.search_cells_at = search_cells_at
        return s

    Engine.searcher = searcher
    sys.argv = [str(ROOT / "bench" / "ts_inprocess.py")] + rest
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
