"""Open a document file and stream its pages as images (+ the PDF text layer when there is one).

One place decides which files are documents: the content is sniffed (magic bytes) and decides how the
file is read; an extension that disagrees with it is a warning (:func:`extension_warning`), not a
failure. Every way a file can be bad becomes a :class:`BadDocument` with a reason a user can act on; the
pipeline records it and goes on with the rest of the folder. A damaged file whose pages can still be
read in part (a truncated PDF) is not bad: its readable pages are indexed and :attr:`DocumentReader.partial`
says what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymupdf
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BadDocument
from ..imaging import flatten
from ..pathnames import is_utf8
from ..pdfpages import image_coverage
from ..textnorm import normalise
from .scale import JPEG_DRAFT_ABOVE, load_jpeg_scaled, normalise_scale
from .skew import straighten

# extension -> kind; the content must agree (see sniff_kind)
EXTENSIONS: dict[str, str] = {
    ".pdf": "pdf",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
    ".bmp": "bmp",
}
_MAGIC: list[tuple[bytes, str]] = [
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
]


def sniff_kind(head: bytes) -> str | None:
    """The document kind from the first bytes of a file, or None if it is none we read."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    # PDFs may carry a little junk before the header (allowed by readers)
    if b"%PDF-" in head[:1024]:
        return "pdf"
    return None


