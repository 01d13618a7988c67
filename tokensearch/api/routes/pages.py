"""``/api/v1/pages/{doc_id}/{page}``: the page image (cached on disk) and query heatmaps.

Built per app (:func:`build_router`): the heatmap's ``q`` is bounded by the app's TOKENSEARCH_MAX_QUERY_CHARS,
enforced and published by the one declaration (see ``routes/search.py`` for why annotations are not postponed).
"""

import hashlib
import io
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from PIL import Image

from tokensearch.settings import Settings

from ..deps import Authorized, StateDep
from ..errors import ApiError
from ..pages import FORMATS, heatmap_over_page, heatmap_rgba, max_pool
from ..schemas import HeatmapOut
from .common import API, DocId, PageNo, errors, query_text


def build_router(settings: Settings) -> APIRouter:
    """The page image and heatmap routes of one app."""
    router = APIRouter(prefix=f"{API}/pages", tags=["pages"], dependencies=[Authorized])
    Q = query_text(settings, "the query whose similarity maps to draw")

    @router.get(
        "/{doc_id}/{page}/image",
        response_class=FileResponse,
        responses={
            200: {"content": {"image/png": {}, "image/webp": {}}, "description": "the page, scaled to the width"},
            304: {"description": "not modified (If-None-Match matched the ETag)"},
            **errors(404),
        },
    )
    def page_image(
        request: Request,
        state: StateDep,
        doc_id: DocId,
        page: PageNo,
        width: Annotated[
            int | None,
            Query(ge=16, le=10_000, description="target width in px (snapped to a few sizes; never upscaled)"),
        ] = None,
        format: Annotated[Literal["png", "webp"], Query(description="image format")] = "webp",
    ) -> Response:  # the file, or 304 when the client has it
        path = state.images.get(doc_id, page, width, format)
        # the cached file's name includes the document's content version, so its ETag changes with the content
        # (a reused document id never shows a stale picture); clients revalidate, a match costs one stat()
        st = path.stat()
        etag = '"' + hashlib.sha1(f"{path}:{st.st_mtime_ns}:{st.st_size}".encode()).hexdigest()[:20] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type=FORMATS[format], headers=headers)

    @router.get(
        "/{doc_id}/{page}/heatmap",
        response_model=HeatmapOut,
        responses={
            200: {
                "content": {"image/png": {}},
                "description": "JSON grids (format=json) or a PNG overlay (format=png)",
            },
            **errors(400, 404, 409),
        },
    )
    def page_heatmap(
        state: StateDep,
        doc_id: DocId,
        page: PageNo,
        q: Annotated[str, Q],
        format: Annotated[Literal["png", "json"], Query()] = "png",
        token: Annotated[
            int | None,
            Query(ge=0, le=4096, description="PNG: map of this query token (0-based); default the whole-query map"),
        ] = None,
        overlay: Annotated[
            bool, Query(description="PNG: draw over the page image instead of a transparent overlay")
        ] = False,
        width: Annotated[
            int | None, Query(ge=16, le=4096, description="PNG width (default: the page image at 1024 px)")
        ] = None,
        max_side: Annotated[
            int, Query(ge=8, le=2048, description="JSON: grids larger than this are max-pooled down to it")
        ] = 256,
    ) -> Response | HeatmapOut:
        if not q.strip():
            raise ApiError(422, "validation_error", "q: the query is empty")
        state.images.checked_document(doc_id, page)
        tm = state.token_maps.get(doc_id, page, q)
        maps = np.asarray(tm.maps, dtype=np.float32)
        combined = np.asarray(tm.combined, dtype=np.float32)
        if format == "json":
            maps, combined = max_pool(maps, max_side), max_pool(combined, max_side)
            both = np.concatenate([maps.ravel(), combined.ravel()]) if maps.size else combined.ravel()
            return HeatmapOut(
                query=q,
                doc_id=doc_id,
                page=page,
                tokens=[str(t) for t in tm.tokens],
                grid_width=int(combined.shape[1]),
                grid_height=int(combined.shape[0]),
                maps=np.round(maps, 4).tolist(),
                combined=np.round(combined, 4).tolist(),
                min=float(both.min(initial=0.0)),
                max=float(both.max(initial=0.0)),
            )
        if token is not None and token >= len(maps):
            raise ApiError(422, "validation_error", f"token: the query has {len(maps)} tokens (0..{len(maps) - 1})")
        m = combined if token is None else maps[token]
        if overlay:
            full = state.images.full(doc_id, page, state.images.checked_document(doc_id, page))
            with Image.open(full) as im:
                im.load()
                w = width or min(im.width, 1024)
                im = im.resize((w, max(1, round(im.height * w / im.width))), Image.Resampling.LANCZOS)
                out = heatmap_over_page(m, im)
        else:
            pw, ph = state.images.page_size(doc_id, page)
            w = width or min(pw, 1024)
            out = heatmap_rgba(m, (w, max(1, round(ph * w / pw))))
        buf = io.BytesIO()
        out.save(buf, "PNG", compress_level=3)
        return Response(buf.getvalue(), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    return router
