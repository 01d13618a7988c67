"""``/api/v1/documents``: list, show, delete, and upload (streamed to disk, sniffed, then indexed)."""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from ..deps import Authorized, StateDep
from ..errors import ApiError, not_found
from ..jobs import Job
from ..schemas import Deleted, DocumentDetailOut, DocumentList, DocumentOut, UploadedFile, UploadOut
from ..security import is_inside, uploads_dir
from ..uploads import receive_files, store_files
from .common import API, DocId, document_out, errors
from .index_jobs import job_out

log = logging.getLogger("tokensearch.api")
router = APIRouter(prefix=f"{API}/documents", tags=["documents"], dependencies=[Authorized])

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "PDF, PNG, JPEG, TIFF, WebP or BMP (repeat the field for several)",
                    }
                },
            }
        }
    },
}


@router.get("", response_model=DocumentList, responses=errors())
def list_documents(
    state: StateDep,
    status: Annotated[Literal["ok", "failed"] | None, Query(description="only indexed (ok) or failed files")] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DocumentList:
    engine = state.engine
    items = [document_out(d) for d in engine.documents(status=status, offset=offset, limit=limit)]
    try:
        stats = engine.stats()
        n_ok, n_failed = int(stats.documents), len(stats.failures)
        total = {None: n_ok + n_failed, "ok": n_ok, "failed": n_failed}[status]
    except Exception:  # noqa: BLE001 - the count is a convenience
        total = None
    return DocumentList(items=items, offset=offset, limit=limit, total=total)


@router.get("/{doc_id}", response_model=DocumentDetailOut, responses=errors(404))
def get_document(state: StateDep, doc_id: DocId) -> DocumentOut:
    doc = state.engine.document(doc_id)
    if doc is None:
        raise not_found(f"document {doc_id}")
    return document_out(doc)


@router.get(
    "/{doc_id}/file",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/pdf": {}, "image/*": {}},
            "description": "the original file, shown inline (a PDF opens at page N with the URL fragment #page=N)",
        },
        **errors(404),
    },
)
def document_file(state: StateDep, doc_id: DocId) -> FileResponse:
    doc = state.engine.document(doc_id)
    if doc is None:
        raise not_found(f"document {doc_id}")
    outside = False
    for raw in doc.paths:
        path = Path(raw).resolve()  # links resolved: the file itself must lie inside a root
        if not is_inside(path, state.roots):
            outside = True
        elif path.is_file():
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return FileResponse(
                path,
                media_type=media,
                filename=path.name,
                content_disposition_type="inline",
                headers={"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"},
            )
    if outside:
        raise ApiError(
            403,
            "forbidden",
            f"document {doc_id} lies outside the folders this server may read; start "
            "it with --root <folder> (TOKENSEARCH_ROOTS) to serve its files",
        )
    raise not_found(f"the file of document {doc_id} (moved or deleted since it was indexed)")


@router.delete("/{doc_id}", response_model=Deleted, responses=errors(404))
def delete_document(state: StateDep, doc_id: DocId) -> Deleted:
    doc = state.engine.document(doc_id)
    if doc is None or not state.engine.delete_document(doc_id):
        raise not_found(f"document {doc_id}")
    state.images.forget(doc_id)
    state.token_maps.clear()
    for path in doc.paths:
        _remove_uploaded_file(state, path)
    return Deleted(id=doc_id, deleted=True)


def _remove_uploaded_file(state: StateDep, path: str) -> None:
    """A deleted upload's file goes too (otherwise re-indexing the uploads would bring it back)."""
    uploads = uploads_dir(state.settings).resolve()
    p = Path(path).resolve()
    if p.is_relative_to(uploads) and p.is_file():
        p.unlink(missing_ok=True)
        try:
            p.parent.rmdir()  # the per-content folder, if now empty
        except OSError:
            pass


@router.post(
    "",
    response_model=UploadOut,
    status_code=202,
    responses={201: {"model": UploadOut, "description": "stored and indexed (wait=true)"}, **errors(400, 413, 415)},
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload_documents(
    request: Request,
    response: Response,
    state: StateDep,
    wait: Annotated[
        bool, Query(description="wait until the files are indexed (201) instead of returning 202 at once")
    ] = False,
) -> UploadOut:
    settings = state.settings
    uploads = uploads_dir(settings)
    received = await receive_files(request.headers, request.stream(), uploads / ".incoming", settings.max_upload_bytes)
    stored = store_files(received, uploads)
    job: Job = state.jobs.submit_upload([p for _, p, _ in stored], uploads)
    if wait:
        waited = await anyio.to_thread.run_sync(state.jobs.wait, job.id, 3600.0)
        job = waited or job
        if job.status == "done":
            response.status_code = 201
    files = [
        UploadedFile(filename=rf.filename, stored_path=str(p), content_type=media, bytes=rf.size)
        for rf, p, media in stored
    ]
    return UploadOut(files=files, job=job_out(job))
