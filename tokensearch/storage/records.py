"""The plain data types the storage layer exchanges with the indexer, search and API.

Coordinates: ``ys``/``xs`` are cell rows/columns of a ``grid_h x grid_w`` feature grid that covers the
whole page image uniformly (see :mod:`tokensearch.tokenocr_model.interface`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ..errors import IndexLayoutError, ModelMismatchError
from ..tokenocr_model.interface import ModelInfo

__all__ = [
    "DocumentDetail",
    "DocumentInfo",
    "DocumentNotes",
    "FileRecord",
    "IndexLayoutError",
    "IndexStats",
    "ModelMismatchError",
    "PageFeatures",
    "PageInfo",
    "PageRecord",
    "PageSummary",
]


@dataclass
class PageRecord:
    """One page as the indexer hands it to :meth:`Store.write_document`."""

    page_no: int  # 1-based
    width: int  # raster size in px the features were computed on
    height: int
    source: str  # "text" (built from the PDF text layer) | "vision" (model)
    grid_h: int
    grid_w: int
    ys: np.ndarray  # (n,) int cell rows of the kept (text) cells
    xs: np.ndarray  # (n,) int cell columns
    feats: np.ndarray  # (n, D) float32 unit vectors
    text: str | None = None  # page text if known


@dataclass
class DocumentNotes:
    """What the indexer learnt about a file besides its pages, for :meth:`Store.write_document`.

    ``warnings`` are about the path written (e.g. its extension disagrees with the content); ``partial``
    says why the content is indexed only in part (damaged pages), and may be set while the pages are
    read: the store reads it after the last page.
    """

    warnings: list[str] = field(default_factory=list)
    partial: str | None = None


@dataclass
class PageFeatures:
    """Stored features of one page, decoded: index (codec) space, rows re-normalised, raster order.

    Pages stored as a palette (a few hundred distinct vectors over thousands of cells) keep that form:
    ``feats`` expands it on first use, :meth:`similarities` never does.
    """

    grid_h: int
    grid_w: int
    ys: np.ndarray  # (n,) int32
    xs: np.ndarray  # (n,) int32
    rows: np.ndarray  # (m, d) float32 unit rows: one per cell, or the palette
    index: np.ndarray | None = None  # (n,) palette row of each cell, None when rows are per cell

    @property
    def feats(self) -> np.ndarray:
        """(n, d) float32 unit rows, one per cell."""
        return self.rows if self.index is None else self.rows[self.index]

    def similarities(self, q: np.ndarray) -> np.ndarray:
        """(n, T) cosine of every cell with every (unit) query row."""
        s = self.rows @ q.T
        return s if self.index is None else s[self.index]


@dataclass
class PageInfo:
    page_id: int
    doc_id: int
    path: str  # one current path of the document (the first in sort order)
    page_no: int
    width: int
    height: int
    source: str
    mtime_ns: int | None = None  # modification time of ``path``
    doc_pages: int = 0  # pages of the document
    kind: str = ""  # "pdf" | "image"


@dataclass
class FileRecord:
    """What the index knows about one path (for the indexer's change detection)."""

    path: str
    sha256: str | None
    size: int
    mtime_ns: int
    status: str  # "ok" | "failed"
    doc_id: int | None
    reason: str | None


@dataclass
class DocumentInfo:
    """One entry of the catalogue as the CLI and API list it: an indexed document, or a file that failed to
    index (``id`` None, ``status`` "failed", ``reason`` says why). Paths are as Python's file functions take
    them (see :mod:`tokensearch.pathnames`)."""

    id: int | None
    sha256: str | None
    kind: str | None  # "pdf" | "image"; None for a failed file
    status: str  # "ok" | "partial" (damaged: only the readable pages are indexed) | "failed"
    pages: int  # page count (0 for a failed file)
    size: int  # bytes
    path: str | None  # the first path in sort order (None for a document that lost every path)
    paths: list[str]  # every path with this content (duplicates), sorted
    indexed_at: datetime | None  # when it was indexed, or when it failed
    reason: str | None  # why it could not be indexed (failed files only)
    warnings: list[str]  # why it is partial, an extension that disagrees with the content; path ones named


@dataclass
class PageSummary:
    """One stored page of a document (see :class:`DocumentDetail`)."""

    page_id: int
    page_no: int  # 1-based
    width: int  # raster size in px the features were computed on
    height: int
    source: str  # "text" | "vision"
    grid_h: int
    grid_w: int
    cells: int  # kept (text) cells


@dataclass
class DocumentDetail(DocumentInfo):
    """One document with its pages."""

    page_list: list[PageSummary] = field(default_factory=list)


@dataclass
class IndexStats:
    documents: int
    pages: int
    pages_by_source: dict[str, int]
    failures: list[tuple[str, str]]  # (path, why it could not be indexed)
    vectors: int  # cells in the vector index
    vector_index_type: str  # e.g. "flat-ip-int8" or "ivf1024,sq8"
    index_bytes: int  # every file under home (but cache/, the API's page pictures) + the database's tables
    bytes_per_page: float
    feature_cells: int = 0  # cells in the feature store (all kept cells)
    feature_bytes: int = 0  # live bytes of the feature store
    vector_bytes: int = 0  # size of the saved vector index file
    database_bytes: int = 0
    dim: int | None = None  # index-space dimension d
    codec: str = "none"  # "identity" | "pca D->d" | "none" (nothing written yet)
    model: ModelInfo | None = None  # the model that built the index; None before its first document
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, message) of files indexed with a warning
    partial_documents: int = 0  # documents indexed in part (damaged pages): each has a warning saying why
