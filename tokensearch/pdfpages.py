"""Facts about a PDF page that the indexer and the training data both need, in a module that imports
PyMuPDF alone: the training path (``training.from_pdfs``) must not import the indexer package, whose
``__init__`` brings in the pipeline and, through it, storage (SQLAlchemy, FAISS) — packages a lent GPU
machine does not have (docs/mini.md, "Training on a lent GPU"; tests/test_train_gpu_script.py)."""

from __future__ import annotations

import pymupdf


def image_coverage(page: pymupdf.Page) -> float:
    """Largest share of the page covered by one placed image (a scanned page is ~1.0)."""
    area = abs(page.rect)
    if area <= 0:
        return 0.0
    return max((abs(pymupdf.Rect(info["bbox"]) & page.rect) / area for info in page.get_image_info()), default=0.0)
