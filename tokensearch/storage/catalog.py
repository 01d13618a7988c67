"""Read-only SQL queries of the catalogue (files, documents, pages, failures, runs) for the API and CLI.

Plain functions over a :class:`~sqlalchemy.orm.Session`; :class:`~tokensearch.storage.Store` wraps them.
Documents and failed files come out as one record, :class:`~.records.DocumentInfo` (a document with its pages:
:class:`~.records.DocumentDetail`). Paths are as Python's file functions take them (see
:mod:`tokensearch.pathnames`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import cast

import numpy as np
from sqlalchemy import Engine, Select, Text, func, or_, select, text, type_coerce
from sqlalchemy.orm import Session

from ..filters import SearchFilter
from ..pathnames import URI, shown
from .records import DocumentDetail, DocumentInfo, FileRecord, PageInfo, PageSummary
from .schema import Base, DocPath, Document, Failure, IndexRun, IndexWarning, Page

CHUNK = 500  # ids per IN (...) clause


def chunks(seq: Iterable[int], n: int = CHUNK) -> Iterator[list[int]]:
    seq = list(seq)
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def known_files(s: Session) -> dict[str, FileRecord]:
    """Every recorded path, indexed (ok) or failed."""
    out: dict[str, FileRecord] = {}
    q = select(DocPath.path, Document.sha256, DocPath.size, DocPath.mtime_ns, DocPath.doc_id).join(Document)
    rows = s.execute(q)
    for path, sha, size, mtime, doc_id in rows:
        out[path] = FileRecord(path, sha, int(size), int(mtime), "ok", int(doc_id), None)
    for f in s.scalars(select(Failure)):
        if f.path not in out:
            out[f.path] = FileRecord(f.path, f.sha256, int(f.size), int(f.mtime_ns), "failed", None, f.reason)
    return out


def page_infos(s: Session, pages: Sequence[Page]) -> list[PageInfo]:
    """PageInfo of page rows; ``path`` is the document's first path in sort order (with its mtime)."""
    paths: dict[int, tuple[str, int | None]] = {}  # (None: the document lost every path)
    docs: dict[int, tuple[int, str]] = {}
    for chunk in chunks(sorted({p.doc_id for p in pages})):
        q_paths = select(DocPath.doc_id, DocPath.path, DocPath.mtime_ns).where(DocPath.doc_id.in_(chunk))
        for d, first_path, first_mtime in s.execute(q_paths.order_by(DocPath.path)):
            paths.setdefault(int(d), (first_path, int(first_mtime)))
        q_docs = select(Document.id, Document.n_pages, Document.kind).where(Document.id.in_(chunk))
        docs.update({int(d): (int(n), str(kind)) for d, n, kind in s.execute(q_docs)})
    out = []
    for p in pages:
        path, mtime = paths.get(p.doc_id, ("", None))
        n_pages, kind = docs.get(p.doc_id, (0, ""))
        out.append(
            PageInfo(int(p.id), int(p.doc_id), path, p.page_no, p.width, p.height, p.source, mtime, n_pages, kind)
        )
    return out


def _filtered_paths(s: Session, f: SearchFilter, doc_ids: Sequence[int] | None = None) -> tuple[Select, list[str]]:
    """(doc id, path, mtime) rows that meet ``f`` in SQL — type, id, dates, and the path glob as LIKE patterns
    that every matching path meets (the glob itself is checked on the rows, against the returned roots: the
    folders the index runs recorded)."""
    q = select(DocPath.doc_id, DocPath.path, DocPath.mtime_ns)
    if f.type is not None or f.doc is not None:
        q = q.join(Document, Document.id == DocPath.doc_id)
    if f.type is not None:
        q = q.where(Document.kind == f.type)
    if f.doc is not None:
        q = q.where(Document.id == f.doc)
    if f.modified_after is not None:
        q = q.where(DocPath.mtime_ns >= _ns(f.modified_after))
    if f.modified_before is not None:
        q = q.where(DocPath.mtime_ns < _ns(f.modified_before))
    if doc_ids is not None:
        q = q.where(DocPath.doc_id.in_(list(doc_ids)))
    roots: list[str] = []
    if f.glob is not None:
        roots = sorted({str(r) for r in s.scalars(select(IndexRun.root).distinct())})
        patterns = f.glob.like_patterns(roots)
        if patterns is not None:
            raw = type_coerce(DocPath.path, Text)  # as stored: names that are not UTF-8 are URIs, let through
            q = q.where(or_(raw.like(URI + "%"), *(raw.like(p, escape="\\") for p in patterns)))
    return q, roots


