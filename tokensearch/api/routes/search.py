"""``GET /api/v1/search``: ranked pages with the boxes where the query is written.

The router is built per app (:func:`build_router`) because the limits of ``q`` and ``k`` are the app's settings:
FastAPI then enforces exactly what /openapi.json publishes. (No ``from __future__ import annotations`` here:
the parameter annotations close over ``settings`` and must be evaluated where they are written.)
"""

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from tokensearch.filters import SearchFilter
from tokensearch.settings import Settings

from ...pathnames import shown
from ..deps import Authorized, StateDep
from ..errors import ApiError
from ..schemas import HitOut, SearchOut
from .common import API, errors, file_url, image_url, query_text, thumbnail_url


def build_router(settings: Settings) -> APIRouter:
    """The search route with ``q`` and ``k`` bounded by ``settings.max_query_chars`` / ``settings.max_k``."""
    router = APIRouter(prefix=API, tags=["search"], dependencies=[Authorized])
    Q = query_text(settings, 'text to find (words, "a phrase", numbers, IDs)')
    K = Annotated[int, Query(ge=1, le=settings.max_k, description="hits per page of results (TOKENSEARCH_MAX_K)")]

    @router.get("/search", response_model=SearchOut, responses=errors(400, 409, 503))
    async def search(  # async: the search itself runs in a worker (``state.searches``), the loop only waits
        state: StateDep,
        q: Annotated[str, Q],
        k: K = min(10, settings.max_k),  # noqa: B008 (once per app) a default above the maximum would make the spec invalid
        offset: Annotated[int, Query(ge=0, le=100_000, description="hits to skip (pagination)")] = 0,
        path: Annotated[
            str | None,
            Query(
                max_length=4096,
                description=(
                    "only documents whose path matches this glob, relative to the folder they were indexed or watched "
                    "from (invoices/2024/*; * and ? within a folder, ** across folders; a glob without / matches the "
                    "file name at any depth; an absolute glob matches absolute paths)"
                ),
            ),
        ] = None,
        type: Annotated[Literal["pdf", "image"] | None, Query(description="only PDFs or only images")] = None,
        modified_after: Annotated[
            str | None,
            Query(
                max_length=64,
                description=(
                    "only files modified at or after this ISO 8601 date or date-time (UTC without an offset), "
                    "e.g. 2024-01-31"
                ),
            ),
        ] = None,
        modified_before: Annotated[
            str | None,
            Query(
                max_length=64,
                description=("only files modified before this ISO 8601 date or date-time (UTC without an offset)"),
            ),
        ] = None,
        doc: Annotated[int | None, Query(ge=1, le=2**53, description="only this document (id)")] = None,
    ) -> SearchOut:
        if not q.strip():
            raise ApiError(422, "validation_error", "q: the query is empty")
        narrow = SearchFilter.of(path, type, modified_after, modified_before, doc)  # a bad date: 400 bad_query
        result = (
            await state.searches.search(q, k, offset, narrow) if narrow else await state.searches.search(q, k, offset)
        )
        hits = [
            HitOut(
                path=shown(str(h.path)),
                name=shown(Path(str(h.path)).name),
                page=h.page,
                score=float(h.score),
                boxes=[[float(c) for c in b] for b in h.boxes],
                doc_id=h.doc_id,
                page_id=h.page_id,
                width=float(h.width),
                height=float(h.height),
                image_url=image_url(h.doc_id, h.page),
                thumbnail_url=thumbnail_url(h.doc_id, h.page),
                text=h.text,
                modified=h.modified,
                pages=h.pages,
                type=h.kind,
                file_url=file_url(h.doc_id, h.page, h.kind),
            )
            for h in result.hits
        ]
        return SearchOut(
            query=result.query, k=k, offset=offset, took_ms=float(result.took_ms), total=int(result.total), hits=hits
        )

    return router
