"""TokenOCR preprocessing as pure functions: dynamic tiling, normalisation, stitching, cell geometry.

Identical to the official ``dynamic_preprocess`` / ``build_transform`` of InternVL/TokenFD:

1. choose a tile grid ``(cols, rows)`` with ``min_tiles <= cols*rows <= max_tiles`` whose ratio
   ``cols/rows`` is closest to the image's ``W/H``; on an exact tie a later candidate (candidates are
   ordered by tile count) wins only if the image area exceeds half the candidate's pixel area;
2. resize the whole image (aspect ratio *not* kept, bicubic) to ``tile*cols x tile*rows`` and crop it
   row-major into ``cols*rows`` tiles; a ``tile x tile`` thumbnail of the whole image is appended only
   when there is more than one tile (and the config asks for it);
3. normalise each tile with the ImageNet mean/std.

The feature grids of the tiles are stitched back row-major into one ``(cells*rows) x (cells*cols)``
grid; the thumbnail's features are never used (TokenOCR's ``post_process`` drops the last tile — which
for a one-tile image wrongly drops the only tile; we do not reproduce that bug).

Because step 2 stretches the page onto the grid, the grid covers the whole page uniformly: cell
``(x, y)`` of an ``Hg x Wg`` grid maps to page pixel ``((x+.5)*W/Wg, (y+.5)*H/Hg)``.

One deliberate difference: images are read by :func:`tokensearch.imaging.flatten`, which composites
transparency onto white (the official ``convert('RGB')`` turns transparent areas black, which hides
black text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from ..imaging import flatten

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TILE_SIZE = 448

Grid = tuple[int, int]  # (cols, rows)
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def candidate_grids(min_tiles: int = 1, max_tiles: int = 12) -> list[Grid]:
    """All ``(cols, rows)`` with ``min_tiles <= cols*rows <= max_tiles``, in the official order.

    The official code builds a ``set`` and sorts it by tile count (a stable sort, so equal counts keep
    the set's iteration order, which is deterministic for small int tuples); we build it the same way
    because that order decides exact ties.
    """
    if not 1 <= min_tiles <= max_tiles:
        raise ValueError(f"need 1 <= min_tiles <= max_tiles, got {min_tiles}, {max_tiles}")
    grids = set(
        (i, j)
        for n in range(min_tiles, max_tiles + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_tiles <= i * j <= max_tiles
    )
    return sorted(grids, key=lambda g: g[0] * g[1])


def closest_grid(width: int, height: int, min_tiles: int = 1, max_tiles: int = 12, tile_size: int = TILE_SIZE) -> Grid:
    """The ``(cols, rows)`` tile grid the official rule picks for a ``width x height`` image."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(min_tiles, max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * cols * rows:
            best = (cols, rows)
    return best


def dynamic_preprocess(
    image: Image.Image, min_tiles: int = 1, max_tiles: int = 12, tile_size: int = TILE_SIZE, use_thumbnail: bool = True
) -> tuple[list[Image.Image], Grid]:
    """Cut an image into tiles (row-major) + optional thumbnail; returns ``(tiles, (cols, rows))``.

    The thumbnail, when present, is the last element and only exists if ``cols*rows > 1``.
    """
    image = flatten(image)
    cols, rows = closest_grid(image.width, image.height, min_tiles, max_tiles, tile_size)
    resized = image.resize((tile_size * cols, tile_size * rows), Image.Resampling.BICUBIC)
    tiles = []
    for i in range(cols * rows):
        x, y = (i % cols) * tile_size, (i // cols) * tile_size
        tiles.append(resized.crop((x, y, x + tile_size, y + tile_size)))
    if use_thumbnail and len(tiles) > 1:
        tiles.append(image.resize((tile_size, tile_size), Image.Resampling.BICUBIC))
    return tiles, (cols, rows)


def normalize_tiles(tiles: Sequence[Image.Image]) -> np.ndarray:
    """``(N, 3, S, S)`` float32 pixel values: ``(rgb/255 - mean) / std`` (torchvision ToTensor+Normalize)."""
    arr: np.ndarray = np.stack([np.asarray(flatten(t), dtype=np.float32) for t in tiles])  # (N, S, S, 3)
    arr = (arr / 255.0 - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))  # (N, 3, S, S)


def stitch_tiles(tile_grids: ArrayT, cols: int, rows: int) -> ArrayT:
    """Row-major tiles ``(cols*rows, h, w, *C)`` -> one grid ``(rows*h, cols*w, *C)`` (numpy or torch)."""
    n, h, w = tile_grids.shape[:3]
    if n != cols * rows:
        raise ValueError(f"stitching {n} tiles into a {cols}x{rows} grid (pass tiles without the thumbnail)")
    rest: tuple[int, ...] = tuple(tile_grids.shape[3:])
    x = tile_grids.reshape(rows, cols, h, w, *rest)
    order = (0, 2, 1, 3, *range(4, 4 + len(rest)))
    x = x.permute(*order) if isinstance(x, torch.Tensor) else x.transpose(order)
    return x.reshape(rows * h, cols * w, *rest)


def grid_shape(
    width: int, height: int, cells_per_tile: int, min_tiles: int = 1, max_tiles: int = 12, tile_size: int = TILE_SIZE
) -> tuple[int, int]:
    """``(H, W)`` of the stitched feature grid for a ``width x height`` image."""
    cols, rows = closest_grid(width, height, min_tiles, max_tiles, tile_size)
    return rows * cells_per_tile, cols * cells_per_tile


def cell_center(x: float, y: float, grid_hw: tuple[int, int], page_wh: tuple[float, float]) -> tuple[float, float]:
    """Page-pixel centre of grid cell ``(x, y)``: ``((x+.5)*W/Wg, (y+.5)*H/Hg)``."""
    gh, gw = grid_hw
    pw, ph = page_wh
    return (x + 0.5) * pw / gw, (y + 0.5) * ph / gh


def cell_box(
    x: int, y: int, grid_hw: tuple[int, int], page_wh: tuple[float, float]
) -> tuple[float, float, float, float]:
    """Page-pixel box ``(x0, y0, x1, y1)`` covered by grid cell ``(x, y)``."""
    gh, gw = grid_hw
    pw, ph = page_wh
    return x * pw / gw, y * ph / gh, (x + 1) * pw / gw, (y + 1) * ph / gh


def page_to_cell(px: float, py: float, grid_hw: tuple[int, int], page_wh: tuple[float, float]) -> tuple[int, int]:
    """Inverse of :func:`cell_center`: the cell ``(x, y)`` containing page pixel ``(px, py)``."""
    gh, gw = grid_hw
    pw, ph = page_wh
    x = min(max(int(px * gw / pw), 0), gw - 1)
    y = min(max(int(py * gh / ph), 0), gh - 1)
    return x, y
