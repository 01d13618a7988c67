"""One image normalisation (tokensearch/imaging.py): every mode a page file can have becomes white-backed
8-bit pixels, and the indexer, both models and the API read pages through it."""

import numpy as np
import pytest
import torch
from PIL import Image

from tokensearch import imaging
from tokensearch.imaging import flatten, gray_levels

WHITE = (255, 255, 255)


def _ramp_rgba() -> Image.Image:
    """Every (value, alpha) pair: value along x, alpha along y."""
    value, alpha = np.meshgrid(np.arange(256), np.arange(256))
    return Image.fromarray(np.stack([value, value, value, alpha], -1).astype(np.uint8), "RGBA")


def test_rgba_is_composited_onto_white_as_alpha_composite_does():
    # the indexer and the API pasted with the alpha mask, the models used Image.alpha_composite: both
    # give the same bytes for every (value, alpha) pair, which is why one function could replace them
    rgba = _ramp_rgba()
    got = flatten(rgba)
    ref = Image.alpha_composite(Image.new("RGBA", rgba.size, (*WHITE, 255)), rgba).convert("RGB")
    assert got.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))
    arr = np.asarray(got)[..., 0].astype(int)
    assert (arr[0] == 255).all()  # alpha 0: white paper, whatever the colour underneath
    np.testing.assert_array_equal(arr[255], np.arange(256))  # opaque: the colour itself
    expected = np.arange(256) * 128 / 255 + 255 * 127 / 255  # half transparent: halfway to white
    assert np.abs(arr[128] - expected).max() <= 1


def test_gray_with_alpha_is_composited_onto_white():
    la = Image.fromarray(np.array([[[0, 0], [0, 255], [100, 255]]], np.uint8), "LA")  # (1, 3) pixels
    got = flatten(la)
    assert got.mode == "RGB" and [got.getpixel((x, 0)) for x in range(3)] == [WHITE, (0, 0, 0), (100,) * 3]
    assert flatten(la, keep_gray=True).mode == "RGB"  # alpha first: keep_gray keeps only opaque grey


def test_palette_transparent_index_is_white_other_indices_their_colour():
    p = Image.new("P", (3, 1))
    p.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    p.putdata([0, 1, 0])
    assert flatten(p).getpixel((0, 0)) == (0, 0, 0)  # no transparency: index 0 is black
    p.info["transparency"] = 0
    got = flatten(p)
    assert [got.getpixel((x, 0)) for x in range(3)] == [WHITE, (200, 10, 10), WHITE]
    assert imaging.has_alpha(p) and not imaging.has_alpha(Image.new("P", (1, 1)))


def test_sixteen_bit_scan_is_stretched_to_eight_bits():
    # a 12-bit scanner's page stored in 16 bits: read as is it would be nearly black
    scan = np.array([[0, 1000, 4095]], np.uint16)
    got = flatten(Image.fromarray(scan))
    assert got.mode == "RGB"
    assert [got.getpixel((x, 0))[0] for x in range(3)] == [0, int(255 * 1000 / 4095), 255]
    assert flatten(Image.fromarray(np.full((2, 2), 700, np.uint16))).size == (2, 2)  # no division by zero


def test_cmyk_is_pillows_rgb():
    cmyk = Image.frombytes("CMYK", (2, 1), bytes([0, 0, 0, 0, 0, 255, 255, 0]))
    got = flatten(cmyk)
    assert got.mode == "RGB" and [got.getpixel((x, 0)) for x in range(2)] == [WHITE, (255, 0, 0)]


def test_bilevel_and_gray_stay_one_channel_only_when_asked():
    bilevel = Image.new("1", (4, 2), 1)
    bilevel.putpixel((0, 0), 0)
    kept = flatten(bilevel, keep_gray=True)
    assert kept.mode == "L" and (kept.getpixel((0, 0)), kept.getpixel((1, 0))) == (0, 255)
    assert flatten(bilevel).mode == "RGB" and flatten(bilevel).getpixel((0, 0)) == (0, 0, 0)
    gray = Image.new("L", (4, 2), 90)
    assert flatten(gray, keep_gray=True) is gray  # nothing to do: no copy
    assert flatten(gray).getpixel((0, 0)) == (90, 90, 90)
    rgb = Image.new("RGB", (4, 2), (1, 2, 3))
    assert flatten(rgb) is rgb


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P+transparency", "CMYK", "1", "L", "RGB"])
def test_gray_levels_are_the_flattened_page_in_gray(mode):
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (6, 9, 4), dtype=np.uint8), "RGBA")
    if mode == "P+transparency":
        img = rgba.convert("RGB").quantize(16)
        img.info["transparency"] = 2
    else:
        img = rgba.convert(mode)
    want = np.asarray(flatten(img).convert("L"), np.float32) / 255
    np.testing.assert_allclose(gray_levels(img), want, atol=1e-7, rtol=0)


def test_gray_levels_keep_sixteen_bit_levels():
    scan = np.array([[0, 257 * 10, 65535]], np.uint16)
    np.testing.assert_allclose(gray_levels(Image.fromarray(scan)), [[0.0, 10 / 255, 1.0]], atol=1e-6)
    small = np.array([[0, 128, 255]], np.int32)  # an "I" image within 8-bit range: read as 8-bit levels
    np.testing.assert_allclose(gray_levels(Image.fromarray(small)), [[0.0, 128 / 255, 1.0]], atol=1e-6)


def test_every_stage_reads_pages_through_it(tmp_path):
    """The indexer, both models and the API see the same white-backed page for a transparent PNG."""
    from tokensearch.api.pages import heatmap_over_page
    from tokensearch.indexer.sources import DocumentReader
    from tokensearch.tokenocr_model import tiling
    from tokensearch.tokenocr_model.mini import image_to_tensor

    rgba = _ramp_rgba()
    rgba.save(tmp_path / "ramp.png")
    want = np.asarray(flatten(rgba))
    with DocumentReader(tmp_path / "ramp.png", 50_000_000) as reader:
        (page,) = list(reader.pages(150, use_text_layer=False, rescale=False))
        np.testing.assert_array_equal(np.asarray(page.image), want)
        np.testing.assert_array_equal(np.asarray(reader.render(1, 150)), want)
    tiles, _ = tiling.dynamic_preprocess(rgba, max_tiles=1, tile_size=256)
    np.testing.assert_array_equal(np.asarray(tiles[0]), want)
    torch.testing.assert_close(image_to_tensor(rgba)[0], torch.from_numpy(gray_levels(rgba)), atol=0, rtol=0)
    # the API's overlay: a map of zeros adds nothing but the fixed dimming, the same over both pages
    zeros = np.zeros((4, 4), np.float32)
    np.testing.assert_array_equal(
        np.asarray(heatmap_over_page(zeros, rgba)), np.asarray(heatmap_over_page(zeros, Image.fromarray(want)))
    )
