"""A sample folder generated on demand: a born-digital PDF, the same pages as an image-only PDF and as
PNG scans, a multi-page TIFF and a phone photo of the first page (tilted, unevenly lit, noisy JPEG with
an EXIF orientation). Used by the README's first command and by the tests, which also
need the true word boxes (normalised, origin top-left) to check where hits are drawn.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image, ImageFilter

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
    photo: Path  # a phone photo of page 1
    words: list[SampleWord] = field(default_factory=list)
    photo_words: list[SampleWord] = field(default_factory=list)  # page 1's words, boxed in the upright photo

    def boxes(self, word: str, page: int) -> list[tuple[float, float, float, float]]:
        return [w.box for w in self.words if w.text == word and w.page == page]

    def photo_boxes(self, word: str) -> list[tuple[float, float, float, float]]:
        return [w.box for w in self.photo_words if w.text == word]


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


def calibration_pages(dpi: float) -> list[Image.Image]:
    """The sample pages (an invoice, minutes) rendered at ``dpi``: the fixed pages the mini model's int8
    inference measures its activation ranges on, so every run quantizes the same way."""
    pdf, _ = born_digital_pdf()
    return rasterise_pdf(pdf, dpi=int(dpi))


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


PHOTO_DPI = 240  # the page's resolution in the photo: ~2000 px across the sheet, as a phone gives
PHOTO_TILT_DEG = 1.5  # counter-clockwise, as a hand-held shot is never square


def phone_photo(pdf: bytes, words: list[SampleWord], page: int = 1, seed: int = 0) -> tuple[bytes, list[SampleWord]]:
    """A phone photo of one page of ``pdf`` as JPEG bytes, and that page's words boxed in the upright photo.

    The sheet lies on a darker desk, tilted by :data:`PHOTO_TILT_DEG`, under light falling off towards
    one corner, with sensor noise and a slight blur. The pixels are stored turned a quarter (landscape
    sensor) with EXIF orientation 6, so a reader that ignores EXIF sees the page on its side.
    """
    rng = np.random.default_rng(seed)
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        pix = doc[page - 1].get_pixmap(dpi=PHOTO_DPI, alpha=False)
        sheet = Image.frombytes("RGB", (pix.width, pix.height), pix.samples)
    margin = (int(sheet.width * 0.08), int(sheet.height * 0.06))
    size = (sheet.width + 2 * margin[0], sheet.height + 2 * margin[1])
    canvas = Image.new("RGB", size, (92, 84, 76))  # desk
    canvas.paste(sheet, margin)
    canvas = canvas.rotate(PHOTO_TILT_DEG, resample=Image.Resampling.BICUBIC, fillcolor=(92, 84, 76))

    a = math.radians(PHOTO_TILT_DEG)  # PIL turns the picture counter-clockwise about its centre
    cx, cy = size[0] / 2, size[1] / 2

    def turn(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - cx, y - cy
        return cx + dx * math.cos(a) + dy * math.sin(a), cy - dx * math.sin(a) + dy * math.cos(a)

    boxed = []
    for w in (w for w in words if w.page == page):
        x0, y0 = margin[0] + w.box[0] * sheet.width, margin[1] + w.box[1] * sheet.height
        x1, y1 = margin[0] + w.box[2] * sheet.width, margin[1] + w.box[3] * sheet.height
        pts = [turn(x, y) for x in (x0, x1) for y in (y0, y1)]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        boxed.append(
            SampleWord(w.text, 1, (min(xs) / size[0], min(ys) / size[1], max(xs) / size[0], max(ys) / size[1]))
        )

    img = np.asarray(canvas.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    light = 1.0 - 0.35 * np.hypot(xx / size[0], yy / size[1]) / math.sqrt(2)  # darker towards bottom right
    img = img * light[..., None] * np.array([1.0, 0.97, 0.9], np.float32)  # warm indoor light
    img += rng.normal(0.0, 4.0, img.shape).astype(np.float32)
    photo = Image.fromarray(img.clip(0, 255).astype(np.uint8)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to view
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=85, exif=exif)
    return buf.getvalue(), boxed


def make_sample_folder(root: Path, dpi: int = 150) -> SampleFolder:
    """Write the sample documents under ``root`` (created) and return where everything is."""
    root.mkdir(parents=True, exist_ok=True)
    pdf, words = born_digital_pdf()
    images = rasterise_pdf(pdf, dpi)
    s = SampleFolder(
        root,
        root / "born-digital.pdf",
        root / "scanned.pdf",
        [root / "scans" / f"page-{i}.png" for i in range(1, len(images) + 1)],
        root / "scans" / "fax.tiff",
        root / "photos" / "invoice.jpg",
        words,
    )
    s.born_digital.write_bytes(pdf)
    s.image_pdf.write_bytes(image_only_pdf(images, dpi))
    (root / "scans").mkdir(exist_ok=True)
    for img, path in zip(images, s.pngs):
        img.save(path)
    images[0].convert("L").save(
        s.tiff,
        save_all=True,
        append_images=[im.convert("L") for im in images[1:]],
        compression="tiff_deflate",
        dpi=(dpi, dpi),
    )
    (root / "photos").mkdir(exist_ok=True)
    photo, s.photo_words = phone_photo(pdf, words)
    s.photo.write_bytes(photo)
    return s
