"""Keeps one process's FAISS index in step with the database: derived data, never a source of truth.

The index reflects the DB ``generation`` it was built or synced at. Before every search the keeper
compares that with the DB: pages committed since (``Page.generation`` greater) are read from the
feature store and added; if the page count still differs, pages were deleted and a full id diff drops
them. The index is loaded from its snapshot (``vectors.py``; built from the feature store if there is
none) when first needed, and saved every ``persist_interval`` seconds by a writer, and at close: a
searcher that had to add pages leaves the next one a current snapshot. Past ``flat_max_vectors`` the
writer builds token postings (:mod:`.postings`) where the model offers its vocabulary, else trains an IVF
index (again whenever it has grown 8-fold), outside the lock, and swaps it in. The vocabulary postings
are built with is recorded beside the choice, so any process can rebuild them from the feature store.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from .backends import page_count_problems
from .codec import Codec
from .features import FeatureStore
from .postings import MAX_VOCAB, PostingsIndex
from .records import PageFeatures
from .schema import Meta, Page
from .vectors import VectorIndex, choose_spec, describe_spec, index_cells, index_vectors, snapshot_bytes

Index = VectorIndex | PostingsIndex

log = logging.getLogger(__name__)

PageRef = tuple[int, int, int, int]  # page id, segment, offset, nbytes


def read_generation(s: Session) -> int:
    number = s.execute(select(Meta.number).where(Meta.key == "generation")).scalar_one()
    return int(cast(int, number))  # (the schema writes the generation row with a number)


def read_spec(s: Session) -> dict | None:
    """The recorded vector-index choice (None: flat, nothing recorded yet)."""
    row = s.get(Meta, "vector_index")
    return None if row is None else row.value


def read_postings_vocabulary(s: Session) -> np.ndarray | None:
    """The vocabulary token postings were chosen with (recorded with the choice), or None."""
    row = s.get(Meta, "vector_index")
    if row is None or row.blob is None:
        return None
    return np.load(io.BytesIO(row.blob), allow_pickle=False)


def read_page(
    session: sessionmaker, features: FeatureStore, page_id: int, seg: int, off: int, nbytes: int
) -> PageFeatures | None:
    """One page's features; if its blob moved (compaction) meanwhile, from the new place. None if the
    page is gone, or damaged (logged; ``verify`` reports it): one bad page must not stop search."""
    try:
        return features.read(seg, off, nbytes)
    except (OSError, ValueError) as first:
        with session() as s:
            row = s.execute(select(Page.segment, Page.offset, Page.nbytes).where(Page.id == page_id)).first()
        if row is None:
            return None
        try:
            if tuple(row) == (seg, off, nbytes):
                raise first
            features.forget(seg)
            return features.read(*row)
        except (OSError, ValueError) as e:
            log.error("feature store damaged: page %s unreadable (%s); run a consistency check", page_id, e)
            return None


class VectorKeeper:
    def __init__(
        self,
        session: sessionmaker,
        features: FeatureStore,
        folder: Path,
        codec: Callable[[], Codec | None],
        *,
        flat_max_vectors: int,
        sq4_min_vectors: int,
        nprobe: int | None,
        persist_interval: float,
        vocabulary: Callable[[], np.ndarray | None] = lambda: None,
        postings: bool = True,
    ):
        self._session = session
        self.features = features
        self.folder = folder
        self._codec = codec
        self.flat_max_vectors = flat_max_vectors
        self.sq4_min_vectors = sq4_min_vectors
        self.nprobe = nprobe
        self.persist_interval = persist_interval
        # the model's vocabulary in index space, where it offers one (the indexer's model); ``postings``: a
        # big index files its cells under their best tokens rather than in an IVF index
        self._vocabulary = vocabulary
        self.postings = postings
        self.lock = threading.RLock()  # the FAISS index: searches, adds, removals, swaps
        self._vi: Index | None = None
        self._switch_due: dict | None = None  # index type a writer builds after its commit
        self._last_persist = time.monotonic()
        self._persist_cost = 0.0

    # --- reading -------------------------------------------------------------------------------------
    def read_page(self, page_id: int, seg: int, off: int, nbytes: int) -> PageFeatures | None:
        return read_page(self._session, self.features, page_id, seg, off, nbytes)

    def current(self) -> Index | None:
        """The index, in step with the database (None before anything was written)."""
        with self.lock:
            self._sync_locked(may_switch=False)
            return self._vi

    def sync(self) -> None:
        """Bring the index in step with the database now (``Store.verify`` checks it right after)."""
        self.current()

    def token_lists(self) -> bool:
        # the loaded index as it stands: the search that asks syncs it right after (a type switched meanwhile
        # by another process is followed from that search on)
        return isinstance(self._vi if self._vi is not None else self.current(), PostingsIndex)

    def describe(self) -> str:
        """The index type, as ``tokensearch status`` shows it."""
        with self._session() as s:
            return describe_spec(read_spec(s) or {"type": "flat"})

    def stored_bytes(self) -> int:
        """Bytes of the current snapshot on disk."""
        return snapshot_bytes(self.folder)

    def close(self) -> None:
        """Nothing to release: the index lives in this process's memory."""

    def search(
        self, q: np.ndarray, k: int, pages: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
        """Per query row: page ids, scores and grid cells of its top-``k`` vectors (``VectorIndex.search``;
        ``pages``: among these pages' vectors only)."""
        with self.lock:
            vi = self.current()
            if vi is None:
                return None
            if q.shape[1] != vi.dim:
                raise ValueError(f"query vectors have dim {q.shape[1]}, the index {vi.dim}: project_queries() first")
            return vi.search(q, k, pages)

    # --- after a commit of this process -------------------------------------------------------------
    def committed(self, gen: int, added: list[PageRef], removed: list[int], may_switch: bool = False) -> None:
        """Bring the index up to our own commit ``gen`` (cheaply if nobody else committed in between).

        An index this process has not loaded stays unloaded if it is flat (an indexing-only process
        never needs it; a searcher loads the last snapshot and adds the pages committed since); a
        trained one is kept up to date, since retraining it is costly. ``may_switch``: a writer may
        retrain it (after the lock)."""
        with self.lock:
            vi = self._vi
            if vi is None:
                with self._session() as s:
                    spec = read_spec(s)
                if spec is None or spec["type"] == "flat":
                    self._note_switch(may_switch)
                else:
                    self._sync_locked(may_switch)
            elif vi.generation != gen - 1:
                self._sync_locked(may_switch)  # someone else committed in between: full reconcile
            else:
                if removed:
                    vi.remove_pages(removed)
                self._add_pages(vi, added)
                vi.generation = gen
                self._note_switch(may_switch)
        if self._switch_due is not None:
            self._switch()

    # --- internals -----------------------------------------------------------------------------------
    def _known_codec(self) -> Codec:
        """The codec, where pages exist to read (their first commit recorded it)."""
        return cast(Codec, self._codec())

    def _add_pages(self, vi: Index, rows: Iterable[PageRef]) -> None:
        merge_cos = self._known_codec().merge_cos
        for page_id, seg, off, nbytes in rows:
            pf = self.read_page(page_id, seg, off, nbytes)
            if pf is not None:
                kept = index_cells(pf, merge_cos)
                vi.add_page(page_id, pf.feats[kept], np.stack([pf.ys[kept], pf.xs[kept]], axis=1))

    def _sync_locked(self, may_switch: bool) -> None:
        with self._session() as s:
            gen = read_generation(s)
            spec = read_spec(s)
        if self._vi is not None and self._vi.generation == gen and (spec is None or spec == self._vi.spec):
            return
        codec = self._codec()
        if codec is None:
            return  # nothing has ever been written
        if self._vi is None or (spec is not None and spec != self._vi.spec):
            want = spec or {"type": "flat"}
            vi = self._load(want)
            if vi is not None and (vi.dim != codec.out_dim or vi.spec != want):
                vi = None
            if vi is None:  # no snapshot yet, or lost
                vi = self._build(want, codec.out_dim)
            self._vi = vi
        self._reconcile(self._vi)
        self._note_switch(may_switch)

    def _load(self, spec: dict) -> Index | None:
        """The snapshot on disk, if it is of type ``spec``."""
        if spec["type"] != "postings":
            return VectorIndex.load(self.folder, nprobe=self.nprobe)
        with self._session() as s:
            vocab = read_postings_vocabulary(s)
        return None if vocab is None else PostingsIndex.load(self.folder, vocab)

    def _reconcile(self, vi: Index) -> None:
        """Add the pages committed since ``vi.generation``; drop pages that are gone."""
        with self._session() as s:
            gen = read_generation(s)
            new = s.execute(
                select(Page.id, Page.segment, Page.offset, Page.nbytes).where(Page.generation > vi.generation)
            ).all()
            self._add_pages(vi, [r for r in new if r[0] not in vi.page_cells])
            n_db = s.execute(select(func.count()).select_from(Page)).scalar_one()
            if n_db != len(vi.page_cells):  # pages were deleted (or the snapshot is off): full diff
                rows = s.execute(select(Page.id, Page.segment, Page.offset, Page.nbytes)).all()
                db_ids = {r[0] for r in rows}
                vi.remove_pages([p for p in vi.page_cells if p not in db_ids])
                self._add_pages(vi, [r for r in rows if r[0] not in vi.page_cells])
        vi.generation = max(vi.generation, gen)

    def _build(self, spec: dict, dim: int, vocab: np.ndarray | None = None) -> Index:
        """A fresh index of type ``spec`` holding every stored page (needs no lock); postings file the
        cells under ``vocab``'s tokens, or else the recorded vocabulary's."""
        with self._session() as s:
            gen = read_generation(s)
            rows = s.execute(
                select(Page.id, Page.segment, Page.offset, Page.nbytes).order_by(Page.segment, Page.offset)
            ).all()
            if spec["type"] == "postings" and vocab is None:
                vocab = read_postings_vocabulary(s)
        vi: Index
        if spec["type"] == "postings":
            if vocab is None:
                raise RuntimeError("the index's token postings have no recorded vocabulary; rebuild the index")
            vi = PostingsIndex.empty(dim, spec, vocab)
        else:
            sample = self._training_sample(rows, spec) if spec["type"] != "flat" else None
            vi = VectorIndex.empty(dim, spec, train_sample=sample, nprobe=self.nprobe)
        self._add_pages(vi, rows)
        vi.generation = gen
        return vi

    def _training_sample(self, rows: list, spec: dict) -> np.ndarray:
        """40 vectors per IVF list (FAISS asks for 39; at least 10k, at most 1M), read from randomly chosen
        stored pages."""
        want = min(1_000_000, max(10_000, 40 * spec["nlist"]))
        merge_cos = self._known_codec().merge_cos
        rng = np.random.default_rng(0)
        parts, have = [], 0
        for i in rng.permutation(len(rows)):
            pf = self.read_page(*rows[i])
            if pf is None:
                continue
            parts.append(index_vectors(pf, merge_cos))
            have += len(parts[-1])
            if have >= 2 * want:
                break
        x = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
        if len(x) > want:
            x = x[rng.choice(len(x), want, replace=False)]
        return x

    def _offered_vocabulary(self) -> np.ndarray | None:
        """The model's vocabulary in index space, where postings are wanted and the model offers one."""
        vocab = self._vocabulary() if self.postings else None
        return vocab if vocab is not None and len(vocab) <= MAX_VOCAB else None

    def _note_switch(self, may_switch: bool) -> None:
        """Past ``flat_max_vectors`` the exact index is to be replaced by token postings or a trained
        compressed one, and a compressed one re-chosen whenever it has grown 8-fold (lists ~ 2 sqrt(n));
        postings grow as they are."""
        if not may_switch:
            return  # only a writer switches; readers follow the recorded choice
        if self._vi is not None:
            spec, n = self._vi.spec, self._vi.ntotal
        else:
            with self._session() as s:
                spec = read_spec(s) or {"type": "flat"}
                n = int(s.execute(select(func.coalesce(func.sum(Page.n_vectors), 0))).scalar_one())
        if spec["type"] == "flat":
            if n <= self.flat_max_vectors:
                return
        elif spec["type"] == "postings" or n <= 8 * spec["chosen_at"]:
            return
        # (an IVF index built before postings existed becomes postings at its next re-choice)
        postings = self._offered_vocabulary() is not None
        self._switch_due = choose_spec(n, self.flat_max_vectors, self.sq4_min_vectors, postings)

    def _switch(self) -> None:
        """Build the noted index type without holding the lock (searches go on), then swap it in."""
        spec, self._switch_due = cast(dict, self._switch_due), None  # (called once one is noted)
        vocab = self._offered_vocabulary() if spec["type"] == "postings" else None
        vi = self._build(spec, self._known_codec().out_dim, vocab)
        with self.lock:
            self._reconcile(vi)  # pages committed meanwhile
            self._vi = vi
            self._save()  # snapshot first, then record the choice (readers load it rather than retrain)
        blob = None
        if vocab is not None:
            buf = io.BytesIO()
            np.save(buf, np.asarray(vocab, np.float32), allow_pickle=False)
            blob = buf.getvalue()
        with self._session.begin() as s:
            row = s.get(Meta, "vector_index")
            if row is None:
                s.add(Meta(key="vector_index", value=spec, blob=blob))
            else:
                row.value, row.blob = spec, blob

    # --- persistence ---------------------------------------------------------------------------------
    def _save(self) -> None:
        with self.lock:
            if self._vi is not None:
                self._persist_cost = self._vi.save(self.folder)
                self._last_persist = time.monotonic()

    def persist(self) -> None:
        """Save the index now if it changed since its last snapshot (a flat index saves nothing)."""
        with self.lock:
            vi = self._vi
            if vi is not None and vi.generation != vi.saved_generation:
                self._save()
            self._last_persist = time.monotonic()

    def maybe_persist(self) -> None:
        """Every ``persist_interval`` s, and never more than ~10% of the time spent saving."""
        if time.monotonic() - self._last_persist >= max(self.persist_interval, 10 * self._persist_cost):
            self.persist()

    # --- checks --------------------------------------------------------------------------------------
    def check(self, want: dict[int, int]) -> list[str]:
        """Problems between the index and ``want`` (page id -> vector count from SQL); caller holds lock."""
        vi = self.current()
        if vi is None:
            return ["pages are stored but no feature codec is recorded"] if want else []
        problems = page_count_problems(want, vi.page_cells)
        if vi.ntotal != sum(vi.page_cells.values()):
            mapped = sum(vi.page_cells.values())
            problems.append(f"vector index holds {vi.ntotal} vectors, its page map {mapped}")
        return problems