def filter_pages(s: Session, f: SearchFilter) -> np.ndarray:
    """Sorted ids of the pages of the documents ``f`` lets through (see :mod:`tokensearch.filters`): one
    query without a path glob; with one, the glob is checked on the paths its LIKE patterns let through."""
    q, roots = _filtered_paths(s, f)
    glob = f.glob
    if glob is None:
        ids = list(s.scalars(select(Page.id).where(Page.doc_id.in_(q.with_only_columns(DocPath.doc_id)))))
    else:
        docs = sorted({int(d) for d, path, _ in s.execute(q) if glob.matches(path, roots)})
        ids = [i for chunk in chunks(docs) for i in s.scalars(select(Page.id).where(Page.doc_id.in_(chunk)))]
    return np.unique(np.asarray(ids, dtype=np.int64))


def filter_paths(s: Session, f: SearchFilter, doc_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
    """For each of these documents, its first path in sort order that ``f`` lets through, with its mtime (a
    duplicate's other paths may not match the filter)."""
    q, roots = _filtered_paths(s, f, doc_ids)
    out: dict[int, tuple[str, int]] = {}
    for doc_id, path, mtime in s.execute(q.order_by(DocPath.path)):
        if int(doc_id) not in out and (f.glob is None or f.glob.matches(path, roots)):
            out[int(doc_id)] = (path, int(mtime))
    return out


def _ns(when: datetime) -> int:
    return int(round(when.timestamp() * 1e9))


def pages_by_id(s: Session, page_ids: Sequence[int]) -> dict[int, PageInfo]:
    rows: list[Page] = []
    for chunk in chunks(page_ids):
        rows.extend(s.scalars(select(Page).where(Page.id.in_(chunk))))
    return {i.page_id: i for i in page_infos(s, rows)}


def document_pages(s: Session, doc_id: int) -> list[PageInfo]:
    return page_infos(s, list(s.scalars(select(Page).where(Page.doc_id == doc_id).order_by(Page.page_no))))


def doc_warnings(s: Session, doc_ids: Iterable[int]) -> dict[int, list[str]]:
    """Warnings of documents: about their content first, then about each of their paths (named)."""
    out: dict[int, list[str]] = {d: [] for d in doc_ids}
    for chunk in chunks(out):
        own = select(IndexWarning.doc_id, IndexWarning.message).where(IndexWarning.doc_id.in_(chunk))
        for doc_id, message in s.execute(own.order_by(IndexWarning.id)):
            out[cast(int, doc_id)].append(message)  # (a doc_id in the chunk, so not None)
        of_paths = (
            select(DocPath.doc_id, IndexWarning.path, IndexWarning.message)
            .join(DocPath, DocPath.path == IndexWarning.path)
            .where(DocPath.doc_id.in_(chunk))
        )
        for path_doc_id, path, message in s.execute(of_paths.order_by(IndexWarning.path, IndexWarning.id)):
            out[path_doc_id].append(f"{shown(cast(str, path))}: {message}")  # (joined on it: not None)
    return out


def all_warnings(s: Session) -> list[tuple[str, str]]:
    """(path, message) of every warning; a document's own warnings under its first path."""
    first = select(DocPath.doc_id, func.min(DocPath.path).label("path")).group_by(DocPath.doc_id).subquery()
    on_first = first.c.doc_id == IndexWarning.doc_id
    rows = list(s.execute(select(first.c.path, IndexWarning.message).join(first, on_first)))
    rows += list(s.execute(select(IndexWarning.path, IndexWarning.message).where(IndexWarning.path.is_not(None))))
    return sorted((str(p), str(m)) for p, m in rows)


def doc_infos(s: Session, docs: Sequence[Document]) -> list[DocumentInfo]:
    paths: dict[int, list[str]] = {d.id: [] for d in docs}
    for chunk in chunks(paths):
        q = select(DocPath.doc_id, DocPath.path).where(DocPath.doc_id.in_(chunk)).order_by(DocPath.path)
        for doc_id, path in s.execute(q):
            paths[doc_id].append(path)
    warnings = doc_warnings(s, paths)
    return [
        DocumentInfo(
            id=d.id,
            sha256=d.sha256,
            kind=d.kind,
            status=d.status,
            pages=d.n_pages,
            size=d.size,
            path=paths[d.id][0] if paths[d.id] else None,
            paths=paths[d.id],
            indexed_at=d.created_at,
            reason=None,
            warnings=warnings[d.id],
        )
        for d in docs
    ]


def failure_info(f: Failure) -> DocumentInfo:
    return DocumentInfo(
        id=None,
        sha256=f.sha256,
        kind=None,
        status="failed",
        pages=0,
        size=f.size,
        path=f.path,
        paths=[f.path],
        indexed_at=f.failed_at,
        reason=f.reason,
        warnings=[],
    )


def list_documents(s: Session, status: str | None, offset: int, limit: int) -> list[DocumentInfo]:
    """Indexed documents (by id) then failed paths (by id): ``status`` "ok", "failed" or None (both)."""
    if status not in (None, "ok", "failed"):
        raise ValueError(f"status must be 'ok', 'failed' or None, not {status!r}")
    out: list[DocumentInfo] = []
    n_ok = 0
    if status in (None, "ok"):
        out = doc_infos(s, list(s.scalars(select(Document).order_by(Document.id).offset(offset).limit(limit))))
        n_ok = s.execute(select(func.count()).select_from(Document)).scalar_one()
    if status in (None, "failed") and len(out) < limit:
        fails = s.scalars(select(Failure).order_by(Failure.id).offset(max(0, offset - n_ok)).limit(limit - len(out)))
        out += [failure_info(f) for f in fails]
    return out


def document_detail(s: Session, doc_id: int) -> DocumentDetail | None:
    """One document with its pages (id, number, size, source, grid, cells)."""
    doc = s.get(Document, doc_id)
    if doc is None:
        return None
    pages = [
        PageSummary(
            page_id=p.id,
            page_no=p.page_no,
            width=p.width,
            height=p.height,
            source=p.source,
            grid_h=p.grid_h,
            grid_w=p.grid_w,
            cells=p.n_cells,
        )
        for p in s.scalars(select(Page).where(Page.doc_id == doc_id).order_by(Page.page_no))
    ]
    return DocumentDetail(**vars(doc_infos(s, [doc])[0]), page_list=pages)


def failure(s: Session, path: str) -> DocumentInfo | None:
    f = s.execute(select(Failure).where(Failure.path == path)).scalar()
    return None if f is None else failure_info(f)


def run_dicts(s: Session, limit: int) -> list[dict]:
    return [
        {
            "id": r.id,
            "root": r.root,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "status": r.status,
            "stats": r.stats or {},
        }
        for r in s.scalars(select(IndexRun).order_by(IndexRun.id.desc()).limit(limit))
    ]


def database_bytes(engine: Engine) -> int:
    """Size of the database: the SQLite file (+ WAL) or the PostgreSQL tables with their indexes."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database:
            return 0
        db = url.database
        return sum(p.stat().st_size for p in Path(db).parent.glob(Path(db).name + "*"))
    if url.get_backend_name() == "postgresql":
        with engine.connect() as c:
            q = text("SELECT coalesce(pg_total_relation_size(to_regclass(:t)), 0)")
            return int(sum(c.execute(q, {"t": t.name}).scalar_one() for t in Base.metadata.sorted_tables))
    return 0
