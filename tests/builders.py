"""The one builder of test documents: born-digital PDFs written with PyMuPDF, and the true boxes of their text.

A document is a list of pages. A page is a :class:`Page`, or just its lines (a list of str, laid out with
the keyword arguments of :func:`pdf_bytes` / :func:`write_pdf`, which are :class:`Page`'s fields). A str
line goes under the one before it; a :class:`Text` goes where it says, in its own font. Coordinates are
PDF points, origin top-left, ``y`` the baseline; the defaults are a US Letter page in Helvetica 13 pt.

    write_pdf(tmp_path / "a.pdf", [["first page", "its second line"], ["second page"]])
    pdf_bytes([Page(["small print"], width=200, height=150, fontsize=9)])
    pdf_bytes([Page([Text(40, 60, "Col A", fontname="cour"), Text(200, 60, "Col B", fontname="cour")])])
    pdf_bytes([Page(["p. 3"], scan=Image.new("RGB", (20, 20)))])   # a stamp of text on a full-page picture
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pymupdf
from PIL import Image

Box = tuple[float, float, float, float]  # normalised x0, y0, x1, y1
A4 = {"width": 595, "height": 842}  # PyMuPDF's default page size (Page's default is US Letter: 612 x 792)


@dataclass(frozen=True)
class Text:
    """One line of text with its baseline starting at (x, y)."""

    x: float
    y: float
    text: str
    fontsize: float = 13
    fontname: str = "helv"


@dataclass(frozen=True)
class Page:
    """A page of lines: the first str line's baseline starts at (x, y), each next one ``leading`` lower."""

    lines: Sequence[str | Text] = ()
    width: float = 612
    height: float = 792
    fontsize: float = 13
    fontname: str = "helv"  # PyMuPDF's built-in fonts: helv, tiro, cour, china-s (simplified Chinese), ...
    x: float = 60
    y: float = 80
    leading: float = 28
    scan: Image.Image | None = None  # a picture covering the whole page, under the text (a scanned page)

    def draw(self, doc: pymupdf.Document) -> None:
        page = doc.new_page(width=self.width, height=self.height)
        if self.scan is not None:
            buf = io.BytesIO()
            self.scan.save(buf, format="PNG")
            page.insert_image(page.rect, stream=buf.getvalue())
        for i, line in enumerate(self.lines):
            if isinstance(line, str):
                line = Text(self.x, self.y + i * self.leading, line, self.fontsize, self.fontname)
            page.insert_text((line.x, line.y), line.text, fontsize=line.fontsize, fontname=line.fontname)


def pdf_bytes(pages: Iterable[Page | Sequence[str | Text]], *, password: str | None = None, **layout) -> bytes:
    """A PDF of ``pages``; ``layout`` (Page's fields) sets out the pages given as lists of lines (a
    :class:`Page` keeps its own). ``password``:
    encrypted with AES-256, the password needed to open it."""
    doc = pymupdf.open()
    for p in pages:
        (p if isinstance(p, Page) else Page(p, **layout)).draw(doc)
    if password is None:
        data = doc.tobytes()
    else:
        data = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password, owner_pw=password)
    doc.close()
    return data


def write_pdf(path: Path, pages: Iterable[Page | Sequence[str | Text]], **kw) -> Path:
    """:func:`pdf_bytes` written to ``path`` (its folder made if need be); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf_bytes(pages, **kw))
    return path


def word_boxes(pdf: Path, page_no: int, word: str) -> list[Box]:
    """True normalised boxes of ``word`` on a page (1-based), from PyMuPDF's text extraction."""
    with pymupdf.open(pdf) as doc:
        page = doc[page_no - 1]
        w, h = page.rect.width, page.rect.height
        return [
            (x0 / w, y0 / h, x1 / w, y1 / h)
            for x0, y0, x1, y1, text, *_ in page.get_text("words")
            if text.strip(".,:") == word
        ]


def text_boxes(pdf: Path, page_no: int, text: str) -> list[Box]:
    """Normalised boxes of every occurrence of ``text`` inside one line of a page (1-based): the union of
    its characters' boxes, from PyMuPDF's text extraction (for text without spaces between words, e.g.
    Chinese)."""
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