# what PyMuPDF raises on a damaged file or page (its C++ errors do not derive from RuntimeError)
_MUPDF_ERRORS = (pymupdf.FileDataError, pymupdf.mupdf.FzErrorBase, RuntimeError, ValueError)
_KIND_NAMES = {"pdf": "PDF", "png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "webp": "WebP", "bmp": "BMP"}


def is_candidate(path: Path) -> bool:
    """A file the folder walk considers a document (by extension; content is checked on open)."""
    return path.suffix.lower() in EXTENSIONS and not path.name.startswith(".")


def extension_warning(path: Path, head: bytes) -> str | None:
    """Why ``path``'s extension disagrees with its content (``head``: its first bytes), or None. The
    content decides how the file is read; the mismatch is worth telling (a misnamed or mislabelled file)."""
    kind, expected = sniff_kind(head), EXTENSIONS.get(path.suffix.lower())
    if kind is None or expected is None or kind == expected:
        return None
    return (
        f"the extension {path.suffix!r} says {_KIND_NAMES[expected]}, the content is {_KIND_NAMES[kind]}: "
        f"indexed as {_KIND_NAMES[kind]}"
    )


def _mupdf_messages() -> list[str]:
    """MuPDF's warnings and errors since the last call (it keeps them for the process, not per document:
    with several documents read at once the attribution is best effort)."""
    return [line for line in pymupdf.TOOLS.mupdf_warnings(reset=True).splitlines() if line.strip()]


def _open_pdf(path: Path) -> pymupdf.Document:
    """PyMuPDF takes a file name only as UTF-8: a name that is not is read through its bytes instead."""
    pymupdf.TOOLS.mupdf_display_errors(False)  # its messages go into the document's record, not stderr
    _mupdf_messages()
    if is_utf8(str(path)):
        return pymupdf.open(path, filetype="pdf")
    return pymupdf.open(stream=path.read_bytes(), filetype="pdf")


def _page_ranges(pages: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    out: list[str] = []
    for p in sorted(set(pages)):
        if out and int(out[-1].rsplit("-", 1)[-1]) == p - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{p}"
        else:
            out.append(str(p))
    return ", ".join(out)


@dataclass
class TextChar:
    """One character of a PDF text layer with its box normalised to the page (origin top-left)."""

    c: str
    box: tuple[float, float, float, float]


@dataclass
class RasterPage:
    page_no: int  # 1-based
    image: Image.Image | None  # None for pages built from their text layer alone
    width: int  # raster size in px at the model's dpi (also for text-layer pages)
    height: int
    words: list[list[TextChar]] | None  # text layer as words in reading order, or None
    # degrees ``image`` was turned by to straighten its lines (:mod:`.skew`); it is then larger than
    # width x height, which stay the page's own size, as the features must be put back onto it
    skew: float = 0.0


class DocumentReader:
    """Pages of one file. ``page_count`` is cheap; pages are rendered lazily, one at a time."""

    def __init__(self, path: Path, max_page_pixels: int) -> None:
        self.path = path
        self.max_page_pixels = max_page_pixels
        self.kind = self._check(path)
        self._pdf: pymupdf.Document | None = None
        self._img: Image.Image | None = None
        self.repaired: str | None = None  # how a damaged file was repaired on opening
        self.missing: dict[int, str] = {}  # page -> why it could not be read (filled while reading)
        self.incomplete: dict[int, str] = {}  # page -> what went wrong reading it (read, but not all of it)
        try:
            if self.kind == "pdf":
                self._pdf = _open_pdf(path)
                if self._pdf.is_repaired:
                    self.repaired = "; ".join(dict.fromkeys(_mupdf_messages()[:2])) or "repaired on opening"
                if self._pdf.needs_pass or self._pdf.is_encrypted:
                    raise BadDocument("the PDF is encrypted (password protected); decrypt it to index it")
                if self._pdf.page_count == 0:
                    raise BadDocument("the PDF has no pages")
                self.page_count = self._pdf.page_count
            else:
                Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, with a clear message
                self._img = Image.open(path)
                self.page_count = getattr(self._img, "n_frames", 1) or 1
                self._check_pixels(*self._img.size)
        except BadDocument:
            self.close()
            raise
        except (*_MUPDF_ERRORS, UnidentifiedImageError, OSError) as e:
            self.close()
            raise BadDocument(f"cannot read the {self.kind.upper()} file: {e}") from e

    @staticmethod
    def _check(path: Path) -> str:
        try:
            size = path.stat().st_size
            with path.open("rb") as f:
                head = f.read(2048)
        except PermissionError as e:
            raise BadDocument(f"permission denied: {e.strerror}") from e
        except OSError as e:
            raise BadDocument(f"unreadable: {e.strerror or e}") from e
        if size == 0:
            raise BadDocument("the file is empty (0 bytes)")
        kind = sniff_kind(head)
        expected = EXTENSIONS.get(path.suffix.lower())
        if kind is None:
            raise BadDocument(
                f"not a {expected.upper() if expected else 'document'} file: its content is "
                "no PDF/PNG/JPEG/TIFF/WebP/BMP (wrong extension or corrupt)"
            )
        return kind

    def _check_pixels(self, w: int, h: int) -> None:
        if w <= 0 or h <= 0:
            raise BadDocument(f"absurd page size {w}x{h} px")
        if w * h > self.max_page_pixels:
            raise BadDocument(
                f"absurd pixel size {w}x{h} ({w * h / 1e6:.0f} MP > limit "
                f"{self.max_page_pixels / 1e6:.0f} MP; raise TOKENSEARCH_MAX_PAGE_PIXELS to allow it)"
            )

    @property
    def partial(self) -> str | None:
        """Why the pages read so far are not the whole document (None: nothing is known to be missing)."""
        if self.repaired is None and not self.missing and not self.incomplete:
            return None
        parts = [f"damaged {self.kind.upper()} file (truncated or corrupt)"]
        if self.repaired:
            parts.append(f"repaired on opening: {self.repaired}")
        for pages, what in ((self.missing, "not indexed"), (self.incomplete, "incomplete")):
            if pages:
                parts.append(f"page(s) {_page_ranges(list(pages))} {what} ({next(iter(pages.values()))})")
        return "; ".join(parts) + "; the pages that could be read are indexed"

    @property
    def family(self) -> str:
        """ "pdf" or "image" (what the store records as the document kind)."""
        return "pdf" if self.kind == "pdf" else "image"

    def pages(
        self, dpi: float, use_text_layer: bool, min_text_chars: int = 16, rescale: bool = True, grey: bool = False
    ) -> Iterator[RasterPage]:
        """Yield pages in order. PDF pages with a usable text layer come without an image; a text layer
        shorter than ``min_text_chars`` on a page that is mostly one image (a scan) is not used.
        ``rescale``: images larger than a page at ``dpi`` are shrunk to the model's text size
        (:mod:`.scale`), and images whose lines lean are straightened (:mod:`.skew`); the page's
        width/height are those of the (shrunk) page, before it is straightened. ``grey`` (a model that reads
        grey levels, ``TokenEncoder.grey``): page images come as one channel ("L"), a colour JPEG decoded
        as its luma alone and a PDF page rendered grey: decoding, shrinking and straightening a photo's
        three channels cost receipts a third of their indexing time on a CPU without VNNI."""
        if self._pdf is not None:
            n_read = 0
            for i in range(self.page_count):
                try:
                    page = self._pdf[i]
                    _mupdf_messages()  # what loading the page tree said is about the file (see repaired)
                    if self.repaired and not page.get_contents():  # a page-tree entry whose page was cut off
                        self.missing[i + 1] = "missing from the file"
                        continue
                    zoom = dpi / 72.0
                    w, h = int(round(page.rect.width * zoom)), int(round(page.rect.height * zoom))
                    self._check_pixels(w, h)
                    words = pdf_text_words(page) if use_text_layer else None
                    if (
                        words is not None
                        and sum(len(wd) for wd in words) < min_text_chars
                        and image_coverage(page) > 0.5
                    ):
                        words = None  # a scan with a stamp or a page number as its only text: read the image
                    image = None if words is not None else render_pdf_page(page, dpi, grey)
                except _MUPDF_ERRORS as e:  # a damaged page: skip it alone
                    self.missing[i + 1] = f"unreadable: {e}"
                    continue
                messages = _mupdf_messages()
                if messages:
                    self.incomplete[i + 1] = messages[-1]
                skew = 0.0
                if image is not None and rescale:
                    image = normalise_scale(image, dpi)
                    w, h = image.size
                    image, skew = straighten(image)
                n_read += 1
                yield RasterPage(i + 1, image, w, h, words, skew)
            if n_read == 0:
                raise BadDocument(f"no page of the PDF can be read ({self.partial})")
        else:
            assert self._img is not None
            for i in range(self.page_count):
                try:
                    self._img.seek(i)
                    self._check_pixels(*self._img.size)
                    jpeg = self._img.format == "JPEG"
                    if rescale and jpeg and max(self._img.size) >= JPEG_DRAFT_ABOVE:
                        img = load_jpeg_scaled(self.path, dpi, lambda frame: _page_image(frame, grey), grey)
                    else:
                        if grey and jpeg:  # libjpeg then skips the chroma planes and the colour conversion
                            self._img.draft("L", self._img.size)
                        img = _page_image(self._img, grey)
                        if rescale:
                            img = normalise_scale(img, dpi)
                except (OSError, EOFError) as e:
                    if i == 0:
                        raise BadDocument(f"image data is corrupt (frame {i + 1}): {e}") from e
                    # a truncated multi-page TIFF: the frames before are kept
                    self.missing.update({j + 1: f"unreadable: {e}" for j in range(i, self.page_count)})
                    return
                w, h = img.size
                img, skew = straighten(img) if rescale else (img, 0.0)
                yield RasterPage(i + 1, img, w, h, None, skew)

    def render(self, page_no: int, dpi: float) -> Image.Image:
        """One page (1-based) as an RGB image, PDF pages rasterised at ``dpi`` (for display)."""
        if not 1 <= page_no <= self.page_count:
            raise BadDocument(f"page {page_no} is out of range 1..{self.page_count}")
        if self._pdf is not None:
            return render_pdf_page(self._pdf[page_no - 1], dpi)
        assert self._img is not None
        self._img.seek(page_no - 1)
        return _to_rgb(self._img)

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
            self._pdf = None
        if self._img is not None:
            self._img.close()
            self._img = None

    def __enter__(self) -> DocumentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_rgb(frame: Image.Image, keep_gray: bool = False) -> Image.Image:
    """Upright (EXIF orientation applied: phone photos are stored sideways), flattened onto white by
    :func:`tokensearch.imaging.flatten` (``keep_gray``: a grey or bilevel scan stays one channel); loads
    the pixels now, so the page outlives the file."""
    frame.load()
    return flatten(ImageOps.exif_transpose(frame), keep_gray=keep_gray)


def _page_image(frame: Image.Image, grey: bool) -> Image.Image:
    """A decoded frame as the model reads it: flattened, a grey scan kept one channel, and every page one grey
    channel for a model that reads grey (a CMYK JPEG has no luma-only decode) -- before shrinking, so one
    channel is resampled rather than three."""
    img = _to_rgb(frame, keep_gray=True)
    return img.convert("L") if grey and img.mode != "L" else img


def render_pdf_page(page: pymupdf.Page, dpi: float, grey: bool = False) -> Image.Image:
    """Rasterise a PDF page to RGB (``grey``: one grey channel, "L") at ``dpi``."""
    pix = page.get_pixmap(dpi=int(round(dpi)), alpha=False, colorspace=pymupdf.csGRAY if grey else pymupdf.csRGB)
    mode = "L" if grey else "RGB"
    return Image.frombytes(mode, (pix.width, pix.height), pix.samples, "raw", mode, pix.stride)


def pdf_text_words(page: pymupdf.Page) -> list[list[TextChar]] | None:
    """The page's text layer as words (lists of characters with normalised boxes) in reading order.

    Returns None when the page has no text layer worth using (no characters, or mostly unmapped glyphs).
    """
    W, H = page.rect.width, page.rect.height
    if W <= 0 or H <= 0:
        return None
    # ligatures kept as one glyph ("ﬁ" with its box) and spelt out by normalise() below: PyMuPDF's own
    # expansion can drop a letter ("identiﬁer" -> "identifer")
    flags = pymupdf.TEXT_PRESERVE_LIGATURES | pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP
    raw = page.get_text("rawdict", flags=flags)
    words: list[list[TextChar]] = []
    total = bad = 0
    for block in raw.get("blocks", []):
        for line in block.get("lines", []):
            cur: list[TextChar] = []
            for span in line.get("spans", []):
                for ch in span.get("chars", []):
                    c = normalise(ch["c"])  # "ﬁ" -> "fi", "’" -> "'": spelt as a query spells it
                    total += 1
                    if c == "\ufffd":
                        bad += 1
                    if c.isspace():
                        if cur:
                            words.append(cur)
                        cur = []
                        continue
                    x0, y0, x1, y1 = ch["bbox"]
                    box = (max(0.0, x0 / W), max(0.0, y0 / H), min(1.0, x1 / W), min(1.0, y1 / H))
                    if box[2] <= box[0] or box[3] <= box[1]:
                        continue
                    # words positioned without a space character: a gap wider than ~1/4 em splits them
                    if cur and (box[0] - cur[-1].box[2]) * W > 0.25 * (y1 - y0):
                        words.append(cur)
                        cur = []
                    cur.append(TextChar(c, box))
            if cur:
                words.append(cur)
    if total == 0 or bad > 0.1 * total or not words:
        return None
    return words
