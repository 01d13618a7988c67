"""A sample folder generated on demand: a born-digital PDF, the same pages as an image-only PDF and as
PNG scans, plus a multi-page TIFF. Used by the README's first command and by the tests, which also
need the true word boxes (normalised, origin top-left) to check where hits are drawn.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pymupdf
from PIL import Image

PAGES: list[list[str]] = [
    [
        "INVOICE INV-2023-0042",
        "Date: 11/12/2020",
        "Bill to: Harbour Logistics Ltd, 14 Quay Street, Bristol",
        "Description                     Qty      Amount",
        "Container inspection            2        480.00",
        "Refrigerated storage            5       1250.00",
        "Total due                                1730.00",
        "Payment within thirty days to account GB29 NWBK 6016 1331 9268 19.",
    ],
    [
        "Meeting minutes of the steering committee",
        "The committee reviewed the quarterly maintenance schedule",
        "and approved the replacement of the harbour crane.",
        "Action: the engineer will order spare parts before March.",
        "Next meeting: Thursday afternoon in the blue conference room.",
    ],
]


@dataclass
class SampleWord:
    text: str
    page: int  # 1-based
    box: tuple[float, float, float, float]  # normalised


@dataclass
class SampleFolder:
    root: Path
    born_digital: Path
    image_pdf: Path
    pngs: list[Path]
    tiff: Path
    words: list[SampleWord] = field(default_factory=list)

    def boxes(self, word: str, page: int) -> list[tuple[float, float, float, float]]:
        return [w.box for w in self.words if w.text == word and w.page == page]


def born_digital_pdf(pages: list[list[str]] = PAGES, fontsize: float = 13) -> tuple[bytes, list[SampleWord]]:
    """A Letter-size PDF with one line of text per entry, and the true boxes of its words."""
    doc = pymupdf.open()
    words: list[SampleWord] = []
    for pno, lines in enumerate(pages, 1):
        page = doc.new_page(width=612, height=792)
        y = 90.0
        for line in lines:
            page.insert_text((60, y), line, fontsize=fontsize, fontname="helv")
            y += fontsize * 2.2
        for x0, y0, x1, y1, text, *_ in page.get_text("words"):
            words.append(SampleWord(text, pno, (x0 / 612, y0 / 792, x1 / 612, y1 / 792)))
    data = doc.tobytes()
    doc.close()
    return data, words


def rasterise_pdf(pdf: bytes, dpi: int = 150) -> list[Image.Image]:
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        out = []
        for page in doc:
            pix = page.get_pixmap(dpi=dpi, alpha=False)
            out.append(Image.frombytes("RGB", (pix.width, pix.height), pix.samples))
        return out


def image_only_pdf(images: list[Image.Image], dpi: int = 150) -> bytes:
    """A PDF whose pages are only pictures (no text layer), like a scanner makes."""
    doc = pymupdf.open()
    for img in images:
        w, h = img.width * 72 / dpi, img.height * 72 / dpi
        page = doc.new_page(width=w, height=h)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        page.insert_image(page.rect, stream=buf.getvalue())
    data = doc.tobytes()
    doc.close()
    return data


def make_sample_folder(root: Path, dpi: int = 150) -> SampleFolder:
    """Write the sample documents under ``root`` (created) and return where everything is."""
    root.mkdir(parents=True, exist_ok=True)
    pdf, words = born_digital_pdf()
    images = rasterise_pdf(pdf, dpi)
    s = SampleFolder(root, root / "born-digital.pdf", root / "scanned.pdf",
                     [root / "scans" / f"page-{i}.png" for i in range(1, len(images) + 1)],
                     root / "scans" / "fax.tiff", words)
    s.born_digital.write_bytes(pdf)
    s.image_pdf.write_bytes(image_only_pdf(images, dpi))
    (root / "scans").mkdir(exist_ok=True)
    for img, path in zip(images, s.pngs):
        img.save(path)
    images[0].convert("L").save(s.tiff, save_all=True, append_images=[im.convert("L") for im in images[1:]],
                                compression="tiff_deflate", dpi=(dpi, dpi))
    return s
