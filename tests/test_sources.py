"""Opening documents: every kind of bad file becomes a BadDocument with a reason a user can act on."""

from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from tests.builders import A4, Page, Text, pdf_bytes, write_pdf
from tokensearch.errors import BadDocument
from tokensearch.indexer.sources import DocumentReader, pdf_text_words, sniff_kind
from tokensearch.samples import born_digital_pdf, rasterise_pdf

SCAN = Image.new("RGB", (20, 20), (128, 128, 128))  # a tiny picture stretched over the whole page


def _reader(path: Path, max_pixels: int = 50_000_000) -> DocumentReader:
    return DocumentReader(path, max_pixels)


def test_sniff_recognises_every_supported_kind(tmp_path):
    img = Image.new("RGB", (8, 8), "white")
    for fmt, kind in [("PNG", "png"), ("JPEG", "jpeg"), ("TIFF", "tiff"), ("WEBP", "webp"), ("BMP", "bmp")]:
        p = tmp_path / f"x.{fmt.lower()}"
        img.save(p, format=fmt)
        assert sniff_kind(p.read_bytes()[:64]) == kind
    assert sniff_kind(b"%PDF-1.7\n") == "pdf"
    assert sniff_kind(b"hello") is None


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty"),
        (b"this is plain text, not a PDF", "not a PDF"),
        (b"%PDF-1.7\n garbage garbage", "cannot read"),
    ],
)
def test_bad_pdf_files_have_clear_reasons(tmp_path, content, reason):
    p = tmp_path / "bad.pdf"
    p.write_bytes(content)
    with pytest.raises(BadDocument, match=reason):
        _reader(p)


def test_encrypted_pdf_is_refused(tmp_path):
    p = write_pdf(tmp_path / "locked.pdf", [Page([Text(50, 50, "secret", fontsize=11)], **A4)], password="pw")
    with pytest.raises(BadDocument, match="encrypted"):
        _reader(p)


def test_absurd_pixel_size_is_refused(tmp_path):
    p = tmp_path / "huge.png"
    Image.new("L", (4000, 3000), 255).save(p)
    with pytest.raises(BadDocument, match="absurd pixel size"):
        _reader(p, max_pixels=1_000_000)


def test_truncated_image_is_reported(tmp_path):
    p = tmp_path / "cut.png"
    Image.fromarray(np.random.randint(0, 255, (300, 300), dtype=np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:400])
    with pytest.raises(BadDocument):
        with _reader(p) as r:
            list(r.pages(150, True))


def test_multipage_tiff_yields_every_frame(tmp_path):
    p = tmp_path / "multi.tiff"
    frames = [Image.new("L", (50, 60), v) for v in (0, 128, 255)]
    frames[0].save(p, save_all=True, append_images=frames[1:])
    with _reader(p) as r:
        pages = list(r.pages(150, True))
    assert [pg.page_no for pg in pages] == [1, 2, 3]
    assert all(pg.image.mode == "L" and pg.image.size == (50, 60) for pg in pages)  # gray stays gray


def test_images_are_flattened_to_rgb_or_kept_gray(tmp_path):
    cases = {
        "gray.png": Image.new("L", (40, 30), 90),
        "bilevel.tiff": Image.new("1", (40, 30), 0),
        "rgba.png": Image.new("RGBA", (40, 30), (0, 0, 0, 0)),
        "palette.png": Image.new("P", (40, 30), 3),
    }
    want = {"gray.png": ("L", 90), "bilevel.tiff": ("L", 0), "rgba.png": ("RGB", (255, 255, 255))}
    for name, img in cases.items():
        img.save(tmp_path / name)
        with _reader(tmp_path / name) as r:
            (pg,) = list(r.pages(150, True))
            shown = r.render(1, 150)
        assert shown.mode == "RGB"  # for display, always RGB
        if name in want:
            assert (pg.image.mode, pg.image.getpixel((5, 5))) == want[name]
        else:
            assert pg.image.mode == "RGB"


