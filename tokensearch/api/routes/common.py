"""Helpers shared by the routers: documented error responses and URL builders."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import Path, Query

from tokensearch.settings import Settings

from ...pathnames import shown
from ...storage.records import DocumentDetail, DocumentInfo
from ..schemas import DocumentDetailOut, DocumentOut, ErrorResponse

API = "/api/v1"

# path parameters: ids are database integers (bounded so a client cannot overflow SQL integer types)
DocId = Annotated[int, Path(ge=1, le=2**53, description="document id")]
PageNo = Annotated[int, Path(ge=1, le=1_000_000, description="1-based page number")]


def query_text(settings: Settings, description: str) -> Any:
    """The ``Query`` of a ``q`` parameter (``q: Annotated[str, query_text(...)]``): its published
    ``maxLength`` is the enforced TOKENSEARCH_MAX_QUERY_CHARS."""
    return Query(
        min_length=1,
        max_length=settings.max_query_chars,
        description=f"{description}; at most {settings.max_query_chars} characters (TOKENSEARCH_MAX_QUERY_CHARS)",
    )


_DESCRIPTIONS = {
    400: "bad request",
    401: "API key missing",
    403: "wrong API key, or path outside the configured roots",
    404: "not found",
    409: "conflict (e.g. the index was built by another model)",
    413: "upload too large",
    414: "request line (URL) longer than the server accepts",
    415: "unsupported file type",
    422: "invalid parameters",
    500: "internal error",
    503: "a search worker stopped while answering; retry",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all with the one error shape."""
    return {
        c: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(c, "error")}
        for c in (*codes, 401, 403, 414, 422, 500)
    }


def image_url(doc_id: int, page: int) -> str:
    return f"{API}/pages/{doc_id}/{page}/image"


def file_url(doc_id: int, page: int | None = None, kind: str = "") -> str:
    """The original file; a PDF at ``page`` (the ``#page=N`` open parameter browsers' PDF viewers follow)."""
    return f"{API}/documents/{doc_id}/file" + (f"#page={page}" if page and kind == "pdf" else "")


def thumbnail_url(doc_id: int, page: int) -> str:
    return f"{API}/pages/{doc_id}/{page}/image?width=480&format=webp"


def document_out(d: DocumentInfo) -> DocumentOut:
    """A catalogue record -> the API model (file names that are not UTF-8 shown with ``\\xNN`` escapes, see
    :mod:`tokensearch.pathnames`); a document with its pages lists them as ``page_list`` (the viewer reads it)."""
    path = d.path or (d.paths[0] if d.paths else "")
    out = DocumentOut(
        id=d.id,
        path=shown(path),
        paths=[shown(p) for p in d.paths or ([path] if path else [])],
        name=shown(FsPath(path).name) if path else str(d.id),
        pages=d.pages,
        status=d.status,
        failure=d.reason or None,
        warnings=d.warnings,
        thumbnail_url=thumbnail_url(d.id, 1) if d.id is not None and d.pages > 0 else None,
        sha256=d.sha256,
        kind=d.kind,
        size=d.size,
        indexed_at=d.indexed_at,
    )
    if isinstance(d, DocumentDetail):
        return DocumentDetailOut(**dict(out), page_list=d.page_list)
    return out
