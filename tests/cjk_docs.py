"""Born-digital PDFs with Chinese text, and the true boxes of any part of their lines (no tests here).

PyMuPDF writes CJK text with its built-in fonts (``fontname="china-s"``: simplified Chinese) and
renders it too; every character of that font, Latin ones included, is 1 em wide. Glyph sizes are
chosen for the tiny test checkpoints, whose cells are ~25 pt on a Letter page at 150 dpi: 28 pt
characters get a cell each, and the 110 pt lines leave three cells per character for the three UTF-8
byte pieces of a character the tiny tokenizer never saw (华).
"""

from __future__ import annotations

from pathlib import Path

import pymupdf

# (font size, lines) per page; page 2 is English, in the same font
CJK_PAGES: list[tuple[float, list[str]]] = [
    (28, ["发票总金额为人民币一千二百元整", "付款日期：2020年12月11日", "订单号 INV-2023-0042", "已付款"]),
    (28, ["Invoice total", "harbour crane"]),
    (110, ["中华", "税率"]),
]


def write_cjk_pdf(path: Path, pages: list[tuple[float, list[str]]] = CJK_PAGES) -> Path:
    doc = pymupdf.open()
    for size, lines in pages:
        page = doc.new_page(width=612, height=792)
        for i, line in enumerate(lines):
            page.insert_text((40, 60 + size * (1 + 1.6 * i)), line, fontsize=size, fontname="china-s")
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    doc.close()
    return path


def text_boxes(pdf: Path, page_no: int, text: str) -> list[tuple[float, float, float, float]]:
    """Normalised boxes of every occurrence of ``text`` inside one line of a page (1-based): the union of
    its characters' boxes, from PyMuPDF's text extraction."""
    out = []
    with pymupdf.open(pdf) as doc:
        page = doc[page_no - 1]
        w, h = page.rect.width, page.rect.height
        for block in page.get_text("rawdict")["blocks"]:
            for line in block.get("lines", []):
                chars = [ch for span in line["spans"] for ch in span["chars"]]
                s = "".join(ch["c"] for ch in chars)
                start = s.find(text)
                while start >= 0:
                    bb = [ch["bbox"] for ch in chars[start : start + len(text)]]
                    out.append(
                        (
                            min(b[0] for b in bb) / w,
                            min(b[1] for b in bb) / h,
                            max(b[2] for b in bb) / w,
                            max(b[3] for b in bb) / h,
                        )
                    )
                    start = s.find(text, start + 1)
    return out
