"""The engine: one index (``--home``) + one model, as the CLI and the API use them.

Builds the model and the store lazily from the settings (or takes them ready-made, for tests), and
wires the pipeline stages together; the stages themselves never create each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .errors import ModelMismatchError, NotFound, QueryError
from .filters import SearchFilter
from .search import Hit, Searcher, SearchOptions, SearchResult
from .search.verify import TokenClasses
from .settings import Settings
from .tokenocr_model.interface import TokenEncoder

if TYPE_CHECKING:  # the indexer (PyMuPDF, a second to import) is loaded only when indexing or rendering
    from .indexer import FolderIndexer, IndexReport, ProgressEvent
    from .storage import DocumentDetail, DocumentInfo, IndexStats, PageInfo, Store
    from .tokenocr_model.interface import ModelInfo

__all__ = ["Engine", "Hit", "SearchResult", "TokenMaps"]

DEFAULT_THRESHOLD = 0.5
QUERY_SIDE_FILE = "query_side.pkl"
DISPLAY_DPI = 150  # page images for the viewer (boxes are normalised: any resolution fits)


@dataclass
class TokenMaps:
    tokens: list[str]
    maps: np.ndarray  # (T, H, W) absolute cosine
    combined: np.ndarray  # (H, W) whole-query map: the score of the matched occurrences


class Engine:
    def __init__(self, settings: Settings, encoder: TokenEncoder | None = None, store=None) -> None:
        self.settings = settings
        self._encoder = encoder
        self._store = store
        self._query = None  # cached query side (see query_encoder)
        self._query_saved = False  # the home's cached query side is known to match the loaded model
        # (fingerprint, vocabulary in index space, what its tokens say about word boundaries or None)
        self._competitor_cache: tuple[str, np.ndarray, TokenClasses | None] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ parts, built once
    @property
    def encoder(self) -> TokenEncoder:
        with self._lock:
            if self._encoder is None:
                from .samples import calibration_pages
                from .tokenocr_model import create_encoder

                if self.settings.threads:
                    import torch

                    torch.set_num_threads(self.settings.threads)
                self._encoder = create_encoder(
                    self.settings.model,
                    self.settings.device,
                    self.settings.dtype,
                    cell_pool=self.settings.cell_pool,
                    int8_pages=calibration_pages,
                )
            return self._encoder

    @property
    def query_encoder(self):
        """What embeds queries: the loaded model, else its cached torch-free query side, else the model."""
        if self._encoder is None and self._query is None:
            self._query = self._cached_query_side()
        if self._encoder is None and self._query is not None:
            return self._query
        enc = self.encoder
        self._save_query_side(enc)
        return enc

    def _query_side_path(self) -> Path:
        return Path(self.settings.home) / QUERY_SIDE_FILE

    def _cached_query_side(self):
        from .tokenocr_model.query_side import TableQueryEmbedder, files_stamp
        from .tokenocr_model.registry import weight_files

        files = weight_files(self.settings.model)
        q = TableQueryEmbedder.load(self._query_side_path()) if files else None
        if q is None or q.info.name != self.settings.model or not q.stamp or q.stamp != files_stamp(files):
            return None
        return q

    def _save_query_side(self, enc: TokenEncoder) -> None:
        """Write the query side once per engine (not on every search: the check itself reads the file)."""
        side = getattr(enc, "query_side", None)
        path = self._query_side_path()
        if self._query_saved or side is None or not path.parent.is_dir():
            return
        current = self._cached_query_side()
        if current is None or current.info.fingerprint != enc.info.fingerprint:
            side().save(path)
        self._query_saved = True

    @property
    def store(self) -> Store:
        """The index of ``--home`` (opened on first use). The CLI and the API use the engine's methods below;
        the pipeline stages (indexer, searcher) take the store itself."""
        with self._lock:
            if self._store is None:
                from .storage import Store

                self._store = Store.open(
                    self.settings.home, self.settings.database_url, **self.settings.store_options()
                )
            return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ indexing
    def _indexer(self, progress, cancel) -> FolderIndexer:
        from .indexer import FolderIndexer, IndexOptions

        s = self.settings
        opts = IndexOptions(
            text_layer=s.text_layer == "auto",
            batch_size=s.batch_size,
            max_page_pixels=s.max_page_pixels,
            rescale_images=s.image_scale == "auto",
            product_quantise=s.cell_code == "pq",
        )
        return FolderIndexer(self.encoder, self.store, opts, progress, cancel)

    def index(
        self, root: Path, progress: Callable[[ProgressEvent], None] | None = None, cancel: threading.Event | None = None
    ) -> IndexReport:
        """Bring the index up to date with a folder (or a single file)."""
        root = Path(root)
        if not root.exists():
            raise NotFound(f"no such folder or file: {root}")
        report = self._indexer(progress, cancel).index(root)
        self._save_query_side(self.encoder)
        return report

    def index_changes(
        self,
        root: Path,
        paths: list[Path],
        progress: Callable[[ProgressEvent], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> IndexReport:
        """Bring the index up to date with these files or folders below ``root`` that appeared, changed, moved
        or vanished (what a folder watcher saw), touching nothing else."""
        report = self._indexer(progress, cancel).update(Path(root), [Path(p) for p in paths])
        self._save_query_side(self.encoder)
        return report

    def index_files(self, paths: list[Path], root: Path, progress=None) -> IndexReport:
        """Index these files (e.g. uploads) without pruning anything else under ``root``."""
        return self._indexer(progress, None).index(Path(root), files=[Path(p) for p in paths], prune=False)

    def remove(self, path: Path) -> int:
        """Forget a file, or every file under a folder; returns how many paths were removed."""
        target = str(Path(path).absolute())
        keys = [k for k in self.store.known_files() if k == target or k.startswith(target.rstrip("/") + "/")]
        if not keys:
            raise NotFound(f"{path} is not in the index (see `tokensearch status`)")
        for k in keys:
            self.store.unlink_path(k)
        return len(keys)

    def delete_document(self, doc_id: int) -> bool:
        """Forget a document (every path of its content); False if there is no such document."""
        return self.store.delete_document(doc_id)

    # ------------------------------------------------------------------ the catalogue
    def open(self) -> None:
        """Open the index now: an unusable one raises here rather than at its first use."""
        _ = self.store

    def stats(self) -> IndexStats:
        return self.store.stats()

    def indexed_model(self) -> ModelInfo | None:
        """The model this index was built with; None before its first document."""
        return self.store.stored_model()

    def documents(self, status: str | None = None, offset: int = 0, limit: int = 50) -> list[DocumentInfo]:
        """Indexed documents (by id) then files that failed to index: ``status`` "ok", "failed" or None (both)."""
        return self.store.documents(status=status, offset=offset, limit=limit)

    def document(self, doc_id: int) -> DocumentDetail | None:
        """One document with its pages; None if there is no such document."""
        return self.store.document(doc_id)

    def failure(self, path: str) -> DocumentInfo | None:
        """Why ``path`` could not be indexed (a record with status "failed"), or None."""
        return self.store.failure(path)

    def document_pages(self, doc_id: int) -> list[PageInfo]:
        """The pages of a document, in order (empty for an unknown document)."""
        return self.store.document_pages(doc_id)

    # ------------------------------------------------------------------ searching
    def _check_model(self) -> None:
        stored = self.store.stored_model()
        info = self.query_encoder.info
        if stored is not None and (stored.fingerprint != info.fingerprint or stored.dim != info.dim):
            if stored.name == info.name:
                raise ModelMismatchError(
                    f"the weights of model {info.name!r} changed since this index was built (index: "
                    f"{stored.fingerprint[:12]}, now: {info.fingerprint[:12]}): index into a new --home "
                    "(or delete this one) to rebuild it with the current weights"
                )
            raise ModelMismatchError(
                f"this index was built with model {stored.name!r} (weights {stored.fingerprint[:12]}), "
                f"but the query uses {info.name!r} (weights {info.fingerprint[:12]}): search with "
                f"--model {stored.name} or index into a new --home"
            )

    def threshold(self) -> float:
        if self.settings.threshold is not None:
            return self.settings.threshold
        return float(self.query_encoder.info.extra.get("threshold", DEFAULT_THRESHOLD))

    def phrase_threshold(self) -> float | None:
        if self.settings.phrase_threshold is not None:
            return self.settings.phrase_threshold
        value = self.query_encoder.info.extra.get("phrase_threshold")
        return None if value is None else float(value)

    def verify_weight(self) -> float:
        if self.settings.verify_weight is not None:
            return self.settings.verify_weight
        return float(self.query_encoder.info.extra.get("verify_weight", 0.0))

    def pooled_share(self) -> float:
        if self.settings.pooled_share is not None:
            return self.settings.pooled_share
        return float(self.query_encoder.info.extra.get("pooled_share", 0.0))

    def _competitors(self) -> tuple[np.ndarray, TokenClasses | None] | None:
        """The model's vocabulary in index space, for verification, and its tokens' word-boundary classes
        when the model tells its tokens' texts (computed once per model and index)."""
        enc = self.query_encoder
        vocab = getattr(enc, "vocabulary", None)
        if vocab is None or not self.store.projection_known():
            return None
        key = enc.info.fingerprint
        if self._competitor_cache is None or self._competitor_cache[0] != key:
            texts_of = getattr(enc, "vocabulary_texts", None)
            texts = texts_of() if texts_of is not None else []
            classes = TokenClasses.of(texts) if texts else None
            self._competitor_cache = (key, self.store.project_queries(vocab()), classes)
        return self._competitor_cache[1], self._competitor_cache[2]

    def searcher(self) -> Searcher:
        weight = self.verify_weight()
        vocab = self._competitors() if weight > 0 else None
        return Searcher(
            self.query_encoder,
            self.store,
            SearchOptions(
                threshold=self.threshold(),
                phrase_threshold=self.phrase_threshold(),
                verify_weight=weight,
                pooled_share=self.pooled_share(),
                competitors=vocab[0] if vocab else None,
                token_classes=vocab[1] if vocab else None,
            ),
        )

    def search(self, query: str, k: int = 10, offset: int = 0, filter: SearchFilter | None = None) -> SearchResult:
        """Ranked pages; ``filter``: only in the documents it lets through (``tokensearch.filters``)."""
        if not 1 <= k <= self.settings.max_k:
            raise QueryError(f"k must be between 1 and {self.settings.max_k}")
        if offset < 0:
            raise QueryError("offset must be >= 0")
        self._check_model()
        return self.searcher().search(query, k, offset, self.settings.max_query_chars, filter)

    def token_maps(self, doc_id: int, page_no: int, query: str) -> TokenMaps:
        self._check_model()
        page = self._page(doc_id, page_no)
        tokens, maps, combined = self.searcher().token_maps(query, page.page_id, self.settings.max_query_chars)
        return TokenMaps(tokens, maps, combined)

    # ------------------------------------------------------------------ pages
    def _page(self, doc_id: int, page_no: int) -> PageInfo:
        for p in self.document_pages(doc_id):
            if p.page_no == page_no:
                return p
        raise NotFound(f"document {doc_id} has no page {page_no}")

    def page_image(self, doc_id: int, page_no: int) -> Image.Image:
        """The page rasterised from its source file at the model's resolution (callers cache it)."""
        from .indexer.sources import DocumentReader

        page = self._page(doc_id, page_no)
        with DocumentReader(Path(page.path), self.settings.max_page_pixels) as reader:
            return reader.render(page_no, DISPLAY_DPI)
