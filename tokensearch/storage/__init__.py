"""Storage of one index: SQL rows (SQLAlchemy), the cell feature store and the vector index (FAISS, or
Milvus with ``vector_backend="milvus"``: :mod:`.backends`, docs/scale.md).

On disk (``--home``)::

    index-id                      random id, also in the database (meta "home"): one database, one home
    index.sqlite3 (-wal, -shm)    the default database; any SQLAlchemy URL instead (tables ts_*)
    features/seg-000001.bin ...   append-only segments of int8 cell features, one blob per page
    vectors/index.json            current FAISS snapshot (trained IVF indexes only; a flat index is
    vectors/index-<gen>-<tok>.*   rebuilt from the features), replaced atomically
    runs/<token>.lock             held (flock) by the process of a running index pass
    milvus.db/                    the milvus-lite data of ``vector_backend="milvus"`` without a server URI

See :mod:`tokensearch.storage.store` for the write path and its crash guarantees, and
:mod:`.features`, :mod:`.vectors`, :mod:`.codec`, :mod:`.schema` for the formats.
"""

from .codec import Codec
from .records import (
    DocumentDetail,
    DocumentInfo,
    DocumentNotes,
    FileRecord,
    IndexStats,
    ModelMismatchError,
    PageFeatures,
    PageInfo,
    PageRecord,
    PageSummary,
)
from .store import Store

__all__ = [
    "Codec",
    "DocumentDetail",
    "DocumentInfo",
    "DocumentNotes",
    "FileRecord",
    "IndexStats",
    "ModelMismatchError",
    "PageFeatures",
    "PageInfo",
    "PageRecord",
    "PageSummary",
    "Store",
]
