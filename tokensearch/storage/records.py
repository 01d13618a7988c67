"""The plain data types the storage layer exchanges with the indexer, search and API.

Coordinates: ``ys``/``xs`` are cell rows/columns of a ``grid_h x grid_w`` feature grid that covers the
whole page image uniformly (see :mod:`tokensearch.tokenocr_model.interface`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import IndexLayoutError, ModelMismatchError

__all__ = ["DocumentNotes", "FileRecord", "IndexLayoutError", "IndexStats", "ModelMismatchError",
           "PageFeatures", "PageInfo", "PageRecord"]


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
class IndexStats:
    documents: int
    pages: int
    pages_by_source: dict[str, int]
    failures: list[tuple[str, str]]  # (path, why it could not be indexed)
    vectors: int  # cells in the vector index
    vector_index_type: str  # e.g. "flat-ip-fp16" or "ivf1024,sq8"
    index_bytes: int  # every file under home (but cache/, the API's page pictures) + the database's tables
    bytes_per_page: float
    feature_cells: int = 0  # cells in the feature store (all kept cells)
    feature_bytes: int = 0  # live bytes of the feature store
    vector_bytes: int = 0  # size of the saved vector index file
    database_bytes: int = 0
    dim: int | None = None  # index-space dimension d
    codec: str = "none"  # "identity" | "pca D->d" | "none" (nothing written yet)
    model: dict = field(default_factory=dict)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, message) of files indexed with a warning
    partial_documents: int = 0  # documents indexed in part (damaged pages): each has a warning saying why
