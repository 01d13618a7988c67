"""Image pages whose lines lean are straightened for the model, and their features put back onto the page."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.boxes import iou
from tokensearch.indexer.skew import MIN_SKEW_DEG, skew_angle, straighten, unrotate_grid
from tokensearch.indexer.sources import DocumentReader
from tokensearch.samples import born_digital_pdf, rasterise_pdf
from tokensearch.tokenocr_model.interface import FeatureGrid


@pytest.fixture(scope="module")
def page() -> tuple[Image.Image, list]:
    pdf, words = born_digital_pdf(fontsize=11)
    return rasterise_pdf(pdf, 150)[0].convert("L"), [w for w in words if w.page == 1]


def turned_box(box, angle: float, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A normalised box of a page, where it lands once the page is turned by ``angle`` degrees as a
    crooked scan is (PIL's rotate, same canvas): the box around its turned corners."""
    w, h = size
    t = math.radians(angle)
    xs, ys = [], []
    for x, y in ((box[0], box[1]), (box[2], box[1]), (box[0], box[3]), (box[2], box[3])):
        dx, dy = x * w - w / 2, y * h - h / 2
        xs.append((w / 2 + dx * math.cos(t) + dy * math.sin(t)) / w)
        ys.append((h / 2 - dx * math.sin(t) + dy * math.cos(t)) / h)
    return min(xs), min(ys), max(xs), max(ys)


@pytest.mark.parametrize("angle", [3.5, -2.0, 6.0])
def test_a_page_scanned_a_few_degrees_off_is_measured_and_straightened(page, angle) -> None:
    img, _ = page
    crooked = img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    assert skew_angle(crooked) == pytest.approx(-angle, abs=0.3)
    straight, turned = straighten(crooked)
    assert turned == pytest.approx(-angle, abs=0.3)
    assert straight.width > crooked.width and straight.height > crooked.height  # no corner cut off
    assert skew_angle(straight) == 0.0  # straight now


def test_a_straight_or_blank_page_is_left_alone(page) -> None:
    img, _ = page
    for same in (img, img.rotate(0.5 * MIN_SKEW_DEG, fillcolor=255), Image.new("L", (1275, 1650), 255)):
        straight, turned = straighten(same)
        assert straight is same and turned == 0.0


def test_features_of_the_straightened_page_go_back_under_its_own_cells() -> None:
    """unrotate_grid: each cell of the page takes the straightened grid's cell showing the same spot, so
    a mark's cells land where the mark is on the page."""
    size, stride = (640, 480), 8
    gh, gw = size[1] // stride, size[0] // stride
    mark = (400, 96, 480, 136)  # px x0, y0, x1, y1
    img = Image.new("L", size, 255)
    img.paste(0, mark)
    angle = 7.0
    turned = img.rotate(angle, resample=Image.Resampling.NEAREST, expand=True, fillcolor=255)
    th, tw = -(-turned.height // stride), -(-turned.width // stride)
    dark = np.asarray(turned.resize((tw, th), Image.Resampling.BOX)) < 128
    feats = np.zeros((th, tw, 2), np.float32)
    feats[..., 0], feats[..., 1] = np.mgrid[0:th, 0:tw]  # each cell holds its own position
    grid = unrotate_grid(FeatureGrid(features=feats, text=dark.astype(np.float32)), angle, size, turned.size, (gh, gw))
    assert grid.shape == (gh, gw)
    ys, xs = np.nonzero(grid.text > 0.5)
    got = (xs.min() * stride, ys.min() * stride, (xs.max() + 1) * stride, (ys.max() + 1) * stride)
    assert iou(tuple(v / s for v, s in zip(got, size * 2)), tuple(v / s for v, s in zip(mark, size * 2))) > 0.7
    assert len(np.unique(grid.features[..., 0])) > 0.9 * gh  # cells come from across the turned grid


def test_the_reader_hands_out_the_straightened_image_with_the_page_size(page, tmp_path: Path) -> None:
    img, _ = page
    path = tmp_path / "crooked.png"
    img.rotate(4.0, resample=Image.Resampling.BICUBIC, fillcolor=255).save(path)
    with DocumentReader(path, max_page_pixels=10**8) as reader:
        (p,) = list(reader.pages(150, use_text_layer=False))
    assert p.skew == pytest.approx(-4.0, abs=0.3)
    assert (p.width, p.height) == img.size and p.image is not None and p.image.size != img.size
    with DocumentReader(path, max_page_pixels=10**8) as reader:  # --image-scale off: as the file is
        (p,) = list(reader.pages(150, use_text_layer=False, rescale=False))
    assert p.skew == 0.0 and p.image is not None and p.image.size == img.size


@pytest.mark.integration
def test_words_on_a_crooked_scan_are_found_and_boxed_where_the_scan_has_them(make_engine, page, tmp_path) -> None:
    img, words = page
    angle = 4.0
    folder = tmp_path / "scans"
    folder.mkdir()
    img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255).save(folder / "crooked.png")
    eng = make_engine(threshold=0.6)
    assert eng.index(folder).pages_vision == 1
    found = 0
    for w in words:
        if len(w.text) < 6 or not w.text.isalpha():
            continue
        hits = eng.search(w.text).hits
        if not hits:
            continue
        truths = [turned_box(v.box, angle, img.size) for v in words if v.text == w.text]
        best = max(iou(b, t) for b in hits[0].boxes for t in truths)
        assert best >= 0.3, (w.text, hits[0].boxes, truths)
        found += 1
    assert found >= 5
