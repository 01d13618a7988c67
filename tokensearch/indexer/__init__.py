"""Ingestion: scan a folder, detect changes, rasterise pages, encode them, hand them to the store."""

from .pipeline import (
    FolderIndexer,
    FolderWalk,
    IndexOptions,
    IndexReport,
    ProgressEvent,
    sha256_file,
    walk_documents,
    walk_folder,
)
from .sources import DocumentReader, RasterPage, TextChar, is_candidate, sniff_kind

__all__ = [
    "DocumentReader",
    "FolderIndexer",
    "FolderWalk",
    "IndexOptions",
    "IndexReport",
    "ProgressEvent",
    "RasterPage",
    "TextChar",
    "is_candidate",
    "sha256_file",
    "sniff_kind",
    "walk_documents",
    "walk_folder",
]
