"""Share of the page area the mini net computes: the bands of text (``mini_fast.ink_frames``) against one
frame around all the ink (``mini_fast.ink_box``), over a folder of page images.

    python3 bench/ink_area.py ../shared/bench/data/scans/degraded_150/png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from tokensearch.tokenocr_model.mini import MiniConfig, image_to_tensor
from tokensearch.tokenocr_model.mini_fast import ink_box, ink_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    a = ap.parse_args()
    stride = MiniConfig().stride
    page = bands = box = n_bands = 0
    files = sorted(f for f in a.folder.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
    for f in files:
        x = image_to_tensor(Image.open(f))[None]
        page += x.shape[-2] * x.shape[-1]
        frames = ink_frames(x, stride)
        n_bands += len(frames)
        bands += sum((y1 - y0) * (x1 - x0) for y0, x0, y1, x1 in frames)
        y0, x0, y1, x1 = ink_box(x, stride)
        box += (y1 - y0) * (x1 - x0)
    print(
        f"{len(files)} pages: bands {bands / page:.3f} of the page area ({n_bands / len(files):.1f} a page), "
        f"one frame {box / page:.3f}"
    )


if __name__ == "__main__":
    main()
