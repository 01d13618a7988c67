"""Image modes onto white paper: the one place that decides how any PIL image becomes page pixels.

A page can arrive in any mode Pillow reads: palette (with or without a transparent index), grey or colour
with alpha, bilevel faxes, CMYK prints, 16-bit scans. The indexer, both models, the API's page images
and the ``heatmap`` command all read it through :func:`flatten`, so a transparent PNG is white paper
(not black, as a bare ``convert("RGB")`` would make it: black text on black) everywhere alike.

This module imports only Pillow and numpy, so the model package, the indexer and the API can all use it
without an arrow pointing between them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# modes with an alpha channel; "P" counts too when its palette has a transparent index
_ALPHA_MODES = ("RGBA", "LA", "PA")
# 16/32-bit integer grey: Pillow's own conversions clip these at 255 (a 16-bit scan turns white)
_DEEP_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I")


def has_alpha(image: Image.Image) -> bool:
    """Whether some pixel of ``image`` may be (partly) transparent."""
    return image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)


def flatten(image: Image.Image, keep_gray: bool = False) -> Image.Image:
    """``image`` as 8-bit RGB with transparency composited onto white; an RGB image is returned as is.

    16-bit (and 32-bit integer) grey is stretched from its darkest to its lightest value: scanners
    store 12 bits in 16, which read as 16-bit would be near black. ``keep_gray``: a grey ("L") or
    bilevel ("1") image stays one 8-bit channel ("L"): three copies of the same channel cost ~15 ms a
    page to make and the models undo them.
    """
    if image.mode == "RGB":
        return image
    if keep_gray and image.mode in ("L", "1"):
        return image if image.mode == "L" else image.convert("L")
    if has_alpha(image):
        rgba = image.convert("RGBA")
        paper = Image.new("RGB", rgba.size, (255, 255, 255))
        paper.paste(rgba, mask=rgba.getchannel("A"))
        return paper
    if image.mode in _DEEP_GRAY_MODES:
        arr = np.asarray(image, dtype=np.float32)
        arr = 255.0 * (arr - arr.min()) / max(float(arr.max() - arr.min()), 1.0)
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def gray_levels(image: Image.Image) -> np.ndarray:
    """``image`` as grey levels, float32 (H, W) in [0, 1] (0 black, 1 white paper), for a grey model.

    Transparency is composited onto white by :func:`flatten`; other modes go straight to Pillow's grey
    ("L"), without a detour through RGB. A 16-bit or float grey image handed over directly keeps its
    absolute levels at full precision (divided by 65535, or by 255 when no value exceeds 255) instead of
    being stretched to 8 bits: the model reads it as it reads the 8-bit scan of the same page. (Pages
    from the indexer arrive flattened already.)
    """
    if image.mode in (*_DEEP_GRAY_MODES, "F"):
        arr = np.asarray(image, dtype=np.float32)
        top = 255.0 if arr.max() <= 255 else 65535.0
        return np.clip(arr / top, 0, 1)
    if has_alpha(image):
        image = flatten(image)
    arr = np.asarray(image if image.mode == "L" else image.convert("L"), dtype=np.float32)
    arr *= 1.0 / 255.0
    return arr
