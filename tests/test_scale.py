"""Large scans and photos are brought to the model's text size before encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

import tokensearch.indexer.sources as sources
from tests.boxes import iou
from tokensearch.indexer.scale import (
    CHAR_HEIGHT_AT_DPI,
    JPEG_DRAFT_ABOVE,
    SHRINK_TO,
    char_height,
    normalise_scale,
    scale_factor,
)
from tokensearch.indexer.sources import DocumentReader
from tokensearch.samples import born_digital_pdf, rasterise_pdf


@pytest.fixture(scope="module")
def renders() -> dict[int, Image.Image]:
    pdf, _ = born_digital_pdf(fontsize=11)
    return {dpi: rasterise_pdf(pdf, dpi)[0] for dpi in (150, 300)}


def test_char_height_follows_the_resolution(renders) -> None:
    h150, h300 = char_height(renders[150]), char_height(renders[300])
    assert h150 is not None and h300 is not None
    assert 1.7 < h300 / h150 < 2.3
    assert 0.6 < h150 / (CHAR_HEIGHT_AT_DPI * 150) < 1.6  # 11 pt text at 150 dpi is near the reference


def test_page_sized_images_are_left_alone(renders) -> None:
    assert scale_factor(renders[150], 150) == 1.0
    assert normalise_scale(renders[150], 150) is renders[150]


def test_a_300_dpi_scan_is_shrunk_to_the_reference_text_size(renders) -> None:
    out = normalise_scale(renders[300], 150)
    assert out.width < renders[300].width
    h = char_height(out)
    assert h is not None and abs(h / (SHRINK_TO * CHAR_HEIGHT_AT_DPI * 150) - 1) < 0.25


def test_a_photo_with_uneven_light_is_measured_like_a_scan(renders) -> None:
    img = np.asarray(renders[300].convert("L"), dtype=np.float32)
    h, w = img.shape
    light = np.linspace(0.45, 1.0, w)[None, :] * np.linspace(0.8, 1.0, h)[:, None]  # a lamp on the right
    photo = Image.fromarray((img * light).clip(0, 255).astype(np.uint8))
    ref = char_height(renders[300])
    got = char_height(photo)
    assert got is not None and abs(got / ref - 1) < 0.2


def test_an_image_smaller_than_a_page_with_large_print_is_shrunk(renders) -> None:
    # a receipt photo: no larger than a page, but its print twice the size of body text at 150 dpi
    w, h = renders[300].size
    strip = renders[300].crop((0, 0, w * 3 // 4, h // 2))
    assert max(strip.size) < 11 * 1.3 * 150
    assert scale_factor(strip, 150) < 0.8
    h_out = char_height(normalise_scale(strip, 150))
    assert h_out is not None and abs(h_out / (SHRINK_TO * CHAR_HEIGHT_AT_DPI * 150) - 1) < 0.25


def test_faint_thin_print_is_measured_like_dark_print(renders) -> None:
    # faded thermal print: strokes light gray, thin ones averaged lighter still in the small copy
    img = np.asarray(renders[300].convert("L"), dtype=np.float32)
    faint = Image.fromarray((255 - (255 - img) * 0.45).astype(np.uint8))  # black ink -> gray 140
    ref, got = char_height(renders[300]), char_height(faint)
    assert ref is not None and got is not None and abs(got / ref - 1) < 0.25


def test_a_large_image_without_text_is_brought_to_page_size() -> None:
    blank = Image.new("RGB", (4000, 3000), "white")
    out = normalise_scale(blank, 150)
    assert max(out.size) == pytest.approx(11 * 1.3 * 150, abs=2)


def _reader_page(path: Path, grey: bool = False) -> Image.Image:
    reader = DocumentReader(path, max_page_pixels=200_000_000)
    try:
        page = next(reader.pages(150, use_text_layer=False, grey=grey))
        assert page.image is not None and page.image.size == (page.width, page.height)
        return page.image
    finally:
        reader.close()


def _grey_difference(grey: Image.Image, colour: Image.Image) -> np.ndarray:
    """|grey page - the colour page turned grey| per pixel, for a grey page of the colour page's size."""
    assert grey.mode == "L" and grey.size == colour.size
    return np.abs(np.asarray(grey, dtype=np.float32) - np.asarray(colour.convert("L"), dtype=np.float32))


@pytest.fixture(scope="module")
def photo_jpeg(tmp_path_factory) -> tuple[Path, Image.Image]:
    """A 400 dpi page as a 14 MP JPEG (a phone photo's size), and its full decode brought to scale."""
    pdf, _ = born_digital_pdf(fontsize=11)
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    rasterise_pdf(pdf, 400)[0].save(path, quality=90)
    assert max(Image.open(path).size) >= JPEG_DRAFT_ABOVE
    with Image.open(path) as full:
        return path, normalise_scale(full.convert("RGB"), 150)


