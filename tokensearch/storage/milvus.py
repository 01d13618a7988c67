"""Cell vectors in Milvus (``--vector-backend milvus``): one collection serves every indexer and searcher
of an index, while its rows stay in SQL (PostgreSQL) and its features in the feature store.

Collections, named after the index's id (several indexes may share one cluster)::

    ts_<id>_cells   id INT64 primary (page id << 20 | vector number), page INT64, row INT16, col INT16
                    (the vector's cell on its page's grid: stage 1 chains hits by it), vec FLOAT_VECTOR(d)
    ts_<id>_pages   page INT64 primary, n INT32 (its vectors), gen INT64 (its SQL generation),
                    done BOOL, and a 2-d placeholder vector (Milvus wants one in every collection)

The SQL commit stays the only commit point; Milvus is derived data, like the FAISS index. FAISS tells
what it holds by the generation of its snapshot; a collection shared by many processes has no such
single moment, so it says it per page: adding a page writes its marker (``done`` false), then its
vectors (upserts: a retry overwrites, never duplicates), then ``done`` true; removing one deletes its
vectors, then its marker. Every page with vectors therefore has a marker, and a ``done`` one has all its
vectors, whatever moment a writer dies at. The repair (:meth:`MilvusKeeper.repair`) diffs the markers
with the SQL pages: it adds the pages without a done marker (read from the feature store, as FAISS
does) and deletes the pages SQL no longer has. A process runs it at first use when the counts of
SQL pages and markers differ. After that, every minute, it adds the pages committed before its previous
check that still lack a done marker (their writer died after its SQL commit: a live one is done seconds
after it), and runs the full repair if the counts differ while nothing was committed for a minute (a
removal that died half-way). A wiped collection is rebuilt the same way. (milvus-lite flushes its
write-ahead log to the page cache at every write: a killed process loses nothing, a power cut may lose
the newest writes, which the repair then re-adds.)

The index type is chosen when the collection is created (``milvus_index``; ``auto``: FLAT, exact, on
milvus-lite; IVF_SQ8 on a server: see docs/scale.md) and read back from the collection afterwards.
pymilvus is imported only when this backend is used.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from ..errors import TokensearchError
from .backends import page_count_problems
from .codec import Codec
from .features import FeatureStore
from .keeper import read_generation, read_page
from .records import PageFeatures
from .schema import Page
from .vectors import CELL_BITS, index_cells

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from .backends import CellHits, PageRef

log = logging.getLogger(__name__)

MAX_TOPK = 16384  # Milvus's limit on a search's k (the searcher asks 4096 per token)
INSERT_ROWS = 8192  # vectors per insert request (~3 MB at d=96: well under gRPC's message limit)
EXPR_IDS = 4096  # page ids per `page in [...]` expression of a delete or a marker lookup
ADD_PAGES = 64  # pages whose markers and vectors are written together
RECHECK_S = 60.0  # a searcher checks this often for what writers that died left (see _maybe_repair)
INDEX_TYPES = ("auto", "FLAT", "IVF_SQ8", "HNSW", "DISKANN")

_lite_users: dict[str, int] = {}  # milvus-lite data folder -> stores of this process using it
_lite_lock = threading.Lock()


class VectorBackendError(TokensearchError):
    """The vector backend cannot be reached or used as configured."""

    code = "vector_backend"
    status = 503


def is_lite(uri: str) -> bool:
    """A milvus-lite data folder (pymilvus runs Milvus in this process for a URI ending in ``.db``)."""
    return uri.endswith(".db")


def _ids_expr(field: str, ids: Iterable[int]) -> str:
    return f"{field} in [{','.join(str(int(i)) for i in ids)}]"


def _chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class MilvusKeeper:
    """Keeps an index's cell vectors in a Milvus collection in step with its SQL rows (module doc)."""

    def __init__(
        self,
        session: sessionmaker,
        features: FeatureStore,
        codec: Callable[[], Codec | None],
        home_id: Callable[[], str],
        uri: str,
        *,
        index: str = "auto",
        nprobe: int | None = None,
        token: str | None = None,
    ):
        if index not in INDEX_TYPES:
            raise ValueError(f"unknown Milvus index type {index!r}; choose one of {', '.join(INDEX_TYPES)}")
        self._session = session
        self.features = features
        self._codec = codec
        self._home_id = home_id
        self.uri = str(Path(uri).resolve()) if is_lite(uri) else uri
        self.index_choice = index
        self.nprobe = nprobe
        self._token = token
        self.lock = threading.RLock()
        self._client: MilvusClient | None = None
        self._names: tuple[str, str] | None = None
        self._index_type: str | None = None  # of the existing collection (None: not created yet)
        self._checked_at: float | None = None  # last check (None: not yet in this process)
        self._seen = 0  # SQL generation at the last check
        self._verified = 0  # every page of this generation or older has its vectors (as of the last check)

    # --- connection and collections ------------------------------------------------------------------
    def _connect(self) -> MilvusClient:
        if self._client is not None:
            return self._client
        try:
            from pymilvus import MilvusClient
        except ImportError as e:
            raise VectorBackendError(
                "the milvus vector backend needs pymilvus (and milvus-lite for a local .db file): "
                "pip install 'tokensearch[milvus]'"
            ) from e
        try:
            if is_lite(self.uri):
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
                logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_lite_noise)
                client = MilvusClient(uri=self.uri)
                with _lite_lock:
                    _lite_users[self.uri] = _lite_users.get(self.uri, 0) + 1
            else:
                client = MilvusClient(uri=self.uri, token=self._token or "")
        except Exception as e:  # noqa: BLE001 - pymilvus raises its own exception types for every cause
            hint = (
                " milvus-lite serves one process at a time: another process may have this file open "
                "(use a Milvus server for several processes, see docs/scale.md)"
                if is_lite(self.uri)
                else ""
            )
            raise VectorBackendError(f"cannot open Milvus at {self.uri} ({type(e).__name__}: {e}).{hint}") from e
        self._client = client
        return client

    def _collections(self) -> tuple[str, str]:
        if self._names is None:
            prefix = f"ts_{self._home_id().replace('-', '')[:16]}"
            self._names = (f"{prefix}_cells", f"{prefix}_pages")
        return self._names

    def _ready(self, dim: int | None) -> bool:
        """Whether the collections exist (creating them if ``dim`` is given), loaded for search."""
        if self._index_type is not None:
            return True
        c = self._connect()
        cells, pages = self._collections()
        if not (c.has_collection(cells) and c.has_collection(pages)):  # (either may have been dropped)
            if dim is None:
                return False
            self._create(c, dim)
        for name in (cells, pages):
            if str(c.get_load_state(name).get("state")) not in ("Loaded", "LoadState.Loaded"):
                c.load_collection(name)
        info = c.describe_collection(cells)
        have = next(int(f["params"]["dim"]) for f in info["fields"] if f["name"] == "vec")
        if dim is not None and have != dim:
            raise VectorBackendError(
                f"Milvus collection {cells} at {self.uri} holds {have}-d vectors, this "
                f"index {dim}-d; drop the collection (it is rebuilt from the feature store)"
            )
        self._index_type = str(c.describe_index(cells, "vec")["index_type"])
        return True

    def _create(self, c: MilvusClient, dim: int) -> None:
        from pymilvus import DataType

        cells, pages = self._collections()
        kind = self.index_choice if self.index_choice != "auto" else ("FLAT" if is_lite(self.uri) else "IVF_SQ8")
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("page", DataType.INT64)
        schema.add_field("row", DataType.INT16)
        schema.add_field("col", DataType.INT16)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        params = c.prepare_index_params()
        build = {"IVF_SQ8": {"nlist": 1024}, "HNSW": {"M": 16, "efConstruction": 200}}.get(kind, {})
        params.add_index("vec", index_type=kind, metric_type="IP", params=build)
        params.add_index("page", index_type="INVERTED")  # deletes and filters select by page
        marks = c.create_schema(auto_id=False, enable_dynamic_field=False)
        marks.add_field("page", DataType.INT64, is_primary=True)
        marks.add_field("n", DataType.INT32)
        marks.add_field("gen", DataType.INT64)
        marks.add_field("done", DataType.BOOL)
        marks.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
        mark_params = c.prepare_index_params()
        mark_params.add_index("vec", index_type="FLAT", metric_type="L2")
        for name, sch, prm in ((pages, marks, mark_params), (cells, schema, params)):  # markers first
            try:
                c.create_collection(name, schema=sch, consistency_level="Strong")
            except Exception:  # noqa: BLE001 - another process created it meanwhile (else re-raised)
                if not c.has_collection(name):
                    raise
                continue
            # an empty collection's index is built at once: not waiting spares pymilvus's 0.5 s polls
            c.create_index(name, prm, sync=False)

    def close(self) -> None:
        """Close the connection (and a milvus-lite instance no other store of this process uses)."""
        with self.lock:
            client, self._client, self._index_type = self._client, None, None
        if client is None:
            return
        client.close()
        if is_lite(self.uri):
            with _lite_lock:
                left = _lite_users[self.uri] = _lite_users.get(self.uri, 1) - 1
            if left <= 0:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)

    # --- reading -------------------------------------------------------------------------------------
    def read_page(self, page_id: int, seg: int, off: int, nbytes: int) -> PageFeatures | None:
        return read_page(self._session, self.features, page_id, seg, off, nbytes)

    def search(self, q: np.ndarray, k: int, pages: np.ndarray | None = None) -> CellHits | None:
        """Per query row: page ids, scores and grid cells of its top-``k`` vectors (at most 16384, Milvus's
        limit), among ``pages`` only if given (a ``page in [...]`` filter)."""
        codec = self._codec()
        if codec is None:
            return None  # nothing has ever been written
        if q.shape[1] != codec.out_dim:
            raise ValueError(f"query vectors have dim {q.shape[1]}, the index {codec.out_dim}: project_queries() first")
        with self.lock:
            self._maybe_repair()
            if not self._ready(None):
                return None
            kind = self._index_type
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 2), np.int64))
        if len(q) == 0 or k <= 0 or (pages is not None and len(pages) == 0):
            return [empty for _ in q]
        k = min(k, MAX_TOPK)
        search: dict[str, Any] = {
            "IVF_SQ8": {"nprobe": self.nprobe or 64},
            "HNSW": {"ef": max(k, 64)},
            "DISKANN": {"search_list": max(k, 100)},
        }.get(str(kind), {})
        found = self._connect().search(
            self._collections()[0],
            data=[np.ascontiguousarray(r, dtype=np.float32) for r in q],
            limit=k,
            anns_field="vec",
            filter="" if pages is None else _ids_expr("page", pages),
            output_fields=["page", "row", "col"],
            search_params={"metric_type": "IP", "params": search},
        )
        out = []
        for hits in found:
            ents = [h["entity"] for h in hits]
            out.append(
                (
                    np.array([e["page"] for e in ents], dtype=np.int64),
                    np.array([h["distance"] for h in hits], dtype=np.float32),
                    np.array([(e["row"], e["col"]) for e in ents], dtype=np.int64).reshape(-1, 2),
                )
            )
        return out

    # --- writing -------------------------------------------------------------------------------------
    def committed(self, gen: int, added: list[PageRef], removed: list[int], may_switch: bool = False) -> None:
        """Write this process's commit ``gen`` to Milvus: remove, then add (``may_switch``: FAISS only)."""
        codec = self._codec()
        with self.lock:
            if removed and self._ready(None):
                self._remove(removed)
            if added and codec is not None:
                self._ready(codec.out_dim)
                self._add([(ref, gen) for ref in added])

    def _add(self, pages: list[tuple[PageRef, int]]) -> None:
        """Marker (pending), vectors, marker (done), for a few dozen pages at a time (module doc)."""
        c = self._connect()
        cells, marks = self._collections()
        merge_cos = self._codec().merge_cos  # type: ignore[union-attr]  # pages exist: so does the codec
        for chunk in _chunks(pages, ADD_PAGES):
            c.upsert(marks, [_marker(ref[0], 0, gen, False) for ref, gen in chunk])
            rows: list[dict] = []
            done = []
            for (page_id, seg, off, nbytes), gen in chunk:
                pf = self.read_page(page_id, seg, off, nbytes)
                if pf is None:  # deleted meanwhile (the repair drops its marker) or damaged (verify says)
                    continue
                kept = index_cells(pf, merge_cos)
                rows.extend(_cell_rows(page_id, pf, kept))
                done.append(_marker(page_id, len(kept), gen, True))
            for part in _chunks(rows, INSERT_ROWS):
                c.upsert(cells, list(part))
            if done:
                c.upsert(marks, done)

    def _remove(self, page_ids: Iterable[int]) -> None:
        """Vectors first, then markers: a page with vectors never lacks its marker."""
        c = self._connect()
        cells, marks = self._collections()
        for part in _chunks(sorted({int(p) for p in page_ids}), EXPR_IDS):
            c.delete(cells, filter=_ids_expr("page", part))
            c.delete(marks, filter=_ids_expr("page", part))

    def persist(self) -> None:
        """Nothing to save: every write is in Milvus (its log) once acknowledged."""

    def maybe_persist(self) -> None:
        """Nothing to save (see :meth:`persist`)."""

    # --- consistency ---------------------------------------------------------------------------------
    def _counts(self) -> tuple[int, int, int, int]:
        """SQL generation, SQL pages, markers, done markers."""
        with self._session() as s:
            gen = read_generation(s)
            n_sql = int(s.execute(select(func.count()).select_from(Page)).scalar_one())
        if not self._ready(None):
            return gen, n_sql, 0, 0
        c = self._connect()
        marks = self._collections()[1]
        n_all, n_done = (
            int(c.query(marks, filter=f, output_fields=["count(*)"])[0]["count(*)"]) for f in ("", "done == true")
        )
        return gen, n_sql, n_all, n_done

    def _maybe_repair(self) -> None:
        """At first use, a full repair if the counts of SQL pages and markers differ. Then every minute,
        the pages committed before the previous check (a minute ago or more: no live writer is still on
        them) that lack their vectors are added; and if nothing was committed for a minute but the counts
        still differ (a removal that died half-way), a full repair."""
        now = time.monotonic()
        if self._checked_at is not None and now - self._checked_at < RECHECK_S:
            return
        first = self._checked_at is None
        self._checked_at = now
        if self._codec() is None:
            return
        with self._session() as s:
            gen = read_generation(s)
        if first:
            if len(set(self._counts()[1:])) > 1:
                self.repair()
            self._verified = self._seen = gen
            return
        if self._seen > self._verified:
            self._add_lacking(self._verified, self._seen)
            self._verified = self._seen
        if gen == self._seen and len(set(self._counts()[1:])) > 1:
            self.repair()
        self._seen = gen

    def _add_lacking(self, after: int, upto: int) -> None:
        """Add the pages of SQL generations ``after`` < g <= ``upto`` that have no done marker."""
        with self._session() as s:
            rows = s.execute(
                select(Page.id, Page.segment, Page.offset, Page.nbytes, Page.generation, Page.n_vectors).where(
                    Page.generation > after, Page.generation <= upto
                )
            ).all()
        if not rows or not self._ready(None):
            return
        c, marks = self._connect(), self._collections()[1]
        have: dict[int, tuple[int, bool]] = {}
        for part in _chunks([int(r[0]) for r in rows], EXPR_IDS):
            found = c.query(marks, filter=_ids_expr("page", part), output_fields=["page", "n", "done"])
            have.update((int(m["page"]), (int(m["n"]), bool(m["done"]))) for m in found)
        lacking = [
            ((int(r[0]), int(r[1]), int(r[2]), int(r[3])), int(r[4]))
            for r in rows
            if have.get(int(r[0])) != (int(r[5]), True)
        ]
        if lacking:
            self._add(lacking)
            log.warning("Milvus at %s: %d pages committed without their vectors added", self.uri, len(lacking))

    def sync(self) -> None:
        """Repair now if the counts of SQL pages and markers differ (``Store.verify`` then checks)."""
        with self.lock:
            self._checked_at = None
            self._maybe_repair()

    def _markers(self) -> dict[int, tuple[int, int, bool]]:
        """Every marker: page id -> (vectors, generation, done)."""
        c = self._connect()
        it = c.query_iterator(
            self._collections()[1], batch_size=10000, filter="page >= 0", output_fields=["page", "n", "gen", "done"]
        )
        out: dict[int, tuple[int, int, bool]] = {}
        try:
            while batch := it.next():
                out.update((int(r["page"]), (int(r["n"]), int(r["gen"]), bool(r["done"]))) for r in batch)
        finally:
            it.close()
        return out

    def repair(self) -> tuple[int, int]:
        """Add the pages SQL has and Milvus lacks (no done marker, or another count), delete the pages
        Milvus has and SQL no longer does; returns (added, removed)."""
        codec = self._codec()
        if codec is None:
            return 0, 0
        with self.lock:
            with self._session() as s:
                gen = read_generation(s)  # before the rows: a page committed later has a newer generation
                rows = s.execute(
                    select(Page.id, Page.segment, Page.offset, Page.nbytes, Page.generation, Page.n_vectors)
                ).all()
            self._ready(codec.out_dim)
            markers = self._markers()
            in_sql = {int(r[0]) for r in rows}
            gone = [p for p, (_, g, _) in markers.items() if p not in in_sql and g <= gen]
            lacking = [
                ((int(r[0]), int(r[1]), int(r[2]), int(r[3])), int(r[4]))
                for r in rows
                if markers.get(int(r[0]), (-1, 0, False))[0::2] != (int(r[5]), True)
            ]
            if gone:
                self._remove(gone)
            if lacking:
                self._add(lacking)
            if gone or lacking:
                log.warning("Milvus at %s repaired: %d pages added, %d removed", self.uri, len(lacking), len(gone))
            return len(lacking), len(gone)

    def check(self, want: dict[int, int]) -> list[str]:
        """Problems between the collection and ``want`` (page id -> vector count from SQL)."""
        if not self._ready(None):
            return ["pages are stored but Milvus has no collection for them"] if want else []
        markers = self._markers()
        done = {p: n for p, (n, _, ok) in markers.items() if ok}
        problems = page_count_problems(want, done, listed=markers.keys(), backend="Milvus")
        c = self._connect()
        # (no filter: Milvus counts from its segments' statistics; `page >= 0` made milvus-lite test every
        # row, 95 s for the 772k vectors of the dev benchmark)
        n = int(c.query(self._collections()[0], filter="", output_fields=["count(*)"])[0]["count(*)"])
        if n != sum(done.values()):
            problems.append(f"Milvus holds {n} vectors, its page markers {sum(done.values())}")
        return problems

    def token_lists(self) -> bool:
        return False

    def describe(self) -> str:
        with self.lock:
            kind = self._index_type if self._ready(None) else None
        return f"milvus:{(kind or 'none').lower()}"

    def stored_bytes(self) -> int:
        """Bytes of a milvus-lite folder (a server's are not known here: 0)."""
        if not is_lite(self.uri):
            return 0
        return sum(p.stat().st_size for p in Path(self.uri).rglob("*") if p.is_file())


def _lite_noise(record: logging.LogRecord) -> bool:
    """milvus-lite has no server timestamps for query iterators: pymilvus's warning about it says nothing."""
    return "mvccTs" not in record.getMessage()


def _marker(page_id: int, n: int, gen: int, done: bool) -> dict:
    return {"page": int(page_id), "n": int(n), "gen": int(gen), "done": done, "vec": [0.0, 0.0]}


def _cell_rows(page_id: int, pf: PageFeatures, kept: np.ndarray) -> list[dict]:
    ids = (np.int64(page_id) << CELL_BITS) + np.arange(len(kept), dtype=np.int64)
    feats = pf.feats[kept]
    ys, xs = pf.ys[kept].tolist(), pf.xs[kept].tolist()
    return [
        {"id": int(i), "page": int(page_id), "row": y, "col": x, "vec": v}
        for i, y, x, v in zip(ids.tolist(), ys, xs, feats)
    ]
