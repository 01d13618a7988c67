"""All settings in one place: environment variables ``TOKENSEARCH_*`` overridden by CLI flags.

Built on demand (``Settings()`` / ``get_settings()``), never at import time.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .local_server import DEFAULT_HOME, ENV_PREFIX


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # where one index lives: database (SQLite default), vectors, features, caches, model record
    home: Path = DEFAULT_HOME
    database_url: str | None = None  # any SQLAlchemy URL; None: <home>/index.sqlite3 (storage.store.sqlite_url)

    # vector backend (docs/scale.md): faiss in each process, or one Milvus collection for every process
    vector_backend: Literal["faiss", "milvus"] = "faiss"
    milvus_uri: str | None = None  # a server's URI (http://host:19530) or a milvus-lite file; default <home>/milvus.db
    milvus_index: Literal["auto", "FLAT", "IVF_SQ8", "HNSW", "DISKANN"] = "auto"  # a new collection's index
    milvus_token: str | None = None  # "user:password" or an API key, for a server with authentication

    # model
    model: str = "mini"  # registry spec: mini | mini:/dir | tokenocr:/path/to/checkpoint
    device: str = "cpu"  # cpu | cuda | cuda:N
    # auto: mini on a CPU int8 (its thresholds' numerics); other models bf16 where native, or fp32
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = "auto"
    threads: int | None = None  # torch/BLAS threads; None = library default
    cell_pool: int | None = Field(None, ge=1, le=8)  # TokenOCR: average k x k cells (None = its default, 2)

    # indexing
    text_layer: Literal["auto", "off"] = "auto"
    # auto: shrink large scans/photos to the model's text size, straighten leaning ones (indexer/scale.py, skew.py)
    image_scale: Literal["auto", "off"] = "auto"
    batch_size: int = Field(4, ge=1, le=256)  # pages per encoder batch
    # how a new index stores the cells the model reads: int8 (96 bytes a cell), or pq, the model's product
    # quantiser where it ships one (48 bytes; R@1 up to a point lower, searches 10-30 % more CPU: BENCHMARKS.md,
    # "Index format and scale"); recorded with the index on its first pages
    cell_code: Literal["int8", "pq"] = "int8"
    max_page_pixels: int = Field(60_000_000, ge=1)  # larger rasters are refused as "absurd pixel size"
    max_image_bytes: int = Field(512 * 2**20, ge=1)
    # watched folders (`tokensearch watch`; in `tokensearch serve`, followed by a process of their own):
    # TOKENSEARCH_WATCH=/a:/b (os.pathsep-separated, like PATH) or a JSON list
    watch: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    watch_quiet_s: float = Field(2.0, gt=0, le=3600)  # a path is read once no event named it for this long
    watch_rescan_s: float = Field(300.0, ge=1)  # full incremental pass of every watched folder this often

    # search
    threshold: float | None = None  # score a hit must reach; None = the model's calibrated value
    # score from which several words count (a phrase, a query's words); None = the model's calibrated value,
    # or the threshold when the model has none; never above the threshold
    phrase_threshold: float | None = None
    verify_weight: float | None = Field(None, ge=0)  # weight of the vocabulary margin; None = the model's
    # share of a verified occurrence's score read from its tokens' pooled cells; None = the model's
    pooled_share: float | None = Field(None, ge=0, le=1)
    max_query_chars: int = Field(256, ge=1)
    max_k: int = Field(100, ge=1)

    # API
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    roots: list[Path] = Field(default_factory=list)  # folders the API may index / serve from
    max_upload_bytes: int = Field(100 * 2**20, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    # processes answering searches in `tokensearch serve`, each with the index and the model's query side
    # loaded once (None: one per CPU core this process may use; 0: in the server process, on threads)
    search_workers: int | None = Field(None, ge=0, le=64)
    # niceness of those workers: when searches and an index job (nice 0, its own process) both want every
    # core, the job gets most of them and is not stalled by a flood of searches; idle cores go to searches
    search_nice: int = Field(5, ge=0, le=19)

    @field_validator("watch", mode="before")
    @classmethod
    def _split_watch(cls, value: object) -> object:
        """``/a:/b`` from the environment (a JSON list is accepted too, as for TOKENSEARCH_ROOTS)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(os.pathsep) if part.strip()]
        return value

    def store_options(self) -> dict[str, object]:
        """The vector-backend options of ``Store.open``."""
        return {
            "vector_backend": self.vector_backend,
            "milvus_uri": self.milvus_uri,
            "milvus_index": self.milvus_index,
            "milvus_token": self.milvus_token,
        }


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings from the environment (for the API's dependency injection)."""
    return Settings()
