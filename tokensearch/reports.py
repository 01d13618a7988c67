"""What an index pass reports: its progress while it runs and its report at the end. The indexer makes them,
the CLI prints them, the API serves them (``JobProgress``, ``JobReport``).

Plain dataclasses in a module of their own (no PyMuPDF, no pydantic), so the API derives its schemas from
these one definitions without loading the indexer. A field's ``metadata["description"]`` is published in the API's
OpenAPI document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["IndexReport", "ProgressEvent"]


@dataclass
class ProgressEvent:
    """Where a pass stands (sent after each file; the totals are known once the folder is walked)."""

    files_done: int = 0
    files_total: int = 0
    pages_done: int = 0
    pages_total: int = 0
    pages_per_s: float = 0.0
    current_path: str | None = None  # the file being read
    failures: int = 0


@dataclass
class IndexReport:
    """One pass over a folder or a set of files: what changed (files), what could not be indexed, how long."""

    files_seen: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(
        default_factory=list, metadata={"description": "(path, why it could not be indexed) of files that failed"}
    )
    warnings: list[tuple[str, str]] = field(
        default_factory=list, metadata={"description": "(path, message) of files indexed with a warning"}
    )
    pages: int = 0
    pages_text: int = 0  # built from the PDF text layer
    pages_vision: int = 0  # encoded by the model
    seconds: float = 0.0

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else 0.0
