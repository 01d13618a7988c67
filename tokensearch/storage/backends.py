"""The vector backends a store can keep its cell vectors in, behind one interface.

``faiss`` (default): an index in each process's memory, snapshotted under ``<home>/vectors`` (:mod:`.keeper`,
:mod:`.vectors`). ``milvus``: a Milvus collection, one for every process of the index (:mod:`.milvus`),
a server's URI or a milvus-lite file. Either way the vectors are derived data: the SQL commit is the
only commit point, and both rebuild what they miss from the feature store. The store talks to them
through :class:`VectorBackend` only; the searcher and the engine never learn which one runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from sqlalchemy.orm import sessionmaker

from .codec import Codec
from .features import FeatureStore
from .records import PageFeatures

BackendName = Literal["faiss", "milvus"]
BACKENDS: tuple[str, ...] = ("faiss", "milvus")
PageRef = tuple[int, int, int, int]  # page id, segment, offset, nbytes
CellHits = list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per query row: page ids, scores, (n, 2) cells


class VectorBackend(Protocol):
    lock: threading.RLock  # held by the store around a consistency check

    def read_page(self, page_id: int, seg: int, off: int, nbytes: int) -> PageFeatures | None: ...

    def search(self, q: np.ndarray, k: int, pages: np.ndarray | None = None) -> CellHits | None:
        """Per query row: page ids, scores and grid cells (row, column) of its top-``k`` vectors, among
        ``pages`` only if given (sorted ids); None while nothing is indexed."""
        ...

    def committed(self, gen: int, added: list[PageRef], removed: list[int], may_switch: bool = False) -> None:
        """This process committed generation ``gen`` in SQL, adding and removing these pages."""
        ...

    def sync(self) -> None: ...

    def token_lists(self) -> bool:
        """Are the vectors filed under vocabulary tokens (:mod:`.postings`): top cells read from a list's start."""
        ...

    def check(self, want: dict[int, int]) -> list[str]:
        """Problems between the vectors and ``want`` (page id -> vector count from SQL)."""
        ...

    def persist(self) -> None: ...

    def maybe_persist(self) -> None: ...

    def describe(self) -> str: ...

    def stored_bytes(self) -> int: ...

    def close(self) -> None: ...


def page_count_problems(
    want: Mapping[int, int], have: Mapping[int, int], listed: Iterable[int] | None = None, backend: str | None = None
) -> list[str]:
    """What :meth:`VectorBackend.check` reports between ``want`` (page id -> vector count from SQL) and ``have``
    (page id -> vector count the backend holds): pages without vectors, pages the backend lists (``listed``,
    default ``have``'s) that have no row, pages with another count. ``backend`` names where the vectors are
    in the messages (None: the vector index)."""
    extra = (have.keys() if listed is None else set(listed)) - want.keys()
    missing = want.keys() - have.keys()
    wrong = [p for p in want.keys() & have.keys() if want[p] != have[p]]
    where = f" in {backend}" if backend else ""
    problems = []
    if missing:
        problems.append(f"{len(missing)} pages have no vectors{where} (e.g. {sorted(missing)[:5]})")
    if extra:
        problems.append(f"{len(extra)} pages in {backend or 'the vector index'} have no row (e.g. {sorted(extra)[:5]})")
    if wrong:
        problems.append(f"{len(wrong)} pages have a wrong vector count{where} (e.g. {sorted(wrong)[:5]})")
    return problems


def open_backend(
    name: str,
    session: sessionmaker,
    features: FeatureStore,
    home: Path,
    codec: Callable[[], Codec | None],
    home_id: Callable[[], str],
    *,
    flat_max_vectors: int,
    sq4_min_vectors: int,
    nprobe: int | None,
    persist_interval: float,
    postings: bool = True,
    vocabulary: Callable[[], np.ndarray | None] = lambda: None,
    milvus_uri: str | None = None,
    milvus_index: str = "auto",
    milvus_token: str | None = None,
) -> VectorBackend:
    """The backend ``name`` for the index in ``home`` (pymilvus is imported only for ``milvus``)."""
    if name == "faiss":
        from .keeper import VectorKeeper

        return VectorKeeper(
            session,
            features,
            home / "vectors",
            codec,
            flat_max_vectors=flat_max_vectors,
            sq4_min_vectors=sq4_min_vectors,
            nprobe=nprobe,
            persist_interval=persist_interval,
            vocabulary=vocabulary,
            postings=postings,
        )
    if name == "milvus":
        from .milvus import MilvusKeeper

        return MilvusKeeper(
            session,
            features,
            codec,
            home_id,
            milvus_uri or str(home / "milvus.db"),
            index=milvus_index,
            nprobe=nprobe,
            token=milvus_token,
        )
    raise ValueError(f"unknown vector backend {name!r}; choose one of {', '.join(BACKENDS)}")
