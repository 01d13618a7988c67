"""The home's shared palette: text-layer token vectors (int8 rows) stored once in SQL, named by id in blobs.

A born-digital page repeats a few hundred token vectors over thousands of cells; its blob stored each of them
(48 B in the vocabulary's subspace), which was most of the page's bytes. The same token gives the same row on
every page, so a home needs each row once. A row is committed before any blob naming it is written, and rows
are never deleted, so no blob ever names a missing row (a crash leaves at most rows no page names yet)."""

from __future__ import annotations

import threading

import numpy as np
from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .schema import TextRow


class TextRows:
    """Ids of rows (adding new ones) and rows of ids, cached in memory (a vocabulary's worth at most)."""

    def __init__(self, session: sessionmaker[Session]) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._ids: dict[bytes, int] = {}
        self._codes: dict[int, bytes] = {}

    def ids(self, codes: np.ndarray) -> np.ndarray:
        """(m, d) int8 rows -> (m,) their ids, rows new to the home committed first."""
        keys = [row.tobytes() for row in np.ascontiguousarray(codes, dtype=np.int8)]
        with self._lock:
            missing = sorted({k for k in keys if k not in self._ids})
            if missing:
                self._add(missing)
            return np.asarray([self._ids[k] for k in keys], dtype=np.int64)

    def rows(self, ids: np.ndarray, dim: int) -> np.ndarray:
        """(m,) ids -> (m, dim) int8 rows; an id no row has is an error (a blob of another home)."""
        want = [int(i) for i in ids]
        with self._lock:
            unknown = sorted({i for i in want if i not in self._codes})
            if unknown:
                self._load(unknown)
            lost = [i for i in unknown if i not in self._codes]
            if lost:
                raise ValueError(f"feature blob names text rows {lost[:5]} this home does not hold")
            data = b"".join(self._codes[i] for i in want)
        out = np.frombuffer(data, dtype=np.int8)
        if out.size != len(want) * dim:
            raise ValueError(f"text rows are not {dim} values long")
        return out.reshape(len(want), dim)

    def _add(self, keys: list[bytes]) -> None:
        with self._session.begin() as s:
            dialect = s.get_bind().dialect.name
            values = [{"code": k} for k in keys]
            if dialect in ("sqlite", "postgresql"):  # another process may add the same rows meanwhile
                ins = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(TextRow)
                s.execute(ins.on_conflict_do_nothing(index_elements=["code"]), values)
            else:
                for v in values:
                    try:
                        with s.begin_nested():
                            s.execute(insert(TextRow), [v])
                    except IntegrityError:
                        pass
        for lo in range(0, len(keys), 500):
            self._read(TextRow.code.in_(keys[lo : lo + 500]))

    def _load(self, ids: list[int]) -> None:
        for lo in range(0, len(ids), 500):
            self._read(TextRow.id.in_(ids[lo : lo + 500]))

    def _read(self, where: ColumnElement[bool]) -> None:
        with self._session() as s:
            for rid, code in s.execute(select(TextRow.id, TextRow.code).where(where)):
                self._ids[bytes(code)], self._codes[rid] = rid, bytes(code)
