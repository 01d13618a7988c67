"""The index of one home folder: SQL rows + feature store + vector index, kept consistent.

Write path of a document (``write_document``)::

    pages ──encode (codec, int8)──▶ append blobs to the active feature segment ──fsync──▶
    ONE SQL transaction: document, path, page rows (pointing at the blobs), generation += 1 ──commit──▶
    add the new pages' vectors to the vector backend: this process's FAISS index, if it holds one, or
    the Milvus collection every process shares (read back from the feature store, so every process
    derives exactly the same vectors; :mod:`.backends`)

The SQL commit is the only commit point. Before it, an error (or a kill) leaves only unreferenced bytes
at the end of a segment (trimmed by the next writer that owns it). After it, the FAISS index is derived
data: a flat index is rebuilt from the feature store when first needed; a trained (IVF) index has a
snapshot on disk recording the generation it reflects, and whoever opens the index re-adds the pages
newer than that generation (and drops pages that are gone) from the feature store. So a crash at any
moment never shows rows without vectors or vectors without rows, and never a half-written index file.
(Milvus records what it holds per page instead of per snapshot, and repairs the same way: :mod:`.milvus`.)

Concurrency: any number of processes may read and write one home (the CLI indexing while the API
serves). Each writer appends to a feature segment it owns (flock), SQL serialises the commits (the
generation row is updated in every commit), and every process's FAISS copy catches up with commits of
the others before it searches (it compares the DB generation with the one it reflects; see
:mod:`.keeper`). Within a process, FAISS is guarded by a lock and documents are written one at a time;
deletes, links and failures are plain SQL transactions that never wait for a document being written
(its pages may take minutes to encode).

Index runs: a run is ``running`` while the process that began it holds an exclusive flock on
``<home>/runs/<token>.lock`` (taken before the run's row exists, released after its final status is
committed). Whoever opens the index marks the ``running`` runs whose lock is free (or gone) ``interrupted``:
their process was killed.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
from sqlalchemy import Engine, create_engine, delete, event, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..filters import SearchFilter
from ..tokenocr_model.interface import ModelInfo
from . import catalog
from .backends import VectorBackend, open_backend
from .codec import CellCode, Codec, fit_pca, identity_codec, vocabulary_subspace
from .features import FeatureStore, RowIds, encode_page
from .records import (
    DocumentDetail,
    DocumentInfo,
    DocumentNotes,
    FileRecord,
    IndexLayoutError,
    IndexStats,
    ModelMismatchError,
    PageFeatures,
    PageInfo,
    PageRecord,
)
from .schema import (
    READABLE_SCHEMAS,
    SCHEMA_VERSION,
    DocPath,
    Document,
    Failure,
    IndexRun,
    IndexWarning,
    Meta,
    Page,
    create_tables,
)
from .textrows import TextRows
from .vectors import index_vectors


def sqlite_url(home: Path) -> str:
    """The default database of ``home`` (no --database-url / TOKENSEARCH_DATABASE_URL): its SQLite file."""
    return f"sqlite:///{(Path(home) / 'index.sqlite3').resolve()}"


def _home_record(s: Session) -> dict:
    """The index's "home" record ({"id", "home"}), once the first open has written it."""
    return cast(dict, cast(Meta, s.get(Meta, "home")).value)


def _folder_bytes(folder: Path, skip: tuple[str, ...] = ()) -> int:
    """Bytes of the files under ``folder`` (top-level entries named in ``skip`` left out)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        if Path(root) == folder:
            dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # e.g. a snapshot replaced meanwhile
                pass
    return total


def _use_wal(cur: sqlite3.Cursor, wait_s: float = 60.0) -> None:
    """Switch the database to WAL (kept in the file: later connections find it set). Switching a fresh
    file takes a lock SQLite does not wait for (its busy timeout does not apply), so processes opening
    one new home at once retry briefly instead of failing with "database is locked"."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            _use_wal(cur)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: consistent after a crash
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _index_space(codec: Codec, rec: PageRecord) -> np.ndarray:
    """A page's features as stored: projected, and on pages the model read, column runs merged (a page
    built from its text layer carries exact token vectors, which a merge would blend)."""
    if rec.source == "text":
        return codec.apply(rec.feats)
    return codec.apply_cells(rec.ys, rec.xs, rec.feats)


def _pack(codec: Codec, rec: PageRecord, text_row_ids: RowIds | None) -> bytes:
    """A page's blob: model-read cells in the codec's cell code if it has one; a text layer's exact token
    vectors stay int8 (a few hundred distinct rows: a palette, named by ``text_row_ids`` where the home keeps
    them in SQL, else stored in the blob)."""
    if rec.source == "text":
        return encode_page(rec.grid_h, rec.grid_w, rec.ys, rec.xs, _index_space(codec, rec), None, text_row_ids)
    return encode_page(rec.grid_h, rec.grid_w, rec.ys, rec.xs, _index_space(codec, rec), codec.cells)


