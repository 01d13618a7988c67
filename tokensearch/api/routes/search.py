"""``GET /api/v1/search``: ranked pages with the boxes where the query is written.

The router is built per app (:func:`build_router`) because the limits of ``q`` and ``k`` are the app's settings:
FastAPI then enforces exactly what /openapi.json publishes. (No ``from __future__ import annotations`` here:
the parameter annotations close over ``settings`` and must be evaluated where they are written.)
"""

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query

from tokensearch.settings import Settings

from ...pathnames import shown
from ..deps import Authorized, StateDep
from ..errors import ApiError
from ..schemas import HitOut, SearchOut
from .common import API, errors, image_url, query_text, thumbnail_url


def build_router(settings: Settings) -> APIRouter:
    """The search route with ``q`` and ``k`` bounded by ``settings.max_query_chars`` / ``settings.max_k``."""
    router = APIRouter(prefix=API, tags=["search"], dependencies=[Authorized])
    Q = query_text(settings, 'text to find (words, "a phrase", numbers, IDs)')
    K = Annotated[int, Query(ge=1, le=settings.max_k, description="hits per page of results (TOKENSEARCH_MAX_K)")]

    @router.get("/search", response_model=SearchOut, responses=errors(400, 409, 503))
    async def search(  # async: the search itself runs in a worker (``state.searches``), the loop only waits
        state: StateDep,
        q: Q,
        k: K = min(10, settings.max_k),  # noqa: B008 (once per app) a default above the maximum would make the spec invalid
        offset: Annotated[int, Query(ge=0, le=100_000, description="hits to skip (pagination)")] = 0,
    ) -> SearchOut:
        if not q.strip():
            raise ApiError(422, "validation_error", "q: the query is empty")
        result = await state.searches.search(q, k, offset)
        hits = [
            HitOut(path=shown(str(h.path)), name=shown(Path(str(h.path)).name), page=h.page, score=float(h.score),
                   boxes=[[float(c) for c in b] for b in h.boxes], doc_id=h.doc_id, page_id=h.page_id,
                   width=float(h.width), height=float(h.height),
                   image_url=image_url(h.doc_id, h.page), thumbnail_url=thumbnail_url(h.doc_id, h.page))
            for h in result.hits
        ]
        return SearchOut(query=result.query, k=k, offset=offset, took_ms=float(result.took_ms),
                         total=int(getattr(result, "total", len(hits))), hits=hits)

    return router
