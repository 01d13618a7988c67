"""The query half of a model: its tokenizer and token-vector table, without torch or the vision weights.

Searching needs only this half. The engine saves it under the index home when the full model is
loaded (at ``index`` time) and loads it for queries, so a CLI search starts in a fraction of a second
instead of importing torch and building the vision model. The saved file is a pickle: it lives in the
user's own index folder, written by this program.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .interface import ModelInfo, QueryTokens, Token

FORMAT = 2  # 2: the tokens' texts


@dataclass
class TableQueryEmbedder:
    info: ModelInfo
    tokenize_query: Callable[[str], list[Token]]  # picklable, torch-free (e.g. a tokenizer's bound method)
    table: np.ndarray  # (V, D) token vectors, unit rows
    stamp: tuple = ()  # (path, size, mtime_ns) of the weight files it was made from
    texts: tuple[str, ...] = ()  # each token's text, a leading space where it starts a word

    def embed_query(self, text: str) -> QueryTokens:
        tokens = self.tokenize_query(text)
        vecs = self.table[np.asarray([t.id for t in tokens], dtype=np.int64)].astype(np.float32)
        return QueryTokens(text=text, tokens=tokens, vectors=vecs.reshape(len(tokens), self.info.dim))

    def vocabulary(self) -> np.ndarray:
        return self.table

    def vocabulary_texts(self) -> list[str]:
        return list(self.texts)

    def save(self, path: Path) -> None:
        """Write atomically (a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as f:
            pickle.dump((FORMAT, self), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    @staticmethod
    def load(path: Path) -> TableQueryEmbedder | None:
        try:
            with path.open("rb") as f:
                fmt, obj = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError):
            return None
        return obj if fmt == FORMAT and isinstance(obj, TableQueryEmbedder) else None


def files_stamp(paths: list[Path]) -> tuple:
    """Cheap identity of weight files: (path, size, mtime_ns) each; () if one is missing."""
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            return ()
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)