class Store:
    """One index: open with :meth:`open`, close with :meth:`close` (or use as a context manager).

    Options (keyword arguments of :meth:`open`):
      flat_max_vectors   exact FAISS search up to this many vectors; beyond, token postings (where the
                         indexing model offers its vocabulary, see ``postings``) or IVF (default 2M)
      postings           past flat_max_vectors, file each cell under its best vocabulary tokens
                         (:mod:`.postings`) rather than in an IVF index (True)
      sq4_min_vectors    past this many, IVF+SQ4 (d/2 bytes a vector) instead of SQ8 (default 0: always SQ4)
      max_identity_dim   model dims up to this are stored as they come (or in their vocabulary's subspace);
                         larger are PCA-projected (256)
      subspace_energy    a new index of such a model stores cells in the subspace its vocabulary spans where
                         that leaves at most this share of the vocabulary's energy out (codec.vocabulary_subspace;
                         1e-3; None: as they come). Not with the model's cell code (PQ), fitted in model space
      pca_dim            d of the PCA projection (128)
      pca_fit_cells      cells the PCA is fitted on (buffered from the first pages written; 4096)
      merge_cos          index only the first cell of a row run of cells within this cosine of it
                         (e.g. 0.95; None = every distinct cell). Recorded with the codec on the first
                         write; the recorded value wins afterwards.
      column_cos         store a run of up to 3 vertically adjacent cells within this cosine of its top
                         cell as one vector (codec.merge_columns; None = every cell its own). Recorded
                         with the codec like merge_cos.
      nprobe             IVF lists probed per query (default max(16, nlist/32))
      persist_interval   seconds between snapshots of a trained FAISS index while writing (30; also at close)
      segment_bytes      feature segment size before rolling to a new file (1 GiB)
      vector_backend     "faiss" (default: in each process, snapshots under <home>/vectors) or "milvus"
                         (one collection for every process of the index; :mod:`.milvus`)
      milvus_uri         a Milvus server's URI, or a milvus-lite file (default <home>/milvus.db)
      milvus_index       index type of a new collection: auto (FLAT on milvus-lite, IVF_SQ8 on a
                         server), FLAT, IVF_SQ8, HNSW, DISKANN
      milvus_token       "user:password" or an API key, for a server with authentication
    """

    def __init__(
        self,
        home: Path,
        engine: Engine,
        *,
        flat_max_vectors: int = 2_000_000,
        sq4_min_vectors: int = 0,
        postings: bool = True,
        max_identity_dim: int = 256,
        subspace_energy: float | None = 1e-3,
        pca_dim: int = 128,
        pca_fit_cells: int = 4096,
        merge_cos: float | None = None,
        column_cos: float | None = None,
        nprobe: int | None = None,
        persist_interval: float = 30.0,
        segment_bytes: int = 1 << 30,
        vector_backend: str = "faiss",
        milvus_uri: str | None = None,
        milvus_index: str = "auto",
        milvus_token: str | None = None,
    ):
        self.home = Path(home)
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        self.max_identity_dim = max_identity_dim
        self.subspace_energy = subspace_energy
        self.pca_dim = pca_dim
        self.pca_fit_cells = pca_fit_cells
        self.merge_cos = merge_cos
        self.column_cos = column_cos
        self._text_rows = TextRows(self._session)
        self._schema = SCHEMA_VERSION  # the home's, once opened (_init_meta)
        self.features = FeatureStore(
            self.home / "features", segment_bytes=segment_bytes, cells=self._cell_code, rows_of=self._text_rows.rows
        )
        self._offered_cells: CellCode | None = None  # the model's codebook, for a codec not written yet
        # the model's vocabulary (model space), for postings: read only when a big index chooses them (an LLM's
        # vocabulary as float32 is most of a GB)
        self._offered_vocab: Callable[[], np.ndarray] | None = None
        self.vector_dir = self.home / "vectors"
        self._write_mutex = threading.RLock()  # one writing call at a time
        self._codec_lock = threading.RLock()
        self._codec: Codec | None = None
        self.vectors: VectorBackend = open_backend(
            vector_backend,
            self._session,
            self.features,
            self.home,
            self._load_codec,
            self._home_id,
            flat_max_vectors=flat_max_vectors,
            sq4_min_vectors=sq4_min_vectors,
            postings=postings,
            vocabulary=self._vocabulary,
            nprobe=nprobe,
            persist_interval=persist_interval,
            milvus_uri=milvus_uri,
            milvus_index=milvus_index,
            milvus_token=milvus_token,
        )
        self._run_locks: dict[int, tuple[BinaryIO, Path]] = {}  # run id -> (open lock file, its path)
        self._closed = False

    # ------------------------------------------------------------------------------------------------
    # lifecycle
    @classmethod
    def open(cls, home: Path, database_url: str | None = None, **options) -> Store:
        """Open (creating if needed) the index in ``home``; SQLite at ``<home>/index.sqlite3`` by default."""
        home = Path(home)
        home.mkdir(parents=True, exist_ok=True)
        engine = make_engine(database_url or sqlite_url(home))
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # IF NOT EXISTS alone still races in PostgreSQL's catalogue
                conn.execute(text("SELECT pg_advisory_xact_lock(7274001)"))
            create_tables(conn)
        store = cls(home, engine, **options)
        store._init_meta()
        store._mark_interrupted_runs()
        return store

    def _init_meta(self) -> None:
        try:
            with self._session.begin() as s:
                if s.get(Meta, "generation") is None:
                    s.add(Meta(key="generation", number=0))
                    s.add(Meta(key="schema", number=SCHEMA_VERSION))
        except IntegrityError:  # a concurrent opener created it first
            pass
        with self._session() as s:
            version = s.execute(select(Meta.number).where(Meta.key == "schema")).scalar()
        if version not in READABLE_SCHEMAS:
            self.engine.dispose()
            raise IndexLayoutError(
                f"the index in {self.home} has storage schema {version}, this tokensearch reads schemas "
                f"{', '.join(map(str, READABLE_SCHEMAS))}; index into a new --home (or delete this one) to rebuild it"
            )
        self._schema = int(version)
        try:
            self._check_home_identity()
        except Exception:
            self.engine.dispose()
            raise

    def _check_home_identity(self) -> None:
        """The database and the home folder (feature files) must belong to each other: both carry the
        same random id, set on the first open. Two homes on one database URL would corrupt both."""
        id_file = self.home / "index-id"
        here = str(self.home.resolve())
        on_disk = id_file.read_text().strip() if id_file.exists() else None
        with self._session() as s:
            row = s.get(Meta, "home")
            in_db: dict | None = None if row is None else row.value
        if in_db is None:
            if on_disk is not None and self.features.segments():
                raise IndexLayoutError(
                    f"{self.home} holds an index whose database is not {self._url_text()} (that one is "
                    f"empty); open it with its own database URL, or use a new --home"
                )
            try:
                with self._session.begin() as s:
                    s.add(Meta(key="home", value={"id": on_disk or uuid.uuid4().hex, "home": here}))
            except IntegrityError:  # a concurrent first open: take its record
                pass
            with self._session() as s:
                in_db = _home_record(s)
        if on_disk is None and in_db["home"] == here:
            on_disk = in_db["id"]  # first open (or the id file was lost): the home is the recorded one
            tmp = id_file.with_name(f"index-id.{os.getpid()}.tmp")
            tmp.write_text(on_disk + "\n")
            os.replace(tmp, id_file)
        if on_disk != in_db["id"]:
            raise IndexLayoutError(
                f"the database {self._url_text()} belongs to the index in {in_db['home']}, not to "
                f"{self.home}; use --home {in_db['home']}, or another database (or schema) for a new index"
            )
        if in_db["home"] != here:  # the home folder was moved: remember where it is now
            with self._session.begin() as s:
                cast(Meta, s.get(Meta, "home")).value = {"id": in_db["id"], "home": here}  # (recorded above)

    def _home_id(self) -> str:
        """The index's random id (names its Milvus collections)."""
        with self._session() as s:
            return str(_home_record(s)["id"])

    def _url_text(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        if self._closed:
            return
        try:
            with self._write_mutex:
                self.vectors.persist()
        finally:
            self._closed = True
            self.vectors.close()
            for run_id in list(self._run_locks):  # never finished: the next opener marks it interrupted
                self._release_run(run_id)
            self.features.close()
            self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------
    # meta: model, codec, generation
    def stored_model(self) -> ModelInfo | None:
        with self._session() as s:
            row = s.get(Meta, "model")
            if row is None or row.value is None:
                return None
            v = row.value
            return ModelInfo(v["name"], v["family"], v["fingerprint"], int(v["dim"]), v.get("extra") or {})

    def ensure_model(
        self,
        info: ModelInfo,
        cell_codebook: Mapping[str, np.ndarray] | None = None,
        vocabulary: Callable[[], np.ndarray] | None = None,
    ) -> None:
        """Record the model on first use; refuse another one later. ``cell_codebook``: the model's
        product quantiser for its cells (:class:`CellCode`'s arrays), used if this index has no codec
        yet and stores the model's features as they come. ``vocabulary``: what gives its tokens' vectors (model
        space), which a big index files cells under (``postings``)."""
        self._offered_cells = None if cell_codebook is None else CellCode(**cell_codebook)
        self._offered_vocab = vocabulary
        stored = self.stored_model()
        if stored is None:
            value = {
                "name": info.name,
                "family": info.family,
                "fingerprint": info.fingerprint,
                "dim": int(info.dim),
                "extra": json.loads(json.dumps(dict(info.extra), default=str)),
            }
            try:
                with self._session.begin() as s:
                    s.add(Meta(key="model", value=value))
                return
            except IntegrityError:
                stored = cast(ModelInfo, self.stored_model())  # a concurrent first use recorded it
        if (stored.name, stored.fingerprint, stored.dim) != (info.name, info.fingerprint, int(info.dim)):
            raise ModelMismatchError(
                f"the index in {self.home} was built with model {stored.name!r} "
                f"(weights {stored.fingerprint[:12]}, dim {stored.dim}), but model {info.name!r} "
                f"(weights {info.fingerprint[:12]}, dim {info.dim}) was requested; use the same --model "
                f"({stored.name}) or a new --home for the other model"
            )

    def _bump_generation(self, s: Session) -> int:
        """+1 in the current transaction (row-locked on PostgreSQL, so generations commit in order)."""
        stmt = update(Meta).where(Meta.key == "generation").values(number=Meta.number + 1).returning(Meta.number)
        number = s.execute(stmt, execution_options={"synchronize_session": False}).scalar_one()
        return int(cast(int, number))  # (the schema writes the generation row with a number)

    def _vocabulary(self) -> np.ndarray | None:
        """The offered vocabulary in index space (None: none offered, or index space not fixed yet)."""
        codec = self._load_codec()
        if self._offered_vocab is None or codec is None:
            return None
        return self.project_queries(self._offered_vocab())

    def _cell_code(self) -> CellCode | None:
        codec = self._load_codec()
        return None if codec is None else codec.cells

    def _load_codec(self) -> Codec | None:
        with self._codec_lock:
            if self._codec is None:
                with self._session() as s:
                    row = s.get(Meta, "codec")
                    if row is not None:
                        self._codec = Codec.from_meta(cast(dict, row.value), row.blob)  # (written with a value)
            return self._codec

    # ------------------------------------------------------------------------------------------------
    # files and documents (indexer side)
    def known_files(self) -> dict[str, FileRecord]:
        """Every recorded path (indexed and failed), for the indexer's change detection."""
        with self._session() as s:
            return catalog.known_files(s)

    def doc_for_content(self, sha256: str) -> int | None:
        with self._session() as s:
            return s.execute(select(Document.id).where(Document.sha256 == sha256)).scalar()

    def link_path(self, doc_id: int, path: str, size: int, mtime_ns: int, warnings: Sequence[str] = ()) -> None:
        """Record that ``path`` holds the (already indexed) content of ``doc_id``; ``warnings`` about this
        path (e.g. its extension disagrees with the content) replace those it had."""
        with self._session.begin() as s:
            if s.get(Document, doc_id) is None:
                raise KeyError(f"no document {doc_id}")
            removed = self._detach_path(s, path, keep_doc=doc_id)
            s.execute(delete(Failure).where(Failure.path == path))
            self._set_path_warnings(s, path, warnings)
            row = s.execute(select(DocPath).where(DocPath.path == path)).scalar()
            if row is None:
                s.add(DocPath(path=path, doc_id=doc_id, size=size, mtime_ns=mtime_ns))
            else:
                row.size, row.mtime_ns, row.indexed_at = size, mtime_ns, datetime.now(timezone.utc)
            gen = self._bump_generation(s) if removed else None
        if removed:
            self.vectors.committed(cast(int, gen), [], removed)

    def unlink_path(self, path: str) -> None:
        """``path`` is gone or changed: forget it; a document left without any path is deleted."""
        with self._session.begin() as s:
            s.execute(delete(Failure).where(Failure.path == path))
            self._set_path_warnings(s, path, ())
            removed = self._detach_path(s, path)
            gen = self._bump_generation(s) if removed else None
        if removed:
            self.vectors.committed(cast(int, gen), [], removed)

    def _detach_path(self, s: Session, path: str, keep_doc: int | None = None) -> list[int]:
        """Delete the path row (unless it already points at ``keep_doc``) and an orphaned document.
        Returns the ids of the pages deleted with it."""
        row = s.execute(select(DocPath).where(DocPath.path == path)).scalar()
        if row is None or row.doc_id == keep_doc:
            return []
        doc_id = row.doc_id
        s.delete(row)
        s.flush()
        others = s.execute(select(func.count()).select_from(DocPath).where(DocPath.doc_id == doc_id)).scalar_one()
        if others:
            return []
        return self._delete_doc_rows(s, doc_id)

    @staticmethod
    def _set_path_warnings(s: Session, path: str, warnings: Sequence[str]) -> None:
        s.execute(delete(IndexWarning).where(IndexWarning.path == path))
        s.add_all(IndexWarning(path=path, message=str(w)) for w in warnings)

    def _delete_doc_rows(self, s: Session, doc_id: int) -> list[int]:
        page_ids = list(s.scalars(select(Page.id).where(Page.doc_id == doc_id)))
        s.execute(
            delete(IndexWarning).where(
                (IndexWarning.doc_id == doc_id)
                | IndexWarning.path.in_(select(DocPath.path).where(DocPath.doc_id == doc_id))
            )
        )
        s.execute(delete(Page).where(Page.doc_id == doc_id))
        s.execute(delete(DocPath).where(DocPath.doc_id == doc_id))
        s.execute(delete(Document).where(Document.id == doc_id))
        return page_ids

    def delete_document(self, doc_id: int) -> bool:
        """Remove a document, all its paths, pages and vectors. False if there was none."""
        with self._session.begin() as s:
            if s.get(Document, doc_id) is None:
                return False
            removed = self._delete_doc_rows(s, doc_id)
            gen = self._bump_generation(s)
        self.vectors.committed(gen, [], removed)
        return True

    def record_failure(
        self, path: str, size: int, mtime_ns: int, reason: str, sha256: str | None = None, run_id: int | None = None
    ) -> None:
        """``path`` could not be indexed (it replaces what the path held before)."""
        with self._session.begin() as s:
            removed = self._detach_path(s, path)
            self._set_path_warnings(s, path, ())  # the reason says what there is to know
            row = s.execute(select(Failure).where(Failure.path == path)).scalar()
            if row is None:
                row = Failure(path=path)
                s.add(row)
            row.size, row.mtime_ns, row.reason, row.sha256, row.run_id = size, mtime_ns, reason, sha256, run_id
            row.failed_at = datetime.now(timezone.utc)
            gen = self._bump_generation(s) if removed else None
        if removed:
            self.vectors.committed(cast(int, gen), [], removed)

    def write_document(
        self,
        sha256: str,
        path: str,
        size: int,
        mtime_ns: int,
        kind: str,
        pages: Iterable[PageRecord],
        run_id: int | None = None,
        notes: DocumentNotes | None = None,
    ) -> int:
        """Index one document, all-or-nothing; returns its id.

        ``pages`` is consumed lazily, one page at a time. If it raises (or the process dies), nothing of
        the document is visible afterwards and the exception propagates. If content ``sha256`` is
        already indexed, ``path`` is linked to it and ``pages`` is not consumed. ``notes`` are read once
        ``pages`` is exhausted (the reader fills in ``partial`` as it meets damaged pages): a partial
        document gets status "partial" and its reason as a warning, committed with the pages.
        """
        notes = notes if notes is not None else DocumentNotes()
        with self._write_mutex:
            existing = self.doc_for_content(sha256)
            if existing is not None:
                self.link_path(existing, path, size, mtime_ns, notes.warnings)
                return existing
            codec_before = self._load_codec()
            rows: list[dict] = []
            self.features.begin(self._referenced_end)
            try:
                for rec, blob in self._encode(pages):
                    seg, off, nbytes = self.features.append(blob)
                    # what FAISS will hold (_encode has fitted or loaded the codec by now)
                    codec = cast(Codec, self._codec)
                    n_vectors = len(index_vectors(self.features.decode(blob), codec.merge_cos))
                    rows.append(
                        dict(
                            page_no=int(rec.page_no),
                            width=int(rec.width),
                            height=int(rec.height),
                            source=str(rec.source),
                            grid_h=int(rec.grid_h),
                            grid_w=int(rec.grid_w),
                            n_cells=int(len(rec.ys)),
                            n_vectors=n_vectors,
                            segment=seg,
                            offset=off,
                            nbytes=nbytes,
                            text=rec.text,
                        )
                    )
                self.features.sync()
                with self._session.begin() as s:
                    removed = self._detach_path(s, path)
                    s.execute(delete(Failure).where(Failure.path == path))
                    gen = self._bump_generation(s)
                    if codec_before is None and self._codec is not None:
                        self._record_codec(s, self._codec)
                    doc = Document(
                        sha256=sha256,
                        kind=kind,
                        status="partial" if notes.partial else "ok",
                        n_pages=len(rows),
                        size=size,
                        run_id=run_id,
                    )
                    s.add(doc)
                    s.flush()
                    s.add(DocPath(path=path, doc_id=doc.id, size=size, mtime_ns=mtime_ns))
                    self._set_path_warnings(s, path, notes.warnings)
                    if notes.partial:
                        s.add(IndexWarning(doc_id=doc.id, message=notes.partial))
                    page_objs = [Page(doc_id=doc.id, generation=gen, **r) for r in rows]
                    s.add_all(page_objs)
                    s.flush()
                    added = [(p.id, p.segment, p.offset, p.nbytes) for p in page_objs]
                    doc_id = doc.id
            except BaseException as e:
                self.features.abort()
                if codec_before is None:
                    with self._codec_lock:
                        self._codec = None
                if isinstance(e, IntegrityError):  # another process indexed the same content meanwhile
                    existing = self.doc_for_content(sha256)
                    if existing is not None:
                        self.link_path(existing, path, size, mtime_ns, notes.warnings)
                        return existing
                raise
            self.features.commit()
            self.vectors.committed(gen, added, removed, may_switch=True)
            self.vectors.maybe_persist()
            return doc_id

    def _record_codec(self, s: Session, codec: Codec) -> None:
        value, blob = codec.to_meta()
        row = s.get(Meta, "codec")
        if row is None:
            s.add(Meta(key="codec", value=value, blob=blob))
        elif (row.value, row.blob) != (value, blob):
            raise RuntimeError(
                "another process fitted the index's feature projection at the same time; index this "
                "document again (it will use the recorded projection)"
            )

    def _referenced_end(self, segment: int) -> int:
        with self._session() as s:
            end = s.execute(select(func.max(Page.offset + Page.nbytes)).where(Page.segment == segment)).scalar()
        return int(end or 0)

    def _encode(self, pages: Iterable[PageRecord]) -> Iterator[tuple[PageRecord, bytes]]:
        """Validate, project (fitting the codec on the first cells if there is none yet), pack."""
        codec = self._load_codec()
        model = self.stored_model()
        row_ids = self._text_rows.ids if self._schema >= 2 else None
        buffered: list[PageRecord] = []
        n_buffered = 0
        for rec in pages:
            feats = np.asarray(rec.feats, dtype=np.float32)
            if feats.ndim != 2 or (len(feats) and not np.isfinite(feats).all()):
                raise ValueError(f"page {rec.page_no}: features must be a finite (n, D) array, got {feats.shape}")
            dim = feats.shape[1]
            if model is not None and dim != model.dim:
                raise ValueError(f"page {rec.page_no}: features have dim {dim}, the index's model has {model.dim}")
            if codec is not None and dim != codec.in_dim:
                raise ValueError(f"page {rec.page_no}: features have dim {dim}, the index stores dim {codec.in_dim}")
            rec.feats = feats
            if codec is None and dim <= self.max_identity_dim:
                codec = self._model_codec(dim)
            if codec is None:  # large D: buffer until there are enough cells to fit the projection
                buffered.append(rec)
                n_buffered += len(feats)
                if n_buffered < self.pca_fit_cells:
                    continue
                codec = self._fit_codec(buffered, dim)
            for r in buffered or [rec]:
                yield r, _pack(codec, r, row_ids)
            buffered = []
        if buffered:
            codec = self._fit_codec(buffered, buffered[0].feats.shape[1])
            for r in buffered:
                yield r, _pack(codec, r, row_ids)

    def _model_codec(self, dim: int) -> Codec:
        """A new index's codec for a model stored without a fitted projection: with the model's cell code, as the
        features come; else in its vocabulary's subspace where that is smaller; else as they come."""
        if self._offered_cells is not None and self._offered_cells.dim == dim:
            codec = identity_codec(dim)
            codec.cells = self._offered_cells
        else:
            vocab = self._offered_vocab() if self._offered_vocab is not None else None
            sub = None
            if self.subspace_energy is not None and vocab is not None and vocab.ndim == 2 and vocab.shape[1] == dim:
                sub = vocabulary_subspace(vocab, self.subspace_energy)
            codec = sub if sub is not None else identity_codec(dim)
        return self._set_codec(codec)

    def _fit_codec(self, recs: list[PageRecord], dim: int) -> Codec:
        sample = np.concatenate([r.feats for r in recs]) if recs else np.zeros((0, dim), np.float32)
        if len(sample) > 4 * self.pca_fit_cells:
            pick = np.random.default_rng(0).choice(len(sample), 4 * self.pca_fit_cells, replace=False)
            sample = sample[pick]
        return self._set_codec(fit_pca(sample, min(self.pca_dim, dim)))

    def _set_codec(self, codec: Codec) -> Codec:
        codec.merge_cos = self.merge_cos
        codec.column_cos = self.column_cos
        with self._codec_lock:
            self._codec = codec
        return codec

    # ------------------------------------------------------------------------------------------------
    # runs
    def _run_lock_path(self, token: str) -> Path:
        return self.home / "runs" / f"{token}.lock"

    def begin_run(self, root: str) -> int:
        """Record a ``running`` run, holding its lock until :meth:`finish_run` (or this store's close)."""
        token = uuid.uuid4().hex
        lock_path = self._run_lock_path(token)
        lock_path.parent.mkdir(exist_ok=True)
        lock = open(lock_path, "wb")  # noqa: SIM115 - held for the run's lifetime
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            with self._session.begin() as s:
                run = IndexRun(root=str(root), status="running", stats={"lock": token})
                s.add(run)
                s.flush()
                run_id = int(run.id)
        except BaseException:
            lock.close()
            lock_path.unlink(missing_ok=True)
            raise
        self._run_locks[run_id] = (lock, lock_path)
        return run_id

    def finish_run(self, run_id: int, **stats) -> None:
        """Close a run: ``status`` (default "ok") and any JSON-able counts go into the run's record."""
        status = str(stats.pop("status", "ok"))
        try:
            with self._session.begin() as s:
                run = s.get(IndexRun, run_id)
                if run is None:
                    raise KeyError(f"no index run {run_id}")
                run.finished_at = datetime.now(timezone.utc)
                run.status = status
                run.stats = {**{k: v for k, v in (run.stats or {}).items() if k != "lock"}, **stats}
        finally:
            self._release_run(run_id)

    def _release_run(self, run_id: int) -> None:
        held = self._run_locks.pop(run_id, None)
        if held is not None:
            lock, lock_path = held
            lock_path.unlink(missing_ok=True)
            lock.close()  # last: whoever takes the lock now sees the run's final status

    def _run_alive(self, token: str | None) -> bool:
        """Whether the process of a ``running`` run still holds its lock (a run recorded before run locks
        existed has no token: its process is taken to be gone)."""
        if not token:
            return False
        lock_path = self._run_lock_path(token)
        try:
            lock = open(lock_path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return False
        with lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            lock_path.unlink(missing_ok=True)
            return False

    def _mark_interrupted_runs(self) -> None:
        """Runs left ``running`` by a process that died (killed, power cut) become ``interrupted``."""
        with self._session() as s:
            running = s.execute(select(IndexRun.id, IndexRun.stats).where(IndexRun.status == "running")).all()
        for run_id, stats in running:
            if self._run_alive((stats or {}).get("lock")):
                continue
            with self._session.begin() as s:
                s.execute(
                    update(IndexRun)
                    .where(IndexRun.id == run_id, IndexRun.status == "running")  # not finished meanwhile
                    .values(
                        status="interrupted",
                        finished_at=datetime.now(timezone.utc),
                        stats={k: v for k, v in (stats or {}).items() if k != "lock"},
                    ),
                    execution_options={"synchronize_session": False},
                )

    def runs(self, limit: int = 20) -> list[dict]:
        with self._session() as s:
            return catalog.run_dicts(s, limit)

    # ------------------------------------------------------------------------------------------------
    # maintenance
    def persist(self) -> None:
        """Save a trained FAISS index now (a writer does this periodically, every process at close; Milvus
        needs nothing)."""
        self.vectors.persist()

    def verify(self, read_all: bool = False) -> list[str]:
        """Consistency check; returns the problems found (empty = consistent): the vector index holds
        exactly the pages and vector counts of the SQL rows; with ``read_all`` every feature blob is read
        and checksummed too. (Another process writing meanwhile can raise false alarms.)"""
        with self._write_mutex, self.vectors.lock:
            self.vectors.sync()
            with self._session() as s:
                rows = s.execute(select(Page.id, Page.segment, Page.offset, Page.nbytes, Page.n_vectors)).all()
            problems = self.vectors.check({int(r[0]): int(r[4]) for r in rows})
        if read_all:
            for pid, seg, off, nbytes, _ in rows:
                try:
                    self.features.read(seg, off, nbytes)
                except (OSError, ValueError) as e:
                    problems.append(f"page {pid}: features unreadable ({e})")
        return problems

    def compact(self, min_garbage: float = 0.5) -> int:
        """Rewrite feature segments that are at least ``min_garbage`` garbage (blobs of deleted or replaced
        documents) and delete them; returns the bytes reclaimed. Safe while others read and write: a
        segment a writer owns is skipped, live blobs are copied and fsynced before the page rows are
        re-pointed in one transaction, and readers that raced the move re-read the row. The newest
        segment is never compacted, so segment numbers are never reused."""
        reclaimed = 0
        with self._write_mutex:
            with self._session() as s:
                live = dict(s.execute(select(Page.segment, func.sum(Page.nbytes)).group_by(Page.segment)).all())
            for seg in self.features.segments()[:-1]:
                size = self.features.path(seg).stat().st_size
                if size == 0 or (size - int(live.get(seg) or 0)) / size < min_garbage:
                    continue
                held = self.features.lock_for_compaction(seg)
                if held is None:
                    continue  # a writer owns it
                try:
                    reclaimed += self._compact_segment(seg, size)
                finally:
                    held.close()
        return reclaimed

    def _compact_segment(self, seg: int, size: int) -> int:
        with self._session() as s:
            rows = s.execute(
                select(Page.id, Page.offset, Page.nbytes).where(Page.segment == seg).order_by(Page.offset)
            ).all()
        moved: list[tuple[int, int, int, int]] = []  # page id, old offset, new segment, new offset
        self.features.begin(self._referenced_end)
        try:
            for pid, off, nbytes in rows:
                new_seg, new_off, _ = self.features.append(self.features.read_blob(seg, off, nbytes))
                moved.append((pid, off, new_seg, new_off))
            self.features.sync()
            with self._session.begin() as s:
                for pid, off, new_seg, new_off in moved:
                    s.execute(
                        update(Page)
                        .where(Page.id == pid, Page.segment == seg, Page.offset == off)
                        .values(segment=new_seg, offset=new_off),
                        execution_options={"synchronize_session": False},
                    )
                left = s.execute(select(func.count()).select_from(Page).where(Page.segment == seg)).scalar_one()
                if left:  # cannot happen while we hold the segment; keep it rather than lose pages
                    raise RuntimeError(f"segment {seg} still referenced after compaction")
        except BaseException:
            self.features.abort()
            raise
        self.features.commit()
        self.features.remove(seg)
        return size - sum(r[2] for r in rows)

    # ------------------------------------------------------------------------------------------------
    # reading (search / API)
    def project_queries(self, vecs: np.ndarray) -> np.ndarray:
        """(T, D) model-space vectors -> (T, d) unit rows in index space."""
        vecs = np.atleast_2d(np.asarray(vecs, dtype=np.float32))
        codec = self._load_codec()
        if codec is None:  # nothing indexed yet: the projection is not known
            dim = vecs.shape[1]
            if dim <= self.max_identity_dim:
                return identity_codec(dim).apply(vecs)
            return np.zeros((len(vecs), min(self.pca_dim, dim)), np.float32)
        return codec.apply(vecs)

    def lift_features(self, vecs: np.ndarray) -> np.ndarray:
        """(n, d) stored (index-space) features -> (n, D) model-space unit rows that project to them: how a tool
        writes features read from one index into another (``bench/scale.py``'s distractor pages)."""
        codec = self._load_codec()
        if codec is None:
            raise ValueError("nothing is indexed yet: the index space is not known")
        return codec.lift(vecs)

    def projection_known(self) -> bool:
        """Whether index space is fixed yet (the codec is written with the first features)."""
        return self._load_codec() is not None

    def search_cells(self, qvecs: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query row (already projected): page ids and scores of its top-``k`` cells (ids may repeat)."""
        return [(pages, scores) for pages, scores, _ in self.search_cells_at(qvecs, k)]

    def search_cells_at(
        self, qvecs: np.ndarray, k: int, pages: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`search_cells` with each cell's (row, column) on its page's grid (-1 if not known);
        ``pages`` (sorted ids, e.g. :meth:`filter_pages`): the top cells among those pages only."""
        qvecs = np.atleast_2d(np.asarray(qvecs, dtype=np.float32))
        hits = self.vectors.search(qvecs, k, pages)
        if hits is None:  # nothing indexed yet
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 2), np.int64)) for _ in qvecs]
        return hits

    def token_lists(self) -> bool:
        """Does stage 1 read token postings (:mod:`.postings`), whose top cells cost little however many?"""
        return self.vectors.token_lists()

    def filter_pages(self, f: SearchFilter) -> np.ndarray:
        """Sorted ids of the pages a search filter lets through."""
        with self._session() as s:
            return catalog.filter_pages(s, f)

    def filter_paths(self, f: SearchFilter, doc_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """Each document's first path (and its mtime) that a search filter lets through."""
        with self._session() as s:
            return catalog.filter_paths(s, f, doc_ids)

    def page_features(self, page_ids: Sequence[int]) -> dict[int, PageFeatures]:
        """Stored cell features of pages (one read each); unknown ids are left out."""
        out: dict[int, PageFeatures] = {}
        with self._session() as s:
            for chunk in catalog.chunks(page_ids):
                rows = s.execute(
                    select(Page.id, Page.segment, Page.offset, Page.nbytes).where(Page.id.in_(chunk))
                ).all()
                for pid, seg, off, nbytes in rows:
                    pf = self.vectors.read_page(pid, seg, off, nbytes)
                    if pf is not None:
                        out[int(pid)] = pf
        return out

    def pages(self, page_ids: Sequence[int]) -> dict[int, PageInfo]:
        with self._session() as s:
            return catalog.pages_by_id(s, page_ids)

    def document_pages(self, doc_id: int) -> list[PageInfo]:
        with self._session() as s:
            return catalog.document_pages(s, doc_id)

    def page_text(self, page_id: int) -> str | None:
        with self._session() as s:
            return s.execute(select(Page.text).where(Page.id == page_id)).scalar()

    def documents(self, status: str | None = None, offset: int = 0, limit: int = 50) -> list[DocumentInfo]:
        """Indexed documents (status "ok", by id) then failed paths (status "failed"); ``None`` = both."""
        with self._session() as s:
            return catalog.list_documents(s, status, offset, limit)

    def document(self, doc_id: int) -> DocumentDetail | None:
        """One document: paths, status, page count, and its pages."""
        with self._session() as s:
            return catalog.document_detail(s, doc_id)

    def failure(self, path: str) -> DocumentInfo | None:
        """The recorded failure of a path (a :class:`DocumentInfo` with status "failed"), or None."""
        with self._session() as s:
            return catalog.failure(s, path)

    def page_count(self) -> int:
        """Pages in the index (a count, cheap enough for every search)."""
        with self._session() as s:
            return int(s.execute(select(func.count()).select_from(Page)).scalar_one())

    def stats(self) -> IndexStats:
        with self._session() as s:
            n_docs = s.execute(select(func.count()).select_from(Document)).scalar_one()
            by_source = dict(s.execute(select(Page.source, func.count()).group_by(Page.source)).all())
            cells, feat_bytes = s.execute(select(func.sum(Page.n_cells), func.sum(Page.nbytes))).one()
            failures = [(p, r) for p, r in s.execute(select(Failure.path, Failure.reason).order_by(Failure.path))]
            warnings = catalog.all_warnings(s)
            partial = s.execute(
                select(func.count()).select_from(Document).where(Document.status == "partial")
            ).scalar_one()
            vectors = s.execute(select(func.coalesce(func.sum(Page.n_vectors), 0))).scalar_one()
        model = self.stored_model()
        codec = self._load_codec()
        home_bytes = _folder_bytes(self.home, skip=("cache",))
        db_bytes = catalog.database_bytes(self.engine)
        n_pages = int(sum(by_source.values()))
        index_bytes = home_bytes + (0 if self._db_in_home() else db_bytes)
        return IndexStats(
            documents=int(n_docs),
            pages=n_pages,
            pages_by_source={k: int(v) for k, v in by_source.items()},
            failures=failures,
            vectors=int(vectors),
            vector_index_type=self.vectors.describe(),
            index_bytes=int(index_bytes),
            bytes_per_page=index_bytes / n_pages if n_pages else 0.0,
            feature_cells=int(cells or 0),
            feature_bytes=int(feat_bytes or 0),
            vector_bytes=self.vectors.stored_bytes(),
            database_bytes=int(db_bytes),
            dim=codec.out_dim if codec else None,
            codec=codec.describe() if codec else "none",
            model=model,
            warnings=warnings,
            partial_documents=int(partial),
        )

    def _db_in_home(self) -> bool:
        db = self.engine.url.database
        if self.engine.url.get_backend_name() != "sqlite" or not db:
            return False
        return Path(db).resolve().is_relative_to(self.home.resolve())
