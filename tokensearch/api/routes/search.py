"""``GET /api/v1/search``: ranked pages with the boxes where the query is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query

from ...pathnames import shown
from ..deps import Authorized, EngineDep, SettingsDep
from ..errors import ApiError
from ..schemas import HitOut, SearchOut
from .common import API, errors, image_url, thumbnail_url

router = APIRouter(prefix=API, tags=["search"], dependencies=[Authorized])


@router.get("/search", response_model=SearchOut, responses=errors(400, 409))
def search(
    engine: EngineDep,
    settings: SettingsDep,
    q: Annotated[str, Query(min_length=1, max_length=4096, description="text to find (words, \"a phrase\", numbers, IDs)")],
    k: Annotated[int, Query(ge=1, le=10_000, description="hits per page of results (at most TOKENSEARCH_MAX_K)")] = 10,
    offset: Annotated[int, Query(ge=0, le=100_000, description="hits to skip (pagination)")] = 0,
) -> SearchOut:
    if not q.strip():
        raise ApiError(422, "validation_error", "q: the query is empty")
    if len(q) > settings.max_query_chars:
        raise ApiError(422, "validation_error",
                       f"q: the query has {len(q)} characters, more than the limit of {settings.max_query_chars}")
    if k > settings.max_k:
        raise ApiError(422, "validation_error", f"k: at most {settings.max_k} hits per request")
    result = engine.search(q, k=k, offset=offset)
    hits = [
        HitOut(path=shown(str(h.path)), name=shown(Path(str(h.path)).name), page=h.page, score=float(h.score),
               boxes=[[float(c) for c in b] for b in h.boxes], doc_id=h.doc_id, page_id=h.page_id,
               width=float(h.width), height=float(h.height),
               image_url=image_url(h.doc_id, h.page), thumbnail_url=thumbnail_url(h.doc_id, h.page))
        for h in result.hits
    ]
    return SearchOut(query=result.query, k=k, offset=offset, took_ms=float(result.took_ms),
                     total=int(getattr(result, "total", len(hits))), hits=hits)
