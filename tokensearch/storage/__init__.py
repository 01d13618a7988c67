"""Storage of one index: SQL rows (SQLAlchemy), the cell feature store and the FAISS vector index.

See :mod:`tokensearch.storage.store` for the write path and its crash guarantees, and
:mod:`.features`, :mod:`.vectors`, :mod:`.codec` for the on-disk formats.
"""

from .codec import Codec
from .records import (
    FileRecord,
    IndexStats,
    ModelMismatchError,
    PageFeatures,
    PageInfo,
    PageRecord,
)
from .store import Store

__all__ = [
    "Codec",
    "FileRecord",
    "IndexStats",
    "ModelMismatchError",
    "PageFeatures",
    "PageInfo",
    "PageRecord",
    "Store",
]
