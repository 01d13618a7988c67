"""TokenOCR dynamic tiling, normalisation, stitching and cell geometry on known sizes."""

import numpy as np
import pytest
import torch
from PIL import Image

from tokensearch.tokenocr_model import tiling


def test_candidate_grids_cover_1_to_12_tiles_ordered_by_count():
    grids = tiling.candidate_grids(1, 12)
    assert all(1 <= c * r <= 12 for c, r in grids)
    counts = [c * r for c, r in grids]
    assert counts == sorted(counts)
    assert len(grids) == len(set(grids)) == sum(len([d for d in range(1, n + 1) if n % d == 0]) for n in range(1, 13))
    with pytest.raises(ValueError):
        tiling.candidate_grids(0, 12)


@pytest.mark.parametrize(
    "size, grid",
    [
        ((448, 448), (1, 1)),  # square, small: (2,2) ties but the area is too small to prefer it
        ((500, 500), (1, 1)),  # 250,000 px <= half of 2x2 tiles (401,408 px)
        ((1000, 1000), (3, 3)),  # ties (1,1),(2,2),(3,3): area 1e6 > half of 4 and of 9 tiles -> largest
        ((896, 448), (2, 1)),
        ((448, 1344), (1, 3)),
        ((1275, 1650), (3, 4)),  # US letter at 150 dpi: ratio 0.773 -> 3x4 (0.75)
        ((1240, 1754), (2, 3)),  # A4 at 150 dpi: 0.707 -> 2x3 (0.667, diff .040) beats 3x4 (0.75, .043)
        ((5000, 100), (12, 1)),  # extreme strip
        ((100, 5000), (1, 12)),
        ((1600, 900), (4, 2)),  # 16:9: 2x1 and 4x2 tie (2.0); 1.44 Mpx > half of 8 tiles -> 4x2
    ],
)
def test_closest_grid_known_sizes(size, grid):
    assert tiling.closest_grid(*size) == grid


def test_closest_grid_tie_rule_prefers_later_only_for_big_images():
    # aspect exactly 1: candidates (1,1), (2,2), (3,3) all tie with diff 0
    assert tiling.closest_grid(600, 600) == (1, 1)  # 360,000 < 401,408
    assert tiling.closest_grid(700, 700) == (2, 2)  # 490,000 > 401,408 but < 903,168
    assert tiling.closest_grid(700, 700, max_tiles=3) == (1, 1)


def _ramp_image(w, h):
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8), "RGB")


def test_single_tile_has_no_thumbnail():
    tiles, grid = tiling.dynamic_preprocess(_ramp_image(300, 280), use_thumbnail=True)
    assert grid == (1, 1) and len(tiles) == 1 and tiles[0].size == (448, 448)


def test_multi_tile_row_major_crops_plus_thumbnail():
    img = _ramp_image(900, 430)  # -> (2, 1)
    tiles, (cols, rows) = tiling.dynamic_preprocess(img, use_thumbnail=True)
    assert (cols, rows) == (2, 1) and len(tiles) == 3
    resized = img.resize((896, 448), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(tiles[0]), np.asarray(resized.crop((0, 0, 448, 448))))
    assert np.array_equal(np.asarray(tiles[1]), np.asarray(resized.crop((448, 0, 896, 448))))
    assert np.array_equal(np.asarray(tiles[2]), np.asarray(img.resize((448, 448), Image.Resampling.BICUBIC)))
    no_thumb, _ = tiling.dynamic_preprocess(img, use_thumbnail=False)
    assert len(no_thumb) == 2


def test_tiles_of_a_2x3_grid_are_row_major():
    img = _ramp_image(900, 1340)  # ratio .67 -> (2, 3)
    tiles, (cols, rows) = tiling.dynamic_preprocess(img, use_thumbnail=False)
    assert (cols, rows) == (2, 3)
    means = np.array([np.asarray(t, np.float32).mean(axis=(0, 1)) for t in tiles])
    # red grows with x (column), green with y (row)
    assert means[1, 0] > means[0, 0] and means[2, 1] > means[0, 1] and means[4, 1] > means[2, 1]


def test_normalize_tiles_matches_imagenet_constants():
    white = Image.new("RGB", (448, 448), (255, 255, 255))
    arr = tiling.normalize_tiles([white, Image.new("L", (448, 448), 0)])
    assert arr.shape == (2, 3, 448, 448) and arr.dtype == np.float32
    want_white = (1 - np.array(tiling.IMAGENET_MEAN)) / np.array(tiling.IMAGENET_STD)
    assert np.allclose(arr[0, :, 10, 10], want_white, atol=1e-6)
    assert np.allclose(arr[1, :, 0, 0], -np.array(tiling.IMAGENET_MEAN) / np.array(tiling.IMAGENET_STD), atol=1e-6)


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    tiles, _ = tiling.dynamic_preprocess(rgba)
    assert tiles[0].mode == "RGB" and tiles[0].getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_stitch_tiles_row_major(lib):
    cols, rows, h, w = 3, 2, 4, 5
    tiles = np.stack([np.full((h, w, 2), i, np.float32) for i in range(cols * rows)])
    if lib == "torch":
        tiles = torch.from_numpy(tiles)
    grid = tiling.stitch_tiles(tiles, cols, rows)
    grid = np.asarray(grid)
    assert grid.shape == (rows * h, cols * w, 2)
    for i in range(cols * rows):
        r, c = divmod(i, cols)
        assert (grid[r * h : (r + 1) * h, c * w : (c + 1) * w] == i).all()
    with pytest.raises(ValueError, match="thumbnail"):
        tiling.stitch_tiles(tiles[:5], cols, rows)


def test_stitch_2d_maps():
    maps = torch.arange(4 * 2 * 2, dtype=torch.float32).reshape(4, 2, 2)
    grid = tiling.stitch_tiles(maps, 2, 2)
    assert grid.shape == (4, 4) and grid[0, 2] == maps[1, 0, 0] and grid[2, 0] == maps[2, 0, 0]


def test_cell_geometry_maps_back_to_page():
    grid_hw, page_wh = (512, 384), (1275, 1650)  # a 3x4-tile page at 128 cells per tile
    assert tiling.grid_shape(1275, 1650, 128) == grid_hw
    cx, cy = tiling.cell_center(0, 0, grid_hw, page_wh)
    assert cx == pytest.approx(0.5 * 1275 / 384) and cy == pytest.approx(0.5 * 1650 / 512)
    last = tiling.cell_center(383, 511, grid_hw, page_wh)
    assert last == pytest.approx((1275 - 0.5 * 1275 / 384, 1650 - 0.5 * 1650 / 512))
    assert tiling.cell_box(383, 511, grid_hw, page_wh)[2:] == pytest.approx((1275, 1650))
    for x, y in [(0, 0), (17, 300), (383, 511), (200, 7)]:
        assert tiling.page_to_cell(*tiling.cell_center(x, y, grid_hw, page_wh), grid_hw, page_wh) == (x, y)
    assert tiling.page_to_cell(-5, 99999, grid_hw, page_wh) == (0, 511)
