"""What an index pass reports: the indexer returns it, the CLI prints it, the API serves it (``JobReport``).

A plain dataclass in a module of its own (no PyMuPDF, no pydantic), so the API derives its schema from this
one definition without loading the indexer. A field's ``metadata["description"]`` is published in the API's
OpenAPI document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["IndexReport"]


@dataclass
class IndexReport:
    """One pass over a folder or a set of files: what changed (files), what could not be indexed, how long."""

    files_seen: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list, metadata={
        "description": "(path, why it could not be indexed) of files that failed"})
    warnings: list[tuple[str, str]] = field(default_factory=list, metadata={
        "description": "(path, message) of files indexed with a warning"})
    pages: int = 0
    pages_text: int = 0  # built from the PDF text layer
    pages_vision: int = 0  # encoded by the model
    seconds: float = 0.0

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else 0.0