def test_a_large_jpeg_is_read_at_the_size_its_full_decode_would_be_shrunk_to(photo_jpeg) -> None:
    path, expected = photo_jpeg
    got = _reader_page(path)
    assert abs(got.width / expected.width - 1) < 0.05 and abs(got.height / expected.height - 1) < 0.05
    h = char_height(got)
    assert h is not None and abs(h / (SHRINK_TO * CHAR_HEIGHT_AT_DPI * 150) - 1) < 0.25
    # the same page, not merely the same size: a reduced decode shows what the full one shows
    same = np.asarray(expected.convert("L").resize(got.size, Image.Resampling.BOX), dtype=np.float32)
    assert np.abs(np.asarray(got.convert("L"), dtype=np.float32) - same).mean() < 6


def test_a_large_jpeg_is_never_decoded_whole(photo_jpeg, monkeypatch) -> None:
    # a 14 MP decode costs more than the model reading the page; libjpeg decodes 1/2 to 1/8 directly
    path, _ = photo_jpeg
    decoded: list[tuple[int, int]] = []
    load = JpegImagePlugin.JpegImageFile.load

    def recording_load(self):
        decoded.append(self.size)
        return load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording_load)
    _reader_page(path)
    full = Image.open(path).size
    assert decoded and all(w * 2 <= full[0] + 1 for w, _ in decoded)


def test_a_large_colour_jpeg_for_a_grey_model_is_decoded_as_its_luma_at_scale(photo_jpeg, monkeypatch) -> None:
    # libjpeg skips the chroma planes and the colour conversion: the page is one channel from the decoder on
    path, _ = photo_jpeg
    colour = _reader_page(path)
    decoded: list[str] = []
    load = JpegImagePlugin.JpegImageFile.load

    def recording_load(self):
        decoded.append(self.mode)
        return load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording_load)
    grey = _reader_page(path, grey=True)
    assert decoded and set(decoded) == {"L"}
    diff = _grey_difference(grey, colour)
    assert diff.mean() < 1.0 and diff.max() <= 8  # the luma libjpeg keeps is the grey Pillow computes


def test_a_large_colour_png_for_a_grey_model_is_shrunk_as_one_channel(photo_jpeg, tmp_path: Path, monkeypatch) -> None:
    # shrinking resamples every channel: a grey model's page turns grey first, and comes out as colour's grey
    path, _ = photo_jpeg
    png = tmp_path / "photo.png"
    with Image.open(path) as im:
        im.save(png)
    colour = _reader_page(png)
    shrunk: list[str] = []

    def recording_scale(img: Image.Image, dpi: float) -> Image.Image:
        shrunk.append(img.mode)
        return normalise_scale(img, dpi)

    monkeypatch.setattr(sources, "normalise_scale", recording_scale)
    grey = _reader_page(png, grey=True)
    assert shrunk == ["L"]
    assert _grey_difference(grey, colour).mean() < 1.0


def test_a_large_cmyk_jpeg_for_a_grey_model_comes_as_one_grey_channel(photo_jpeg, tmp_path: Path) -> None:
    # libjpeg has no luma-only decode of CMYK: the page is turned grey after decoding
    path, _ = photo_jpeg
    cmyk = tmp_path / "cmyk.jpg"
    with Image.open(path) as im:
        im.convert("CMYK").save(cmyk, quality=90)
    colour = _reader_page(cmyk)
    grey = _reader_page(cmyk, grey=True)
    assert _grey_difference(grey, colour).mean() < 1.0


def test_a_large_jpeg_turned_by_its_exif_orientation_is_read_upright_at_scale(photo_jpeg, tmp_path: Path) -> None:
    path, expected = photo_jpeg
    sideways = tmp_path / "sideways.jpg"
    with Image.open(path) as im:
        exif = Image.Exif()
        exif[0x0112] = 6  # stored turned a quarter: viewers (and the reader) turn it back 90 degrees clockwise
        im.transpose(Image.Transpose.ROTATE_90).save(sideways, quality=90, exif=exif)
    got = _reader_page(sideways)
    assert got.height > got.width  # upright: a portrait page
    assert abs(got.width / expected.width - 1) < 0.05 and abs(got.height / expected.height - 1) < 0.05


def test_a_measured_reduced_decode_gives_the_full_images_text_height(renders) -> None:
    big = renders[300]
    full = char_height(big)
    for k in (2, 4):  # what a decoder's 1/k decode looks like, near enough
        reduced = char_height(big.reduce(k), full=big.size)
        # within the estimate's own precision (a pixel of a 7 px blob on the working copy)
        assert full is not None and reduced is not None and abs(reduced / full - 1) < 0.15


@pytest.mark.integration  # the vision model end to end over a scan
def test_a_300_dpi_png_is_found_and_boxed_on_the_shrunk_page(make_engine, tmp_path: Path) -> None:
    pdf, words = born_digital_pdf()
    folder = tmp_path / "scans300"
    folder.mkdir()
    rasterise_pdf(pdf, 300)[0].save(folder / "scan300.png")
    eng = make_engine(home=tmp_path / "home", threshold=0.6)
    rep = eng.index(folder)
    assert rep.pages_vision == 1 and not rep.failed
    truth = [w.box for w in words if w.text == "INV-2023-0042" and w.page == 1]
    hits = eng.search("INV-2023-0042").hits
    assert hits and hits[0].width < 2550  # features were computed on the shrunk image
    assert max(iou(b, t) for b in hits[0].boxes for t in truth) >= 0.3
