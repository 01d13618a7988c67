"""Request and response models of the REST API (``/api/v1``); every route declares its ``response_model``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, WithJsonSchema, model_serializer
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ..reports import IndexReport, ProgressEvent
from ..storage.records import PageSummary

Box = list[float]  # [x0, y0, x1, y1] normalised to the page, origin top-left


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable error code, e.g. not_found, validation_error")
    message: str = Field(description="what went wrong and how to fix it")


class ErrorResponse(BaseModel):
    error: ErrorDetail


# -- search -------------------------------------------------------------------------------------------------


class HitOut(BaseModel):
    path: str
    page: int = Field(description="1-based page number")
    score: float
    boxes: list[Box] = Field(description="where the whole query is written: [x0, y0, x1, y1] in 0..1, origin top-left")
    doc_id: int
    page_id: int
    width: float = Field(description="page width (pixels of the page image the engine indexed)")
    height: float
    name: str = Field(description="file name of the document")
    image_url: str
    thumbnail_url: str
    text: str = Field(
        "",
        description="what the engine read where the query matched: the spelling of each query "
        "word (or of the whole query) that matched, e.g. INVOICE for invoice; on a born-digital page "
        "that is its text layer's, on a scan the query's tokens as matched",
    )
    modified: str | None = Field(None, description="the file's modification time, ISO 8601 in UTC")
    pages: int = Field(0, description="pages of the document")
    type: str = Field("", description='"pdf" or "image"')
    file_url: str = Field(description="the original file (inline); for a PDF, #page=N opens it at the hit's page")


class SearchOut(BaseModel):
    query: str
    k: int
    offset: int
    took_ms: float
    total: int = Field(description="pages above the threshold, before k/offset")
    hits: list[HitOut]


# -- documents ----------------------------------------------------------------------------------------------


class DocumentOut(BaseModel):
    id: int | None = Field(description="document id; null for a file that failed to index")
    path: str
    paths: list[str] = Field(default_factory=list, description="every path with this content (duplicates)")
    name: str
    pages: int | None = None
    status: str | None = Field(
        None,
        description='"ok", "partial" (damaged: only the pages that could be read '
        'are indexed; see warnings) or "failed"',
    )
    failure: str | None = Field(None, description="why the document could not be indexed, if it failed")
    warnings: list[str] = Field(
        default_factory=list,
        description="what to know about an indexed file: why it is "
        "partial, an extension that disagrees with its content",
    )
    thumbnail_url: str | None = None
    sha256: str | None = Field(None, description="SHA-256 of the content (null if unknown for a failed file)")
    kind: str | None = Field(None, description='"pdf" or "image"; null for a file that failed to index')
    size: int | None = Field(None, description="bytes")
    # published as a plain string: SQLite hands back times without their UTC offset, which "date-time" requires
    indexed_at: Annotated[datetime | None, WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}]})] = Field(
        None, description="when it was indexed, or when it failed, ISO 8601 (no offset on SQLite: its times are UTC)"
    )


class DocumentDetailOut(DocumentOut):
    page_list: list[PageSummary] = Field(default_factory=list, description="its pages, in order")


class DocumentList(BaseModel):
    items: list[DocumentOut]
    offset: int
    limit: int
    total: int | None = Field(
        None, description="number of entries matching the filter (indexed documents, then failed files), when known"
    )


class Deleted(BaseModel):
    id: int
    deleted: bool


class UploadedFile(BaseModel):
    filename: str
    stored_path: str
    content_type: str
    bytes: int


# -- index jobs ---------------------------------------------------------------------------------------------

JobStatus = Literal["queued", "running", "done", "failed", "interrupted", "cancelled"]


@pydantic_dataclass(config=ConfigDict(extra="ignore"))
class JobProgress(ProgressEvent):
    """Where the job's pass stands (the fields of tokensearch.reports.ProgressEvent)."""


@pydantic_dataclass(config=ConfigDict(extra="ignore"))
class JobReport(IndexReport):
    """What the job's pass did (the fields of tokensearch.reports.IndexReport), and what it skipped."""

    skipped_outside_roots: list[str] | None = Field(
        default=None,
        description=(
            "files under the folder that link outside the configured roots: not read (listed only when some were)"
        ),
    )

    @model_serializer(mode="wrap")
    def _listed_when_some(self, handler: SerializerFunctionWrapHandler):  # no return annotation: one would
        # replace the report's published schema by its own
        out = handler(self)
        if self.skipped_outside_roots is None:
            out.pop("skipped_outside_roots", None)
        return out


class IndexJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1, max_length=4096, description="folder or file to index; absolute, or relative to a configured root"
    )


class IndexJobOut(BaseModel):
    id: str
    kind: Literal["folder", "upload", "watch"] = Field(
        description="folder or upload: one pass; watch: the "
        "home's watcher of TOKENSEARCH_WATCH folders (id 'watch'), "
        "running while it follows them"
    )
    path: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: JobProgress
    report: JobReport | None = None
    error: str | None = None
    resumed: int = Field(0, description="how many times the job was resumed after a server restart")


class IndexJobList(BaseModel):
    items: list[IndexJobOut]


class UploadOut(BaseModel):
    files: list[UploadedFile]
    job: IndexJobOut


# -- heatmaps -----------------------------------------------------------------------------------------------


class HeatmapOut(BaseModel):
    query: str
    doc_id: int
    page: int
    tokens: list[str] = Field(description="the query's BPE tokens, one map each")
    grid_width: int
    grid_height: int
    maps: list[list[list[float]]] = Field(description="(T, H, W) absolute cosine per token, row-major")
    combined: list[list[float]] = Field(description="(H, W) whole-query map")
    min: float
    max: float


# -- health -------------------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "starting", "error"]
    version: str
    documents: int | None = None
    pages: int | None = None
    auth: bool = Field(description="whether requests need an API key")
    detail: str | None = None