def test_a_grey_model_gets_every_page_as_the_grey_of_its_colour_page(tmp_path):
    # a model that reads grey (TokenEncoder.grey) is handed one channel from the start: a colour JPEG's luma,
    # a PDF page rendered grey; the same levels as the colour page turned grey afterwards
    pdf, _ = born_digital_pdf(fontsize=11)
    page = np.asarray(rasterise_pdf(pdf, 100)[0].convert("RGB"), np.float32)
    art = Image.fromarray((page * [1.0, 0.93, 0.8]).astype(np.uint8))  # yellowed paper, brown ink
    rgba = art.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(art.size))
    art.save(tmp_path / "photo.jpg", quality=95)
    rgba.save(tmp_path / "clear.png")
    art.quantize(64).save(tmp_path / "palette.png")
    doc = pymupdf.open()
    page_pdf = doc.new_page(**A4)
    page_pdf.insert_image(page_pdf.rect, filename=str(tmp_path / "photo.jpg"))
    doc.save(tmp_path / "scan.pdf")
    for name in ["photo.jpg", "clear.png", "palette.png", "scan.pdf"]:
        pages = []
        for grey in (False, True):
            with _reader(tmp_path / name) as r:
                (pg,) = list(r.pages(150, False, grey=grey))
                pages.append(pg.image)
        colour, grey_page = pages
        assert colour.mode == "RGB" and grey_page.mode == "L", name
        assert grey_page.size == colour.size, name
        diff = np.abs(np.asarray(grey_page, np.float32) - np.asarray(colour.convert("L"), np.float32))
        assert diff.mean() < 1.0 and diff.max() <= 8, (name, diff.mean(), diff.max())


def test_text_layer_words_match_pdf_word_boxes(tmp_path):
    data, words = born_digital_pdf()
    with pymupdf.open(stream=data, filetype="pdf") as doc:
        got = pdf_text_words(doc[0])
    texts = ["".join(c.c for c in w) for w in got]
    assert texts[:2] == ["INVOICE", "INV-2023-0042"]
    first = got[0]
    x0, y0 = first[0].box[:2]
    truth = [w for w in words if w.text == "INVOICE"][0].box
    assert abs(x0 - truth[0]) < 0.01 and abs(y0 - truth[1]) < 0.02


def test_image_only_pdf_page_has_no_text_layer(tmp_path):
    with pymupdf.open(stream=pdf_bytes([Page(**A4, scan=SCAN)]), filetype="pdf") as doc:
        assert pdf_text_words(doc[0]) is None


def _pdf_pages(tmp_path: Path, with_scan: bool, text: str) -> list:
    # with_scan: a full-page scanned image with a small stamp of real text on top
    page = Page([Text(72, 72, text, fontsize=12)], **A4, scan=SCAN if with_scan else None)
    path = write_pdf(tmp_path / f"doc_{with_scan}.pdf", [page])
    with _reader(path) as r:
        return list(r.pages(150, use_text_layer=True))


def test_short_text_layer_of_a_born_digital_page_is_used(tmp_path):
    (page,) = _pdf_pages(tmp_path, with_scan=False, text="Total: 42")
    assert page.words is not None and page.image is None


def test_short_stamp_on_a_scanned_page_does_not_hide_the_scan(tmp_path):
    (page,) = _pdf_pages(tmp_path, with_scan=True, text="p. 3")
    assert page.words is None and page.image is not None
    (page,) = _pdf_pages(tmp_path, with_scan=True, text="An OCR text layer long enough to be trusted")
    assert page.words is not None


def test_phone_photo_is_read_upright_from_its_exif_orientation(tmp_path):
    upright = Image.new("RGB", (60, 100), "white")
    upright.paste((0, 0, 0), (0, 0, 60, 10))  # a dark band at the top of the upright page
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # how the camera wrote the pixels (100 x 60)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    p = tmp_path / "photo.jpg"
    stored.save(p, exif=exif, quality=95)
    with _reader(p) as r:
        page = next(r.pages(150, True))
        shown = r.render(1, 150)
    assert page.image.size == (60, 100) and (page.width, page.height) == (60, 100)
    a = np.asarray(page.image.convert("L"))
    assert a[:10].mean() < 60 and a[20:].mean() > 200  # the band is on top again
    assert shown.size == (60, 100)
