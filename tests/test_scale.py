"""Large scans and photos are brought to the model's text size before encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.boxes import iou
from tokensearch.indexer.scale import CHAR_HEIGHT_AT_DPI, SHRINK_TO, char_height, normalise_scale, scale_factor
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
