"""Pages of Chinese text for born-digital test PDFs (``write_pdf(path, CJK_PAGES)`` from tests/builders.py;
their true boxes: ``tests.builders.text_boxes``). No tests here.

PyMuPDF writes CJK text with its built-in fonts (``fontname="china-s"``: simplified Chinese) and
renders it too; every character of that font, Latin ones included, is 1 em wide. Glyph sizes are
chosen for the tiny test checkpoints, whose cells are ~25 pt on a Letter page at 150 dpi: 28 pt
characters get a cell each, and the 110 pt lines leave three cells per character for the three UTF-8
byte pieces of a character the tiny tokenizer never saw (华).
"""

from __future__ import annotations

from tests.builders import Page


def cjk_page(size: float, lines: list[str]) -> Page:
    """A Letter page of ``lines`` in the simplified Chinese font at ``size`` pt, 1.6 em apart."""
    return Page(lines, fontsize=size, fontname="china-s", x=40, y=60 + size, leading=1.6 * size)


# page 2 is English, in the same font
CJK_PAGES: list[Page] = [
    cjk_page(28, ["发票总金额为人民币一千二百元整", "付款日期：2020年12月11日", "订单号 INV-2023-0042", "已付款"]),
    cjk_page(28, ["Invoice total", "harbour crane"]),
    cjk_page(110, ["中华", "税率"]),
]
